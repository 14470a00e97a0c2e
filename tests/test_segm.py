"""COCO segm evaluation (files, CLI, CocoEvaluator) and segm map_reward against pycocotools / faster-coco-eval."""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as M
import pytest

from rewards import detection, masks
from tests.coco_oracle import assert_per_class_close, per_class_reference
from tests.test_masks import random_dense, random_polygon

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_GT = DATA / "instances_val2014_100.json.gz"
DEMO_SEGM = DATA / "cocoapi_instances_val2014_fakesegm100_results.json.gz"


def _rle_str(dense: np.ndarray) -> dict:
    rle = M.encode(np.asfortranarray(dense.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def random_segm_dataset(rng: np.random.Generator, n_images: int = 10, n_classes: int = 3, max_size: int = 40):
    """A COCO instances dict with polygon / RLE / crowd / empty GT masks, and segm results (RLE strings)."""
    images, anns, dets = [], [], []
    ids = rng.permutation(n_images) + 1
    dense_of = {}
    for img in ids.tolist():
        h, w = int(rng.integers(4, max_size)), int(rng.integers(4, max_size))
        images.append({"id": img, "height": h, "width": w})
        gts = []
        for _ in range(int(rng.integers(0, 7))):
            kind = rng.integers(5)
            if kind <= 1:
                segm = [random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
                rle = M.merge(M.frPyObjects(segm, h, w))
            else:
                dense = random_dense(rng, 1, h, w)[0]
                if kind == 4:
                    dense[:] = False  # empty mask
                rle = M.encode(np.asfortranarray(dense.astype(np.uint8)))
                segm = {"size": [h, w], "counts": M.decode(rle).ravel(order="F").tolist()}
                segm = masks.decompress(rle) if kind in (2, 4) else _rle_str(M.decode(rle))
            area = float(M.area(rle)) * float(rng.choice([1, 1, 1, 5, 50, 0.5]))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img,
                    "category_id": int(rng.integers(1, n_classes + 1)),
                    "segmentation": segm,
                    "area": area,
                    "bbox": M.toBbox(rle).tolist(),
                    "iscrowd": int(rng.random() < 0.2),
                }
            )
            gts.append((M.decode(rle).astype(bool), anns[-1]["category_id"]))
        dense_of[img] = gts
        for _ in range(int(rng.integers(0, 12))):
            if gts and rng.random() < 0.7:
                g, label = gts[int(rng.integers(len(gts)))]
                d = np.roll(g, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
                if rng.random() < 0.5:
                    d = d | (rng.random(d.shape) < 0.05)
                if rng.random() < 0.3:
                    label = int(rng.integers(1, n_classes + 1))
            else:
                d = random_dense(rng, 1, h, w)[0]
                label = int(rng.integers(1, n_classes + 1))
            score = float(rng.choice([0.5, 0.25, rng.random()]))
            dets.append({"image_id": img, "category_id": label, "segmentation": _rle_str(d), "score": score})
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, n_classes + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def _reference(coco_cls, eval_cls, gt, dets, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = coco_cls()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = eval_cls(coco_gt, coco_dt, iouType="segm", **kwargs)
        ev.evaluate()
        ev.accumulate()
        start = out.tell()
        ev.summarize()
    ev.printed = out.getvalue()[start:].splitlines()
    return ev


def pycoco_segm(gt, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _reference(COCO, COCOeval, gt, dets)


def faster_segm(gt, dets):
    from faster_coco_eval import COCO, COCOeval_faster

    return _reference(COCO, COCOeval_faster, gt, dets, print_function=lambda *a: None)


@pytest.mark.parametrize("seed", range(4))
def test_segm_files_match_pycocotools_and_faster_coco_eval(seed):
    gt, dets = random_segm_dataset(np.random.default_rng(seed), n_images=12)
    assert any(a["iscrowd"] for a in gt["annotations"])
    ref = pycoco_segm(gt, dets)
    result = detection.coco_eval_files(copy.deepcopy(gt), copy.deepcopy(dets), iou_type="segm")
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.precision, ref.eval["precision"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.recall, ref.eval["recall"], atol=1e-9, rtol=0)
    assert_per_class_close(result.per_class, per_class_reference(ref))
    assert result.lines == ref.printed
    np.testing.assert_allclose(result.stats, faster_segm(gt, dets).stats[:12], atol=1e-9, rtol=0)


def _examples(gt, dets, rng):
    """The dataset as per-image dicts (ascending image id), masks as RLE dicts or dense stacks."""
    by_image = {im["id"]: im for im in gt["images"]}
    preds, gts = [], []
    for img in sorted(by_image):
        h, w = by_image[img]["height"], by_image[img]["width"]
        anns = [a for a in gt["annotations"] if a["image_id"] == img]
        rles = [masks.from_coco_segmentation(a["segmentation"], h, w, degenerate="pycocotools") for a in anns]
        ds = [d for d in dets if d["image_id"] == img]
        dense = rng.random() < 0.5
        gts.append(
            {
                "masks": masks.decode(rles).transpose(2, 0, 1).astype(bool) if dense and rles else rles,
                "labels": [a["category_id"] for a in anns],
                "iscrowd": [a["iscrowd"] for a in anns],
                "area": [a["area"] for a in anns],
            }
        )
        preds.append(
            {
                "masks": [d["segmentation"] for d in ds],
                "scores": [d["score"] for d in ds],
                "labels": [d["category_id"] for d in ds],
            }
        )
    return preds, gts


@pytest.mark.parametrize("seed", range(2))
def test_segm_coco_eval_and_evaluator_match_pycocotools(seed):
    rng = np.random.default_rng(10 + seed)
    gt, dets = random_segm_dataset(rng, n_images=10)
    ref = pycoco_segm(gt, dets)
    preds, gts = _examples(gt, dets, rng)
    stats = detection.coco_eval(preds, gts, iou_type="segm")
    np.testing.assert_allclose(list(stats.values()), ref.stats, atol=1e-9, rtol=0)
    # split into batches, reversed, with image ids: the same as one evaluation
    ev = detection.CocoEvaluator(iou_type="segm", categories=[c["id"] for c in gt["categories"]])
    ids = np.arange(len(preds))
    for lo in range(len(preds), 0, -4):
        part = slice(max(lo - 4, 0), lo)
        ev.update(preds[part], gts[part], image_ids=ids[part])
    result = ev.compute()
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)
    assert_per_class_close(result.per_class, per_class_reference(ref))


def _one_image_ap(pred, gt_masks, labels, crowd, h, w):
    """pycocotools' stats[0] of one image (segm)."""
    images = [{"id": 1, "height": h, "width": w}]
    cats = sorted(set(labels) | set(pred["labels"])) or [1]
    anns = [
        {"id": k + 1, "image_id": 1, "category_id": c, "segmentation": r, "area": float(M.area(r)),
         "bbox": M.toBbox(r).tolist(), "iscrowd": int(cr)}
        for k, (r, c, cr) in enumerate(zip(gt_masks, labels, crowd))
    ]  # fmt: skip
    gt = {"images": images, "annotations": anns, "categories": [{"id": c} for c in cats]}
    dets = [
        {"image_id": 1, "category_id": c, "segmentation": r, "score": s}
        for r, c, s in zip(pred["masks"], pred["labels"], pred["scores"])
    ]
    if not dets:
        return None
    return pycoco_segm(gt, dets).stats[0]


def test_segm_map_reward_matches_pycocotools_per_image():
    rng = np.random.default_rng(21)
    preds, gts, refs = [], [], []
    while len(preds) < 25:
        gt, dets = random_segm_dataset(rng, n_images=1, max_size=30)
        im = gt["images"][0]
        p, g = _examples(gt, dets, rng)
        rles = g[0]["masks"]
        if isinstance(rles, np.ndarray):
            rles = [_rle_str(m) for m in rles]
        rles = [masks.compress(r) for r in rles]
        rles = [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
        ref = _one_image_ap(p[0], rles, g[0]["labels"], g[0]["iscrowd"], im["height"], im["width"])
        if ref is None or ref < 0:
            continue
        del g[0]["area"]  # the default: each GT's mask area
        preds.append(p[0]), gts.append(g[0]), refs.append(ref)
    ours = detection.map_reward_batch(preds, gts, iou_type="segm")
    np.testing.assert_allclose(ours, refs, atol=1e-12, rtol=0)
    assert detection.map_reward(preds[3], gts[3], iou_type="segm") == ours[3]
    assert len(set(np.round(refs, 6))) > 5  # the cases are not all alike


@pytest.mark.skipif(not DEMO_GT.exists() or not DEMO_SEGM.exists(), reason="shared/data not present")
def test_real_cocoapi_demo_segm_results():
    with gzip.open(DEMO_GT) as f:
        gt = json.load(f)
    with gzip.open(DEMO_SEGM) as f:
        dets = json.load(f)
    ref = pycoco_segm(gt, dets)
    result = detection.coco_eval_files(DEMO_GT, DEMO_SEGM, iou_type="segm")
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.stats, faster_segm(gt, dets).stats[:12], atol=1e-9, rtol=0)
    assert_per_class_close(result.per_class, per_class_reference(ref))
    assert result.lines == ref.printed
    published = [0.320, 0.562, 0.299, 0.387, 0.310, 0.327, 0.268, 0.415, 0.417, 0.469, 0.377, 0.381]
    assert [float(f"{s:.3f}") for s in result.stats] == published


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rewards.detection", *map(str, args)], capture_output=True, text=True, env=env
    )


def test_cli_segm_prints_the_summary_and_writes_json(tmp_path):
    gt, dets = random_segm_dataset(np.random.default_rng(5), n_images=8)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(dets))
    out = _cli(
        tmp_path / "gt.json", tmp_path / "res.json", "--iou-type", "segm", "--json-out", tmp_path / "o.json"
    )
    assert out.returncode == 0, out.stderr
    ref = pycoco_segm(gt, dets)
    assert out.stdout.splitlines() == ref.printed
    written = json.loads((tmp_path / "o.json").read_text())
    np.testing.assert_allclose(written["stats"], ref.stats, atol=1e-9, rtol=0)
    bbox = _cli(tmp_path / "gt.json", tmp_path / "res.json")  # segm results need --iou-type segm
    assert bbox.returncode == 2 and "iou_type='segm'" in bbox.stderr


def _segm_case():
    gt = {
        "images": [{"id": 1, "height": 4, "width": 5}],
        "categories": [{"id": 1}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4.0, "iscrowd": 0,
             "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4.0, "iscrowd": 1,
             "segmentation": {"size": [4, 5], "counts": [0, 20]}},
        ],
    }  # fmt: skip
    dets = [
        {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [4, 5], "counts": "04<"}}
    ]
    return gt, dets


@pytest.mark.parametrize(
    "where, value, match",
    [
        ("gt", [[0, 0, 2]], r'gt: annotations\[0\]\["segmentation"\].*first polygon has 4 numbers or fewer'),
        (
            "gt",
            {"size": [4, 5], "counts": [3, 4]},
            r'annotations\[0\]\["segmentation"\]\[\'counts\'\]` sums to 7',
        ),
        (
            "gt",
            {"size": [4, 6], "counts": [24]},
            r'annotations\[0\]\["segmentation"\]` has size \[4, 6\] but its image',
        ),
        ("res", [[0, 0, 2, 0]], r'results: \[0\]\["segmentation"\]\[0\]` has 2 point\(s\)'),
        ("res", [[0, 0, 2, 0, 2]], r'results: \[0\]\["segmentation"\]\[0\]` has an odd number'),
        (
            "res",
            {"size": [4, 5], "counts": [1, 2]},
            r"results: \[0\]\[\"segmentation\"\]\['counts'\]` sums to 3",
        ),
        ("res", {"size": [5, 4], "counts": [20]}, r'results: \[0\]\["segmentation"\]` has size \[5, 4\]'),
        ("res", None, r"results: \[0\] is missing the key 'segmentation'"),
    ],
)
def test_bad_segm_input_names_file_entry_and_key(where, value, match):
    gt, dets = _segm_case()
    target = gt["annotations"][0] if where == "gt" else dets[0]
    if value is None:
        del target["segmentation"]
    else:
        target["segmentation"] = value
    with pytest.raises(ValueError, match=match):
        detection.coco_eval_files(gt, dets, iou_type="segm")


def test_gt_images_need_their_size_for_segm():
    gt, dets = _segm_case()
    del gt["images"][0]["height"]
    with pytest.raises(ValueError, match=r"gt: images\[0\] is missing the key 'height'"):
        detection.coco_eval_files(gt, dets, iou_type="segm")


def test_bad_example_masks_name_the_example_and_key():
    a = np.zeros((4, 5), bool)
    a[:2, :2] = True
    gt = {"masks": [masks.encode(a)], "labels": [1]}
    good = {"masks": a[None], "scores": [0.9], "labels": [1]}
    assert detection.map_reward(good, gt, iou_type="segm") == pytest.approx(1.0)
    cases = [
        ({"masks": np.zeros((1, 5, 4), bool), "scores": [1], "labels": [1]}, r'`preds\[1\]\["masks"\]\[0\]` has size \[5, 4\] but `gts\[1\]\["masks"\]\[0\]` has \[4, 5\]'),
        ({"masks": [{"size": [4, 5], "counts": [3, 4]}], "scores": [1], "labels": [1]}, r"preds\[1\]\[\"masks\"\]\[0\]\['counts'\]` sums to 7"),
        ({"masks": [a], "scores": [1], "labels": [1, 2]}, r'`preds\[1\]\["labels"\]` must have one label per mask'),
        ({"boxes": [[0, 0, 1, 1]], "scores": [1], "labels": [1]}, r"`preds\[1\]` is missing the key 'masks'"),
        ({"masks": a, "scores": [1], "labels": [1]}, r"preds\[1\]\[\"masks\"\]` must be a list of masks"),
        ({"masks": [[[0, 0, 2, 0, 2, 2]]], "scores": [1], "labels": [1]}, r"looks like a polygon list"),
    ]  # fmt: skip
    for pred, match in cases:
        with pytest.raises(ValueError, match=match):
            detection.map_reward_batch([good, pred], [gt, gt], iou_type="segm")
    with pytest.raises(ValueError, match="`iou_type` must be 'bbox' or 'segm'"):
        detection.map_reward(good, gt, iou_type="keypoints")  # type: ignore[arg-type]


def _rectangle_pair(rng, size=40, n_classes=3):
    """(pred, gt) with integer boxes and the same objects as rectangle masks: box IoU == mask IoU exactly."""

    def boxes(n):
        xy = rng.integers(0, size, (n, 2))
        wh = rng.integers(0, size // 2, (n, 2))
        return np.concatenate([xy, np.minimum(xy + wh, size)], 1).astype(np.float64)

    def rects(b):
        out = np.zeros((len(b), size, size), bool)
        for k, (x0, y0, x1, y1) in enumerate(b.astype(int)):
            out[k, y0:y1, x0:x1] = True
        return out

    n_gt = int(rng.integers(0, 6))
    gt_boxes = boxes(n_gt)
    pb = np.concatenate(
        [
            gt_boxes[rng.integers(0, n_gt, 8)] + rng.integers(-2, 3, (8, 4)) if n_gt else np.zeros((0, 4)),
            boxes(3),
        ]
    )
    pb = np.clip(pb, 0, size)
    pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
    pb = pb[: int(rng.integers(0, len(pb) + 1))]
    gt = {"boxes": gt_boxes, "labels": rng.integers(0, n_classes, n_gt), "iscrowd": rng.random(n_gt) < 0.2}
    scores = np.round(rng.random(len(pb)) * 4) / 4
    pred = {"boxes": pb, "scores": scores, "labels": rng.integers(0, n_classes, len(pb))}
    gt_m = {
        **gt,
        "masks": rects(gt_boxes) if rng.random() < 0.5 else masks.encode(np.moveaxis(rects(gt_boxes), 0, -1)),
    }
    if not n_gt:
        gt_m["masks"] = []
    pred_m = {**pred, "masks": rects(pb)}
    del gt_m["boxes"], pred_m["boxes"]
    return pred, gt, pred_m, gt_m


def test_segm_rewards_equal_box_rewards_on_rectangles():
    """On integer rectangles every segm reward equals its box twin (box rewards are tested against the oracles)."""
    rng = np.random.default_rng(4)
    pairs = [_rectangle_pair(rng) for _ in range(60)]
    boxes_p, boxes_g, masks_p, masks_g = (list(x) for x in zip(*pairs))
    w = np.array([1.0, 0.3, 2.5])
    for fn, kwargs in [
        (detection.map_reward_batch, {}),
        (detection.map_reward_batch, {"penalize_absent_classes": True, "max_dets": 3}),
        (detection.recall_reward_batch, {}),
        (detection.recall_reward_batch, {"class_weights": w, "normalize": True, "duplicate_weight": 0.7}),
    ]:
        ref = fn(boxes_p, boxes_g, **kwargs)
        np.testing.assert_array_equal(fn(masks_p, masks_g, iou_type="segm", **kwargs), ref)
        assert len(set(ref.round(6).tolist())) > 5
    for thr in (0.0, 0.5):
        ref = detection.match_iou_batch(boxes_p, boxes_g, iou_threshold=thr)
        ours = detection.match_iou_batch(masks_p, masks_g, iou_type="segm", iou_threshold=thr)
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b)
    k = next(i for i, r in enumerate(ref) if (r > 0).any())
    np.testing.assert_array_equal(detection.match_iou(masks_p[k], masks_g[k], iou_type="segm"), ref[k])
    assert detection.recall_reward(masks_p[k], masks_g[k], iou_type="segm") == detection.recall_reward(
        boxes_p[k], boxes_g[k]
    )
    stats = detection.coco_eval(masks_p, masks_g, iou_type="segm")
    assert stats == pytest.approx(detection.coco_eval(boxes_p, boxes_g), abs=1e-12)


def test_segm_recall_breaks_iou_ties_by_the_first_gt_as_boxes_do():
    # pred 0 overlaps both GTs by 1/3 (a tie: the first GT wins); pred 1 is the first GT exactly
    boxes = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], np.float64)
    gt_boxes = np.array([[0, 0, 10, 10], [10, 0, 20, 10]], np.float64)
    dense = np.zeros((4, 12, 24), bool)
    for k, (x0, y0, x1, y1) in enumerate(np.concatenate([boxes, gt_boxes]).astype(int)):
        dense[k, y0:y1, x0:x1] = True
    pred = {"boxes": boxes, "scores": [0.9, 0.8], "labels": [1, 1]}
    gt = {"boxes": gt_boxes, "labels": [1, 1]}
    pred_m = {"masks": dense[:2], "scores": [0.9, 0.8], "labels": [1, 1]}
    gt_m = {"masks": dense[2:], "labels": [1, 1]}
    ref = detection.recall_reward(pred, gt, iou_thresholds=[0.3])
    assert ref == pytest.approx(1 - 0.3)  # one GT found, one duplicate
    assert detection.recall_reward(pred_m, gt_m, iou_thresholds=[0.3], iou_type="segm") == ref


def test_readme_segm_block_runs_and_says_what_it_computes():
    text = (ROOT / "README.md").read_text()
    block = text[text.index("### Mask AP and mask rewards") : text.index("<!-- END instance-masks -->")]
    import re

    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert round(detection.map_reward(scope["pred"], scope["gt"], iou_type="segm"), 9) == 0.3
    assert detection.match_iou(scope["pred"], scope["gt"], iou_type="segm").tolist() == [0.6]
    assert "--iou-type segm" in block


def test_repeated_gt_objects_and_mask_forms_give_the_same_rewards():
    """A REINFORCE batch repeats each GT object; any mask form (stack, RLE, uncompressed, mixed) is one mask."""
    rng = np.random.default_rng(8)
    preds, gts = [], []
    for _ in range(10):
        gt, dets = random_segm_dataset(rng, n_images=1, max_size=25)
        p, g = _examples(gt, dets, rng)
        preds.append(p[0]), gts.append(g[0])
    singles = [detection.map_reward(p, g, iou_type="segm") for p, g in zip(preds, gts)]
    assert len(set(singles)) >= 4
    repeated_p = [p for p in preds for _ in range(3)]
    repeated_g = [g for g in gts for _ in range(3)]
    np.testing.assert_array_equal(
        detection.map_reward_batch(repeated_p, repeated_g, iou_type="segm"), np.repeat(singles, 3)
    )
    forms = []
    for p in preds:
        rles = [masks.compress(m) for m in p["masks"]]
        dense = masks.decode(rles).transpose(2, 0, 1).astype(bool) if rles else []
        mixed = [masks.decompress(r) if k % 2 else d for k, (r, d) in enumerate(zip(rles, dense))]
        forms.append([{**p, "masks": m} for m in (dense, [masks.decompress(r) for r in rles], mixed)])
    for k in range(3):
        out = detection.map_reward_batch([f[k] for f in forms], gts, iou_type="segm")
        np.testing.assert_array_equal(out, singles)


def test_gt_without_bbox_or_area_uses_the_mask():
    gt, dets = random_segm_dataset(np.random.default_rng(2), n_images=6)
    bare = copy.deepcopy(gt)
    for im in gt["images"]:
        for a in gt["annotations"]:
            if a["image_id"] == im["id"]:
                rle = masks.from_coco_segmentation(
                    a["segmentation"], im["height"], im["width"], degenerate="pycocotools"
                )
                a["area"] = float(masks.area(rle))
    for a in bare["annotations"]:
        del a["bbox"], a["area"]
    ref = pycoco_segm(gt, dets)
    result = detection.coco_eval_files(bare, dets, iou_type="segm")
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)


def _pad(arrays, width, fill=0):
    """(B, width, ...) stack of ragged (n_b, ...) arrays, and the (B, width) valid mask."""
    out = np.full((len(arrays), width, *arrays[0].shape[1:]), fill, dtype=arrays[0].dtype)
    valid = np.zeros((len(arrays), width), bool)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
        valid[b, : len(a)] = True
    return out, valid


def test_padded_segm_rewards_equal_padded_box_rewards_on_rectangles():
    """Padded (B, K, H, W) masks score as padded boxes do on rectangles (box rewards are tested against the oracles)."""
    rng = np.random.default_rng(8)
    size = 40
    pairs = [_rectangle_pair(rng, size) for _ in range(40)]

    def rects(b):
        out = np.zeros((len(b), size, size), bool)
        for k, (x0, y0, x1, y1) in enumerate(b.astype(int)):
            out[k, y0:y1, x0:x1] = True
        return out

    preds = {"boxes": [p["boxes"] for p, *_ in pairs], "masks": [rects(p["boxes"]) for p, *_ in pairs]}
    gts = {"boxes": [g["boxes"] for _, g, *_ in pairs], "masks": [rects(g["boxes"]) for _, g, *_ in pairs]}
    pad_p, pad_g = {}, {}
    for key in ("boxes", "masks"):
        pad_p[key], pad_p["valid"] = _pad(preds[key], 12)
        pad_g[key], pad_g["valid"] = _pad(gts[key], 6)
    pad_p["boxes"][~pad_p["valid"]] = np.nan  # padding is never read
    pad_p["scores"], _ = _pad([p["scores"] for p, *_ in pairs], 12)
    pad_p["labels"], _ = _pad([p["labels"] for p, *_ in pairs], 12)
    pad_g["labels"], _ = _pad([g["labels"] for _, g, *_ in pairs], 6)
    pad_g["iscrowd"], _ = _pad([g["iscrowd"] for _, g, *_ in pairs], 6)
    box_p = {k: v for k, v in pad_p.items() if k != "masks"}
    box_g = {k: v for k, v in pad_g.items() if k != "masks"}
    mask_p = {k: v for k, v in pad_p.items() if k != "boxes"}
    mask_g = {k: v for k, v in pad_g.items() if k != "boxes"}
    for fn, kwargs in [
        (detection.map_reward_padded, {}),
        (detection.map_reward_padded, {"penalize_absent_classes": True, "max_dets": 3}),
        (detection.recall_reward_padded, {"normalize": True}),
        (detection.match_iou_padded, {"iou_threshold": 0.3}),
    ]:
        ref = fn(box_p, box_g, **kwargs)
        np.testing.assert_array_equal(fn(mask_p, mask_g, iou_type="segm", **kwargs), ref)
        assert len(set(ref.round(6).ravel().tolist())) > 5
    no_scores = {k: v for k, v in mask_p.items() if k != "scores"}  # rewards that ignore scores
    np.testing.assert_array_equal(
        detection.recall_reward_padded(no_scores, mask_g, iou_type="segm"),
        detection.recall_reward_padded(box_p, box_g),
    )
    # The padded form scores as the list form does.
    list_p = [{"masks": m[v], "scores": s[v], "labels": lab[v]} for m, s, lab, v in zip(
        mask_p["masks"], mask_p["scores"], mask_p["labels"], mask_p["valid"])]  # fmt: skip
    list_g = [{"masks": m[v], "labels": lab[v], "iscrowd": c[v]} for m, lab, c, v in zip(
        mask_g["masks"], mask_g["labels"], mask_g["iscrowd"], mask_g["valid"])]  # fmt: skip
    np.testing.assert_array_equal(
        detection.map_reward_padded(mask_p, mask_g, iou_type="segm"),
        detection.map_reward_batch(list_p, list_g, iou_type="segm"),
    )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"masks": None}, r"`preds` is missing the key 'masks' \(iou_type='segm'\)"),
        ({"masks": np.zeros((1, 2, 8))}, r'`preds\["masks"\]` must have shape \(B, K, H, W\)'),
        ({"valid": np.ones((1, 3), bool)}, r'`preds\["valid"\]` must have shape \(1, 2\)'),
        ({"scores": None}, r"`preds` is missing the key 'scores'"),
        ({"masks": np.full((1, 2, 8, 8), 0.5)}, r'`preds\[0\]\["masks"\]\[0\]` must hold only 0 and 1'),
    ],
)
def test_padded_segm_errors_name_the_key(change, match):
    preds = {"masks": np.zeros((1, 2, 8, 8), bool), "scores": np.ones((1, 2)), "labels": np.zeros((1, 2), int),
             "valid": np.ones((1, 2), bool)}  # fmt: skip
    gts = {
        "masks": np.ones((1, 1, 8, 8), bool),
        "labels": np.zeros((1, 1), int),
        "valid": np.ones((1, 1), bool),
    }
    for k, v in change.items():
        if v is None:
            del preds[k]
        else:
            preds[k] = v
    with pytest.raises(ValueError, match=match):
        detection.map_reward_padded(preds, gts, iou_type="segm")


def test_rewards_reusing_buffers_leave_earlier_masks_and_other_threads_alone():
    """The rewards pack into per-thread reusable buffers: an evaluator's kept masks and other threads are unaffected."""
    import threading

    rng = np.random.default_rng(5)
    gt_a, dets_a = random_segm_dataset(rng, n_images=6)
    gt_b, dets_b = random_segm_dataset(rng, n_images=6)
    preds_a, gts_a = _examples(gt_a, dets_a, rng)
    preds_b, gts_b = _examples(gt_b, dets_b, rng)
    expected = detection.coco_eval(preds_a, gts_a, iou_type="segm")
    ev = detection.CocoEvaluator(iou_type="segm")
    ev.update(preds_a, gts_a)
    reward_a = detection.map_reward_batch(preds_a, gts_a, iou_type="segm")
    reward_b = detection.map_reward_batch(preds_b, gts_b, iou_type="segm")  # reuses the buffers
    assert ev.compute().as_dict() == expected
    assert detection.map_reward_batch(preds_a, gts_a, iou_type="segm").tolist() == reward_a.tolist()
    results: dict[int, list] = {}

    def work(k):
        preds, gts = (preds_a, gts_a) if k % 2 else (preds_b, gts_b)
        results[k] = [detection.map_reward_batch(preds, gts, iou_type="segm").tolist() for _ in range(20)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, runs in results.items():
        assert all(r == (reward_a if k % 2 else reward_b).tolist() for r in runs)
    assert reward_a.tolist() != reward_b.tolist()
