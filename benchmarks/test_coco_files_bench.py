"""COCO files -> stats: our CLI and coco_eval_files vs faster-coco-eval and pycocotools.

Workload of issue 17: a generated 5000-image / 36k-GT / 100k-detection bbox
dataset (80 categories, 1% crowd, mask-like areas; written to a temporary
directory, never committed).

(a) fresh processes, end to end (start-up, imports, kernel cache load, json
    parse, packing, evaluation, summary): ``python -m rewards.detection GT RES``
    vs a script doing COCO(), loadRes, evaluate, accumulate, summarize;
(b) in one warm process: files on disk -> stats.
``test_cli_breakdown`` prints where the CLI's time goes (run with ``-s``).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rewards import detection

N_IMAGES, N_GT, N_DET = 5000, 36000, 100000
WORKLOAD_FRESH = "coco files 5000 img, fresh process"
WORKLOAD_WARM = "coco files 5000 img, in-process"


def make_coco_files(gt_path: Path, res_path: Path, seed: int = 0) -> None:
    """A COCO-like instances file and results file (boxes jittered from the GT, 30% spurious)."""
    rng = np.random.default_rng(seed)
    image_ids = rng.permutation(np.arange(1, 3 * N_IMAGES))[:N_IMAGES]
    cat_ids = np.sort(rng.choice(np.arange(1, 91), 80, replace=False))
    gt_img = rng.choice(image_ids, N_GT)
    wh = np.exp(rng.uniform(np.log(4), np.log(300), (N_GT, 2)))
    xy = rng.uniform(0, 300, (N_GT, 2))
    gt_cat = rng.choice(cat_ids, N_GT)
    crowd = rng.random(N_GT) < 0.01
    area = wh[:, 0] * wh[:, 1] * rng.uniform(0.4, 0.9, N_GT)
    anns = [
        {
            "id": k + 1,
            "image_id": int(gt_img[k]),
            "category_id": int(gt_cat[k]),
            "bbox": [round(float(v), 2) for v in (*xy[k], *wh[k])],
            "area": float(area[k]),
            "iscrowd": int(crowd[k]),
            "segmentation": [],
        }
        for k in range(N_GT)
    ]
    src = rng.integers(0, N_GT, N_DET)
    box = np.concatenate([xy[src], wh[src]], 1)
    box[:, :2] += rng.normal(0, 3, (N_DET, 2))
    box[:, 2:] *= rng.uniform(0.8, 1.2, (N_DET, 2))
    det_img = np.where(rng.random(N_DET) < 0.7, gt_img[src], rng.choice(image_ids, N_DET))
    det_cat = np.where(rng.random(N_DET) < 0.9, gt_cat[src], rng.choice(cat_ids, N_DET))
    scores = rng.random(N_DET)
    dets = [
        {
            "image_id": int(det_img[k]),
            "category_id": int(det_cat[k]),
            "bbox": [round(float(v), 2) for v in box[k]],
            "score": round(float(scores[k]), 3),
        }
        for k in range(N_DET)
    ]
    images = [{"id": int(i), "width": 640, "height": 480, "file_name": f"{i:012d}.jpg"} for i in image_ids]
    categories = [{"id": int(c), "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    gt_path.write_text(
        json.dumps({"info": {}, "images": images, "annotations": anns, "categories": categories})
    )
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
    ev = COCOeval(gt, gt.loadRes(sys.argv[3]), iouType="bbox", **kwargs)
    ev.evaluate(); ev.accumulate(); ev.summarize()
""")

BREAKDOWN_SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy, numba
    from rewards import _detection_cli
    _detection_cli._load_numba_without_scipy()  # as the CLI does
    t1 = time.perf_counter()
    from rewards import _coco_eval, _coco_files, detection
    t2 = time.perf_counter()
    gt_data, _ = _coco_files.read_json(sys.argv[1], ""); res_data, _ = _coco_files.read_json(sys.argv[2], "")
    t3 = time.perf_counter()
    gt = _coco_files.load_ground_truth(gt_data); p = _coco_files.load_results(res_data, gt)
    t4 = time.perf_counter()
    tiny = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}]}
    detection.coco_eval_files(tiny, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    t5 = time.perf_counter()
    params = _coco_eval.make_params()
    ev, _, _ = _coco_eval.evaluate(p, gt.packed, gt.categories, params)
    t6 = time.perf_counter()
    lines = _coco_eval.summary_lines(ev, _coco_eval.stats(ev))
    t7 = time.perf_counter()
    print(json.dumps({"numpy + numba import (CLI)": t1 - t0, "rewards import": t2 - t1, "json parse": t3 - t2,
                      "validate + pack": t4 - t3, "kernel cache load": t5 - t4, "evaluate + accumulate": t6 - t5,
                      "summarize": t7 - t6}))
""")


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("coco_files")
    gt, res = d / "instances.json", d / "results.json"
    make_coco_files(gt, res)
    (d / "reference.py").write_text(REFERENCE_SCRIPT)
    (d / "breakdown.py").write_text(BREAKDOWN_SCRIPT)
    # Fill the kernel cache (a user pays the compile once per machine) and check the numbers agree.
    ours = subprocess.run(
        [sys.executable, "-m", "rewards.detection", str(gt), str(res)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    ref = subprocess.run(
        [sys.executable, str(d / "reference.py"), "faster-coco-eval", str(gt), str(res)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert ours == [line for line in ref if line.startswith(" Average")][:12]  # it adds AR@.5 and AR@.75
    return d, gt, res


def _run(*args):
    subprocess.run([sys.executable, *map(str, args)], check=True, capture_output=True)


def test_cli_fresh_process_ours(benchmark, recorder, coco_files):
    _, gt, res = coco_files
    benchmark.pedantic(_run, args=("-m", "rewards.detection", gt, res), rounds=5, iterations=1)
    recorder(benchmark, WORKLOAD_FRESH, "ours python -m rewards.detection", 1)


@pytest.mark.parametrize("ref, rounds", [("faster-coco-eval", 3), ("pycocotools", 1)])
def test_cli_fresh_process_reference(benchmark, recorder, coco_files, ref, rounds):
    d, gt, res = coco_files
    benchmark.pedantic(_run, args=(d / "reference.py", ref, gt, res), rounds=rounds, iterations=1)
    recorder(benchmark, WORKLOAD_FRESH, ref, 1)


def test_cli_breakdown(benchmark, coco_files):
    d, gt, res = coco_files

    def run():
        out = subprocess.run(
            [sys.executable, str(d / "breakdown.py"), str(gt), str(res)],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    phases = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(phases)
    print("\nCLI phases (one fresh process, seconds):")
    for name, seconds in phases.items():
        print(f"  {name:24s} {seconds:7.3f}")


def test_in_process_ours(benchmark, recorder, coco_files):
    _, gt, res = coco_files
    detection.coco_eval_files(gt, res)
    benchmark.pedantic(detection.coco_eval_files, args=(gt, res), rounds=5, iterations=1)
    recorder(benchmark, WORKLOAD_WARM, "ours coco_eval_files", 1)


def reference_stats(name, gt, res, iou_type="bbox"):
    """The 12 COCOeval stats of a GT and a results file with faster-coco-eval or pycocotools, quiet."""
    if name == "faster-coco-eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval

        kwargs = {"print_function": lambda *a: None}
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        kwargs = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(res)), iouType=iou_type, **kwargs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:12]


@pytest.mark.parametrize("ref, rounds", [("faster-coco-eval", 3), ("pycocotools", 1)])
def test_in_process_reference(benchmark, recorder, coco_files, ref, rounds):
    _, gt, res = coco_files
    stats = benchmark.pedantic(reference_stats, args=(ref, gt, res), rounds=rounds, iterations=1)
    np.testing.assert_allclose(detection.coco_eval_files(gt, res).stats, stats[:12], atol=1e-9, rtol=0)
    recorder(benchmark, WORKLOAD_WARM, ref, 1)
