"""TRL reward function vs the per-completion pycocotools recipe of public GRPO detection code.

Workload of issue 20: one trainer batch of 1024 completions (128 prompts x 8 generations),
each a Qwen2.5-VL-style fenced JSON list of ~6 labelled boxes (4 to 8) over COCO's 80
category names. Ours: ``detection_reward()`` (kind="recall") parses and scores the whole
batch. The reference does what public VLM GRPO recipes do for every completion: parse the
JSON, build a one-image COCO ground truth, ``loadRes`` the boxes with every score set to 1,
run ``COCOeval(iouType="bbox")`` evaluate / accumulate / summarize with stdout suppressed,
and take ``stats[0]``. It is timed on a subset and reported per completion.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np

from rewards.adapters.trl import detection_reward

CATEGORIES = [f"category {i}" for i in range(80)]
REF_SUBSET = 64


def trainer_batch(n_prompts: int = 128, n_samples: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    completions, gt_boxes, gt_labels = [], [], []
    for _ in range(n_prompts):
        m = int(rng.integers(4, 9))
        xy = rng.uniform(0, 500, (m, 2))
        boxes = np.round(np.concatenate([xy, xy + rng.uniform(10, 140, (m, 2))], 1))
        names = [CATEGORIES[i] for i in rng.integers(0, 80, m)]
        for _ in range(n_samples):
            k = int(rng.integers(4, 9))
            idx = rng.integers(0, m, k)
            items = [
                {
                    "bbox_2d": (boxes[j] + rng.integers(-6, 7, 4)).astype(int).tolist(),
                    "label": names[j] if rng.random() < 0.9 else CATEGORIES[int(rng.integers(80))],
                }
                for j in idx
            ]
            completions.append("```json\n" + json.dumps(items) + "\n```")
            gt_boxes.append(boxes.tolist())
            gt_labels.append(names)
    return completions, gt_boxes, gt_labels


BATCH = trainer_batch()
_FENCE = re.compile(r"```json\s*(.*?)\s*```", re.S)


def _pycocotools_reward(completion: str, boxes: list, labels: list) -> float:
    """One completion the way public GRPO recipes score it: a COCO object and COCOeval each time."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    match = _FENCE.search(completion)
    try:
        items = json.loads(match.group(1) if match else completion)
    except (ValueError, AttributeError):
        return 0.0
    ids = {name: i + 1 for i, name in enumerate(CATEGORIES)}
    annotations = [
        {
            "id": k + 1,
            "image_id": 1,
            "category_id": ids[name],
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1),
            "iscrowd": 0,
        }
        for k, ((x1, y1, x2, y2), name) in enumerate(zip(boxes, labels))
    ]
    dets = [
        {
            "image_id": 1,
            "category_id": ids.get(d["label"], 0),
            "bbox": [
                d["bbox_2d"][0],
                d["bbox_2d"][1],
                d["bbox_2d"][2] - d["bbox_2d"][0],
                d["bbox_2d"][3] - d["bbox_2d"][1],
            ],
            "score": 1.0,
        }
        for d in items
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 1}],
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)],
        }
        gt.createIndex()
        if not dets:
            return 0.0
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[0]), 0.0)


def test_trl_detection_reward_ours(benchmark, recorder):
    completions, gt_boxes, gt_labels = BATCH
    fn = detection_reward(categories=CATEGORIES)
    prompts = ["p"] * len(completions)
    fn(
        prompts[:16], completions[:16], gt_boxes=gt_boxes[:16], gt_labels=gt_labels[:16]
    )  # compile / cache load
    rewards = benchmark(fn, prompts, completions, gt_boxes=gt_boxes, gt_labels=gt_labels)
    assert len(rewards) == 1024 and fn.stats.parse_failures == 0 and 5.5 < fn.stats.boxes / 1024 < 6.5
    recorder(benchmark, "trl 1024 completions", "ours detection_reward (recall)", len(completions))


def test_trl_pycocotools_per_completion(benchmark, recorder):
    completions, gt_boxes, gt_labels = (x[:REF_SUBSET] for x in BATCH)
    benchmark.pedantic(
        lambda: [_pycocotools_reward(c, b, lab) for c, b, lab in zip(completions, gt_boxes, gt_labels)],
        rounds=3,
        iterations=1,
    )
    recorder(benchmark, "trl 1024 completions", "pycocotools COCOeval per completion", REF_SUBSET)
