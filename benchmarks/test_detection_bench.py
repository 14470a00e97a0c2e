"""Detection: our batch kernels vs faster-coco-eval and pycocotools.

Workload of issue 2: 256 images x 8 samples = 2048 COCO-like (pred, gt) pairs
(~7 GT over 1-4 of 80 classes, ~20 predictions); dataset eval over 5000
images / 100k detections.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from rewards import detection
from tests.coco_oracle import faster_coco_stats, pycoco_stats, random_image, recall_oracle, run_cocoeval


def coco_like_pairs(n_images: int, n_samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        _, gt = random_image(
            rng, n_gt=int(rng.integers(3, 12)), n_pred=0, n_classes=int(rng.integers(1, 5)), adversarial=False
        )
        for _ in range(n_samples):
            # samples jitter the GT boxes plus a few spurious ones
            k = len(gt["labels"])
            idx = rng.integers(0, k, size=20)
            boxes = gt["boxes"][idx] + rng.normal(0, 4, size=(20, 4))
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
            labels = np.where(rng.random(20) < 0.9, gt["labels"][idx], rng.integers(0, 80, 20))
            preds.append({"boxes": boxes, "scores": rng.random(20), "labels": labels})
            gts.append(gt)
    return preds, gts


PAIRS = coco_like_pairs(256, 8)
REF_SUBSET = 128  # the references are timed on a subset and reported per pair


def _faster_image_ap(pred, gt):
    from faster_coco_eval import COCO, COCOeval_faster

    ev = run_cocoeval(COCO, COCOeval_faster, [pred], [gt], eval_kwargs={"print_function": lambda *a: None})
    ev.summarize()
    return ev.stats[0]


def _pycoco_image_ap(pred, gt):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ev = run_cocoeval(COCO, COCOeval, [pred], [gt])
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return ev.stats[0]


def test_map_reward_batch_ours(benchmark, recorder):
    preds, gts = PAIRS
    detection.map_reward_batch(preds[:2], gts[:2])  # compile / cache load outside the timing
    benchmark(detection.map_reward_batch, preds, gts)
    recorder(benchmark, "map_reward 2048 pairs", "ours map_reward_batch", len(preds))


@pytest.mark.parametrize("ref", [_faster_image_ap, _pycoco_image_ap], ids=["faster-coco-eval", "pycocotools"])
def test_map_reward_reference_per_pair(benchmark, recorder, ref):
    preds, gts = PAIRS[0][:REF_SUBSET], PAIRS[1][:REF_SUBSET]
    benchmark.pedantic(lambda: [ref(p, g) for p, g in zip(preds, gts)], rounds=3, iterations=1)
    recorder(benchmark, "map_reward 2048 pairs", ref.__name__.strip("_").replace("_image_ap", ""), REF_SUBSET)


def test_recall_reward_batch_ours(benchmark, recorder):
    preds, gts = PAIRS
    detection.recall_reward_batch(preds[:2], gts[:2])
    benchmark(detection.recall_reward_batch, preds, gts)
    recorder(benchmark, "recall_reward 2048 pairs", "ours recall_reward_batch", len(preds))


def test_recall_reward_reference_per_pair(benchmark, recorder):
    preds, gts = PAIRS[0][:REF_SUBSET], PAIRS[1][:REF_SUBSET]
    w = np.ones(80)
    benchmark.pedantic(
        lambda: [recall_oracle(p, g, detection.COCO_IOU_THRESHOLDS, w, 0.3) for p, g in zip(preds, gts)],
        rounds=3,
        iterations=1,
    )
    recorder(benchmark, "recall_reward 2048 pairs", "numpy port of released reward", REF_SUBSET)


def test_recall_reward_vs_faster_coco_eval_per_pair(benchmark, recorder):
    preds, gts = PAIRS[0][:REF_SUBSET], PAIRS[1][:REF_SUBSET]
    benchmark.pedantic(lambda: [_faster_image_ap(p, g) for p, g in zip(preds, gts)], rounds=3, iterations=1)
    recorder(benchmark, "recall_reward 2048 pairs", "faster-coco-eval (mAP per pair)", REF_SUBSET)


DATASET = coco_like_pairs(5000, 1, seed=1)


def test_coco_eval_ours(benchmark, recorder):
    preds, gts = DATASET
    detection.coco_eval(preds[:2], gts[:2])
    benchmark.pedantic(detection.coco_eval, args=(preds, gts), rounds=5, iterations=1)
    recorder(benchmark, "coco_eval 5000 img/100k det", "ours coco_eval", 1)


@pytest.mark.parametrize("ref", [faster_coco_stats, pycoco_stats], ids=["faster-coco-eval", "pycocotools"])
def test_coco_eval_reference(benchmark, recorder, ref):
    preds, gts = DATASET
    benchmark.pedantic(ref, args=(preds, gts), rounds=1, iterations=1)
    recorder(benchmark, "coco_eval 5000 img/100k det", ref.__name__.replace("_stats", ""), 1)
