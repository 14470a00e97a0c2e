"""The install breaks nobody: the built wheel holds one top-level package of ours besides the trainer,
installs beside AdapterHub's `adapters`, needs only numpy and numba, and the sdist carries its tests."""

from __future__ import annotations

import email
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("dist")
    for kind in ("--wheel", "--sdist"):
        subprocess.run(
            [sys.executable, "-m", "build", kind, "--no-isolation", "--outdir", str(out), str(ROOT)],
            check=True,
            capture_output=True,
            text=True,
        )
    return out


def _wheel(dist: pathlib.Path) -> pathlib.Path:
    return next(dist.glob("task_rewards-*.whl"))


def test_wheel_has_no_top_level_name_of_another_package(dist):
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("task_rewards-")}
    assert tops == {"rewards", "reference_training"}
    assert "rewards/adapters/torch.py" in names and "rewards/adapters/py.typed" in names
    assert "reference_training/tasks/detection.py" in names
    assert not any(n.startswith("adapters/") for n in names)


def test_wheel_requires_only_numpy_and_numba(dist):
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(wheel.read(meta_name))
    core = sorted(
        r.split(">")[0].split("=")[0].strip() for r in meta.get_all("Requires-Dist") if "extra ==" not in r
    )
    assert core == ["numba", "numpy"]
    assert meta["License-Expression"] == "Apache-2.0"
    assert {"torch", "jax", "train", "trl", "test", "bench"} <= set(meta.get_all("Provides-Extra"))
    assert any(n.endswith("licenses/LICENSE") for n in zipfile.ZipFile(_wheel(dist)).namelist())


def test_wheel_installs_beside_adapterhub(dist, tmp_path):
    """Our wheel and AdapterHub's `adapters` in one environment: both import, neither shadows the other."""
    pytest.importorskip("adapters", reason="AdapterHub's adapters (test extra) not installed")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(_wheel(dist)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    code = (
        "import adapters, rewards, rewards.adapters.torch, rewards.adapters.box_tokens\n"
        "from adapters import AutoAdapterModel\n"
        f"assert rewards.__file__.startswith({str(target)!r}), rewards.__file__\n"
        "assert 'site-packages' in adapters.__file__, adapters.__file__\n"
        "print(rewards.map_reward({'boxes': [[0, 0, 2, 2]], 'scores': [1.0], 'labels': [0]},"
        " {'boxes': [[0, 0, 2, 2]], 'labels': [0]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout) == pytest.approx(1.0)


def test_core_imports_and_scores_without_frameworks(tmp_path):
    """`pip install task-rewards` without extras: every reward runs with torch, jax and scipy unimportable."""
    code = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'jax', 'jaxlib', 'scipy', 'PIL', 'matplotlib'):
            raise ImportError(f'blocked {name}')
sys.meta_path.insert(0, Block())
import numpy as np, rewards
gt = {'boxes': [[0, 0, 4, 4]], 'labels': [1]}
pred = {'boxes': [[0, 0, 4, 4]], 'scores': [0.5], 'labels': [1]}
print(rewards.map_reward(pred, gt), rewards.recall_reward(pred, gt))
seg = np.zeros((4, 4, 2), np.int64); seg[..., 0] = 1
print(rewards.pq_reward(seg, seg, things={1}, stuffs=set()))
df = rewards.document_frequencies([['a cat on a mat']])
print(rewards.cider_reward('a cat on a mat', ['a cat on a mat'], df) >= 0)
print(rewards.colorfulness(np.zeros((2, 2, 3), np.uint8)))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_sdist_carries_its_tests(dist):
    sdist = next(dist.glob("task_rewards-*.tar.gz"))
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "pyproject.toml",
        "tests/coco_oracle.py",
        "tests/panoptic_oracle.py",
        "tests/ptb_oracle.py",
        "tests/conftest.py",
        "adapters/torch.py",
        "rewards/_numba.py",
    ):
        assert needed in names, needed


def test_trainer_import_names_its_extra():
    code = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch':
            raise ImportError('blocked torch')
sys.meta_path.insert(0, Block())
try:
    import reference_training
except ImportError as err:
    assert '[train]' in str(err), err
    print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr[-2000:]
