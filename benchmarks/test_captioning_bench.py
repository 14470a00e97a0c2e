"""Captioning: ours vs pycocoevalcap on the same captions, in the same run.

Workloads:
- CIDEr-D rewards (issue 4): 256 images x 8 sampled captions, 5 references
  each, document frequencies from a 5000-image corpus (25k references).
- COCO caption evaluation (issue 19): 5000 images x 5 references + 5000
  results. End to end as fresh processes (``python -m rewards.captioning``
  vs pycocoevalcap's COCOEvalCap restricted to BLEU, ROUGE-L and CIDEr, its
  Java tokenizer included); scoring alone on tokenized text; the tokenizer's
  captions per second beside the jar's. The real COCO val2017 captions are
  used when ``../shared/data`` holds them (else generated captions).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rewards import captioning

ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(0)

_SUBJECTS = [
    "A man",
    "A woman",
    "Two dogs",
    "The cat",
    "A young boy",
    "Several people",
    "An old lady",
    "A group of kids",
    "A train",
    "Mr. Smith's dog",
    "The U.S. team",
    "A giraffe",
    "A plate of food",
    "A double-decker bus",
]
_VERBS = [
    "is riding",
    "are sitting on",
    "stands next to",
    "isn't holding",
    "can't reach",
    "is looking at",
    "plays with",
    "is eating",
    "holds",
    "walks along",
    "is parked near",
    "sits on top of",
]
_OBJECTS = [
    "a surfboard",
    "the red bus",
    "a frisbee",
    "two slices of pizza",
    "a 1,000-pound bull",
    "a wooden table",
    "the St. Louis arch",
    'a sign that says "STOP"',
    "a cat (sleeping)",
    "a laptop/tablet",
    "a high-chair",
    "the clock at 3:30 p.m.",
    "a snowy hill",
    "the kitchen counter",
    "a busy street",
    "a tennis racket",
]
_TAILS = [".", "", " .", "!", ", near the park.", " at night", " in the rain.", " on a sunny day", "  "]


def _caption() -> str:
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    s = f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)}{pick(_TAILS)}"
    return s if rng.random() < 0.8 else s.lower()


SENTENCES = [" ".join(captioning.tokenize(_caption())) for _ in range(4000)]
CORPUS = [[SENTENCES[j] for j in rng.integers(0, len(SENTENCES), 5)] for _ in range(5000)]
IMAGES = CORPUS[:256]
CANDIDATES = [SENTENCES[j] for j in rng.integers(0, len(SENTENCES), 256 * 8)]
REFERENCES = [IMAGES[i] for i in range(256) for _ in range(8)]  # the N samples share one refs object
DOC_FREQ = captioning.document_frequencies(CORPUS)

# COCO files: 5000 images x 5 raw references, 5000 raw results. The real COCO val2017
# captions when ../shared/data has them (results: another image's caption), else generated.
N_EVAL = 5000
_DIR = tempfile.mkdtemp(prefix="caption-bench-")
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_VAL2017 = ROOT.parent / "shared" / "data" / "captions_val2017.json.gz"
if _VAL2017.exists():
    import gzip

    _by_image: dict = {}
    for _ann in json.load(gzip.open(_VAL2017))["annotations"]:
        _by_image.setdefault(_ann["image_id"], []).append(_ann["caption"])
    _RAW_REFS = [c[:5] for c in list(_by_image.values())[:N_EVAL]]
    _RAW_RESULTS = [_RAW_REFS[(i + 1) % N_EVAL][-1] for i in range(N_EVAL)]
    WORKLOAD = "COCO val2017 captions"
else:
    _RAW_REFS = [[_caption() for _ in range(5)] for _ in range(N_EVAL)]
    _RAW_RESULTS = [_caption() for _ in range(N_EVAL)]
    WORKLOAD = "generated captions"
GT_JSON = os.path.join(_DIR, "gt.json")
RES_JSON = os.path.join(_DIR, "res.json")
with open(GT_JSON, "w") as f:
    json.dump(
        {
            "images": [{"id": i} for i in range(N_EVAL)],
            "annotations": [
                {"id": len(r) * i + k, "image_id": i, "caption": c}
                for i, r in enumerate(_RAW_REFS)
                for k, c in enumerate(r)
            ],
        },
        f,
    )
with open(RES_JSON, "w") as f:
    json.dump([{"image_id": i, "caption": c} for i, c in enumerate(_RAW_RESULTS)], f)
TOKENIZED_REFS = [[" ".join(t) for t in captioning.tokenize_captions(r)] for r in _RAW_REFS]
TOKENIZED_RESULTS = [" ".join(t) for t in captioning.tokenize_captions(_RAW_RESULTS)]

# What a pycocoevalcap user runs (its README example), METEOR and SPICE left out.
_COCOEVALCAP_SCRIPT = """
import sys
from pycocotools.coco import COCO
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.cider.cider import Cider
coco = COCO(sys.argv[1]); res = coco.loadRes(sys.argv[2])
ids = res.getImgIds()
tok = PTBTokenizer()
gts = tok.tokenize({i: coco.imgToAnns[i] for i in ids}); rs = tok.tokenize({i: res.imgToAnns[i] for i in ids})
for scorer in (Bleu(4), Rouge(), Cider()):
    print(scorer.method(), scorer.compute_score(gts, rs)[0])
"""


def _fresh(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=ROOT)


def test_document_frequencies_25k_references(benchmark, recorder):
    benchmark.pedantic(captioning.document_frequencies, args=(CORPUS,), rounds=3, iterations=1)
    recorder(benchmark, "document_frequencies 25k refs", "ours document_frequencies", 1)


def test_cider_reward_batch_ours(benchmark, recorder):
    captioning.cider_reward_batch(CANDIDATES[:8], REFERENCES[:8], DOC_FREQ)
    benchmark(captioning.cider_reward_batch, CANDIDATES, REFERENCES, DOC_FREQ)
    recorder(benchmark, "cider 256x8 captions", "ours cider_reward_batch", len(CANDIDATES))


def test_cider_pycocoevalcap(benchmark, recorder):
    from pycocoevalcap.cider.cider import Cider

    gts = {i: REFERENCES[i] for i in range(len(CANDIDATES))}
    res = {i: [CANDIDATES[i]] for i in range(len(CANDIDATES))}
    benchmark.pedantic(Cider().compute_score, args=(gts, res), rounds=3, iterations=1)
    recorder(benchmark, "cider 256x8 captions", "pycocoevalcap Cider", len(CANDIDATES))


def test_coco_files_end_to_end_ours(benchmark, recorder):
    _fresh(["-m", "rewards.captioning", GT_JSON, RES_JSON])  # compiled kernels cached on disk
    benchmark.pedantic(
        _fresh, args=(["-m", "rewards.captioning", GT_JSON, RES_JSON],), rounds=3, iterations=1
    )
    recorder(benchmark, "COCO files 5000 img e2e", "ours python -m rewards.captioning", N_EVAL)


def test_coco_files_end_to_end_pycocoevalcap(benchmark, recorder):
    if not _java():
        pytest.skip("java is not installed")
    benchmark.pedantic(_fresh, args=(["-c", _COCOEVALCAP_SCRIPT, GT_JSON, RES_JSON],), rounds=2, iterations=1)
    recorder(benchmark, "COCO files 5000 img e2e", "pycocoevalcap COCOEvalCap (B+R+C)", N_EVAL)


def test_scoring_tokenized_ours(benchmark, recorder):
    captioning.coco_caption_eval(TOKENIZED_RESULTS[:4], TOKENIZED_REFS[:4])
    benchmark.pedantic(
        captioning.coco_caption_eval, args=(TOKENIZED_RESULTS, TOKENIZED_REFS), rounds=5, iterations=1
    )
    recorder(benchmark, "scoring 5000 img tokenized", "ours coco_caption_eval", N_EVAL)


def test_scoring_tokenized_pycocoevalcap(benchmark, recorder):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = dict(enumerate(TOKENIZED_REFS))
    res = {i: [c] for i, c in enumerate(TOKENIZED_RESULTS)}

    def score():
        with contextlib.redirect_stdout(io.StringIO()):
            return [s.compute_score(gts, res)[0] for s in (Bleu(4), Rouge(), Cider())]

    benchmark.pedantic(score, rounds=2, iterations=1)
    recorder(benchmark, "scoring 5000 img tokenized", "pycocoevalcap Bleu+Rouge+Cider", N_EVAL)


_ALL_RAW = [c for r in _RAW_REFS for c in r]


def test_tokenizer_ours(benchmark, recorder):
    benchmark.pedantic(captioning.tokenize_captions, args=(_ALL_RAW,), rounds=3, iterations=1)
    recorder(benchmark, "tokenize 25k captions", "ours tokenize_captions", len(_ALL_RAW))


def test_tokenizer_jar(benchmark, recorder):
    if not _java():
        pytest.skip("java is not installed")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {i: [{"caption": c} for c in r] for i, r in enumerate(_RAW_REFS)}
    benchmark.pedantic(PTBTokenizer().tokenize, args=(captions,), rounds=3, iterations=1)
    recorder(benchmark, "tokenize 25k captions", "pycocoevalcap PTBTokenizer (Java)", len(_ALL_RAW))


def _java() -> bool:
    return shutil.which("java") is not None
