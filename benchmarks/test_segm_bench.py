"""COCO segm evaluation and segm rewards: ours vs faster-coco-eval and pycocotools.

Workload of issue 18: a generated 500-image dataset (640x480), ~20 GT masks
per image (polygons, compressed RLE, a few crowd uncompressed RLE) and 100
detections per image (compressed RLE, most near a GT), written to a temporary
directory, never committed.

(a) fresh processes, end to end: ``python -m rewards.detection GT RES --iou-type segm``
    vs a script doing COCO(), loadRes, evaluate, accumulate, summarize (iouType="segm");
(b) in one warm process: files on disk -> stats;
(c) per pair: ``map_reward_batch(iou_type="segm")`` vs faster-coco-eval run on each pair.

``python -m benchmarks.test_segm_bench --ratios`` (from the repository root) times ours and the references in
turn (best of a few each, robust on busy shared cores) and prints the ratios.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.test_coco_files_bench import reference_stats
from rewards import detection, masks

N_IMAGES, GT_PER_IMAGE, DET_PER_IMAGE, H, W = 500, 20, 100, 480, 640
N_PAIRS = 32
WORKLOAD_FRESH = "coco segm 500 img, fresh process"
WORKLOAD_WARM = "coco segm 500 img, in-process"
WORKLOAD_PAIRS = "segm map_reward per pair"


def _polygon(rng, cx, cy, rx, ry, k=16):
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = rng.uniform(0.6, 1.0, k)
    xy = np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1)
    return [round(float(v), 2) for v in np.clip(xy, 0, [W, H]).ravel()]


def _rle_json(rle):
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def make_segm_files(gt_path: Path, res_path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cat_ids = list(range(1, 21))
    images, anns, dets = [], [], []
    for img in range(1, N_IMAGES + 1):
        images.append({"id": img, "height": H, "width": W})
        objs = []
        for _ in range(int(rng.integers(GT_PER_IMAGE - 5, GT_PER_IMAGE + 6))):
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            rx, ry = np.exp(rng.uniform(np.log(3), np.log(150), 2))
            cat = int(rng.choice(cat_ids))
            poly = [_polygon(rng, cx, cy, rx, ry)]
            rle = masks.from_polygons(poly, H, W)
            kind = rng.random()
            crowd = kind < 0.02
            if crowd:
                segm = masks.decompress(rle)
            elif kind < 0.3:
                segm = _rle_json(rle)
            else:
                segm = poly
            area = float(masks.area(rle))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img,
                    "category_id": cat,
                    "segmentation": segm,
                    "area": area,
                    "bbox": masks.to_bbox(rle).tolist(),
                    "iscrowd": int(crowd),
                }
            )
            objs.append((cx, cy, rx, ry, cat))
        det_polys, det_cats = [], []
        for _ in range(DET_PER_IMAGE):
            if rng.random() < 0.7:
                cx, cy, rx, ry, cat = objs[int(rng.integers(len(objs)))]
                cx, cy = cx + rng.normal(0, 0.1 * rx), cy + rng.normal(0, 0.1 * ry)
                rx, ry = rx * rng.uniform(0.8, 1.2), ry * rng.uniform(0.8, 1.2)
                if rng.random() < 0.1:
                    cat = int(rng.choice(cat_ids))
            else:
                cx, cy = rng.uniform(0, W), rng.uniform(0, H)
                rx, ry = np.exp(rng.uniform(np.log(3), np.log(100), 2))
                cat = int(rng.choice(cat_ids))
            det_polys.append([_polygon(rng, cx, cy, rx, ry)])
            det_cats.append(cat)
        for poly, cat in zip(det_polys, det_cats):
            rle = masks.from_polygons(poly, H, W)
            dets.append(
                {
                    "image_id": img,
                    "category_id": cat,
                    "segmentation": _rle_json(rle),
                    "score": round(float(rng.random()), 3),
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    res_path.write_text(json.dumps(dets))


REFERENCE_SCRIPT = textwrap.dedent("""
    import sys
    if sys.argv[1] == "faster-coco-eval":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
        kwargs = {"print_function": print}
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        kwargs = {}
    gt = COCO(sys.argv[2])
    ev = COCOeval(gt, gt.loadRes(sys.argv[3]), iouType="segm", **kwargs)
    ev.evaluate(); ev.accumulate(); ev.summarize()
""")


def _setup(d: Path) -> tuple[Path, Path, Path]:
    gt, res = d / "instances.json", d / "results.json"
    make_segm_files(gt, res)
    (d / "reference.py").write_text(REFERENCE_SCRIPT)
    # Fill the kernel cache (a user pays the compile once per machine) and check the numbers agree.
    ours = _run("-m", "rewards.detection", gt, res, "--iou-type", "segm").splitlines()
    ref = _run(d / "reference.py", "faster-coco-eval", gt, res).splitlines()
    assert ours == [line for line in ref if line.startswith(" Average")][:12]
    return d, gt, res


def _run(*args) -> str:
    return subprocess.run(
        [sys.executable, *map(str, args)], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def segm_files(tmp_path_factory):
    return _setup(tmp_path_factory.mktemp("segm_files"))


def _quiet_reference(name, gt, res):
    return reference_stats(name, gt, res, iou_type="segm")


def _pairs(gt: Path, res: Path):
    """The first N_PAIRS images as (pred, gt) dicts with RLE masks, and as one-image COCO datasets."""
    data = json.loads(gt.read_text())
    dets = json.loads(res.read_text())
    preds, gts, datasets = [], [], []
    for img in range(1, N_PAIRS + 1):
        anns = [a for a in data["annotations"] if a["image_id"] == img]
        ds = [d for d in dets if d["image_id"] == img]
        rles = [masks.from_coco_segmentation(a["segmentation"], H, W) for a in anns]
        gts.append(
            {
                "masks": rles,
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
        one = {"images": [data["images"][img - 1]], "annotations": anns, "categories": data["categories"]}
        datasets.append((one, ds))
    return preds, gts, datasets


def _copies(datasets):
    """Fresh copies of the one-image datasets (loadRes and _prepare mutate them): made outside the timing."""
    import copy

    return copy.deepcopy(datasets)


def _faster_per_pair(datasets):
    """faster-coco-eval's AP of each pair (give it :func:`_copies`: it mutates the dicts)."""
    from faster_coco_eval import COCO
    from faster_coco_eval import COCOeval_faster as COCOeval

    out = []
    for one, ds in datasets:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = one
            coco.createIndex()
            ev = COCOeval(coco, coco.loadRes(ds), iouType="segm", print_function=lambda *a: None)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out.append(ev.stats[0])
    return np.array(out)


def test_cli_fresh_process_ours(benchmark, recorder, segm_files):
    _, gt, res = segm_files
    benchmark.pedantic(
        _run, args=("-m", "rewards.detection", gt, res, "--iou-type", "segm"), rounds=3, iterations=1
    )
    recorder(benchmark, WORKLOAD_FRESH, "ours python -m rewards.detection --iou-type segm", 1)


@pytest.mark.parametrize("ref, rounds", [("faster-coco-eval", 3), ("pycocotools", 1)])
def test_cli_fresh_process_reference(benchmark, recorder, segm_files, ref, rounds):
    d, gt, res = segm_files
    benchmark.pedantic(_run, args=(d / "reference.py", ref, gt, res), rounds=rounds, iterations=1)
    recorder(benchmark, WORKLOAD_FRESH, ref, 1)


def test_in_process_ours(benchmark, recorder, segm_files):
    _, gt, res = segm_files
    detection.coco_eval_files(gt, res, iou_type="segm")
    benchmark.pedantic(
        detection.coco_eval_files, args=(gt, res), kwargs={"iou_type": "segm"}, rounds=3, iterations=1
    )
    recorder(benchmark, WORKLOAD_WARM, "ours coco_eval_files", 1)


def test_in_process_faster_coco_eval(benchmark, recorder, segm_files):
    _, gt, res = segm_files
    ref = benchmark.pedantic(_quiet_reference, args=("faster-coco-eval", gt, res), rounds=3, iterations=1)
    recorder(benchmark, WORKLOAD_WARM, "faster-coco-eval", 1)
    np.testing.assert_allclose(
        detection.coco_eval_files(gt, res, iou_type="segm").stats, ref, atol=1e-9, rtol=0
    )


def test_pairs_ours(benchmark, recorder, segm_files):
    _, gt, res = segm_files
    preds, gts, datasets = _pairs(gt, res)
    ours = detection.map_reward_batch(preds, gts, iou_type="segm")
    np.testing.assert_allclose(ours, _faster_per_pair(_copies(datasets)), atol=1e-9, rtol=0)
    benchmark(detection.map_reward_batch, preds, gts, iou_type="segm")
    recorder(benchmark, WORKLOAD_PAIRS, "ours map_reward_batch", N_PAIRS)


def test_pairs_faster_coco_eval(benchmark, recorder, segm_files):
    _, gt, res = segm_files
    _, _, datasets = _pairs(gt, res)
    benchmark.pedantic(_faster_per_pair, setup=lambda: ((_copies(datasets),), {}), rounds=3, iterations=1)
    recorder(benchmark, WORKLOAD_PAIRS, "faster-coco-eval per pair", N_PAIRS)


def _best(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def interleaved_ratios(repeats: int = 5) -> None:
    """Each of ours and the references timed in turn, best of ``repeats``; prints the reference / ours ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        d, gt, res = _setup(Path(tmp))
        preds, gts, datasets = _pairs(gt, res)
        np.testing.assert_allclose(
            detection.map_reward_batch(preds, gts, iou_type="segm"),
            _faster_per_pair(_copies(datasets)),
            atol=1e-9,
            rtol=0,
        )
        t = {
            "cli ours": lambda: _run("-m", "rewards.detection", gt, res, "--iou-type", "segm"),
            "cli faster-coco-eval": lambda: _run(d / "reference.py", "faster-coco-eval", gt, res),
            "cli pycocotools": lambda: _run(d / "reference.py", "pycocotools", gt, res),
            "warm ours": lambda: detection.coco_eval_files(gt, res, iou_type="segm"),
            "warm faster-coco-eval": lambda: _quiet_reference("faster-coco-eval", gt, res),
            "pairs ours": lambda: detection.map_reward_batch(preds, gts, iou_type="segm"),
            "pairs faster-coco-eval": _faster_per_pair,
        }
        best = {k: np.inf for k in t}
        for _ in range(repeats):
            for k, fn in t.items():
                if fn is _faster_per_pair:
                    fresh = _copies(datasets)
                    best[k] = min(best[k], _best(lambda: _faster_per_pair(fresh), 1))  # noqa: B023
                else:
                    best[k] = min(best[k], _best(fn, 5 if k.startswith("pairs") else 1))
        for k, v in best.items():
            print(f"{k:24s} {v:8.3f} s")
        print(
            f"fresh CLI: {best['cli faster-coco-eval'] / best['cli ours']:.2f}x faster-coco-eval, "
            f"{best['cli pycocotools'] / best['cli ours']:.2f}x pycocotools"
        )
        print(f"warm in-process: {best['warm faster-coco-eval'] / best['warm ours']:.2f}x faster-coco-eval")
        print(f"per pair: {best['pairs faster-coco-eval'] / best['pairs ours']:.1f}x faster-coco-eval")


if __name__ == "__main__":
    if "--ratios" in sys.argv:
        interleaved_ratios()
