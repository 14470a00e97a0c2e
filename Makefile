# `make demo` and `make test` work from a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned here (not in pyproject) to the CPU wheel this machine carries: any other spec pulls a CUDA build.
TORCH_PIN := torch==2.13.0
# TRL and transformers versions the suite is tested with (transformers 4.57 also satisfies AdapterHub's
# `adapters`, which the install-collision test puts beside ours).
TRL_PIN := trl==1.16.0 transformers==4.57.6

.PHONY: demo test test-numpy1 bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-train: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_PIN)" -e ".[torch,train]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH_PIN)" $(TRL_PIN) -e ".[torch,jax,train,trl,test,bench]"
	touch $@ $(VENV)/.installed-train

demo: $(VENV)/.installed-train
	$(PY) -m reference_training demo --out runs/demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q tests

# The core's tests again under numpy 1.26 (numpy + numba + the detection oracles, no frameworks:
# modules that need torch/jax/trl are left out by tests/conftest.py; the packaging tests, which
# build the wheel, run once in the main venv). Own numba cache: compiled
# kernels are specific to the numpy they were built against.
NP1 := .venv-numpy1
$(NP1)/.installed: pyproject.toml
	$(PYTHON) -m venv $(NP1)
	$(NP1)/bin/python -m pip install -q --upgrade pip
	$(NP1)/bin/python -m pip install -q "numpy==1.26.4" pytest hypothesis pycocotools faster-coco-eval pycocoevalcap -e .
	touch $@

test-numpy1: $(NP1)/.installed
	NUMBA_CACHE_DIR=$(NP1)/numba-cache $(NP1)/bin/python -m pytest -q -p no:cacheprovider tests \
		--ignore=tests/test_packaging.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-test
	$(PY) -m pytest -q benchmarks --benchmark-only --benchmark-columns=mean,median,rounds

clean:
	rm -rf $(VENV) $(NP1) runs .pytest_cache .benchmarks
