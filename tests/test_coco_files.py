"""COCO files in, exact metrics out: coco_eval_files, the CLI and CocoEvaluator against pycocotools."""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rewards import detection
from tests.coco_oracle import (
    assert_per_class_close,
    faster_coco_files_eval,
    per_class_reference,
    pycoco_files_eval,
    random_coco_dataset,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_GT = DATA / "instances_val2014_100.json.gz"
DEMO_RESULTS = DATA / "cocoapi_instances_val2014_fakebbox100_results.json.gz"


def _write(tmp_path, gt, dets):
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(dets))
    return gt_path, res_path


@pytest.mark.parametrize("seed", range(3))
def test_files_match_pycocotools_and_faster_coco_eval(tmp_path, seed):
    gt, dets = random_coco_dataset(np.random.default_rng(seed))
    ref = pycoco_files_eval(gt, dets)
    result = detection.coco_eval_files(*_write(tmp_path, gt, dets), per_image=True)
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.stats, faster_coco_files_eval(gt, dets).stats[:12], atol=1e-9, rtol=0)
    assert_per_class_close(result.per_class, per_class_reference(ref))
    assert result.lines == ref.printed
    # The same from loaded objects, and equal to the dict API image by image.
    again = detection.coco_eval_files(gt, dets)
    np.testing.assert_array_equal(again.stats, result.stats)
    image_ids = sorted(im["id"] for im in gt["images"])
    preds, gts = _as_dicts(gt, dets, image_ids)
    np.testing.assert_array_equal(
        list(detection.coco_eval(preds, gts, box_format="xywh").values()), result.stats
    )
    per_image = detection.map_reward_batch(preds, gts, box_format="xywh")
    assert list(result.per_image) == image_ids
    np.testing.assert_array_equal(list(result.per_image.values()), per_image)


def _as_dicts(gt, dets, image_ids):
    """Per-image dicts (xywh) of a COCO GT and results, images in ``image_ids`` order."""
    preds = {i: {"boxes": [], "scores": [], "labels": []} for i in image_ids}
    gts = {i: {"boxes": [], "labels": [], "iscrowd": [], "area": []} for i in image_ids}
    for a in gt["annotations"]:
        g = gts[a["image_id"]]
        g["boxes"].append(a["bbox"]), g["labels"].append(a["category_id"])
        g["iscrowd"].append(a["iscrowd"]), g["area"].append(a["area"])
    for d in dets:
        p = preds[d["image_id"]]
        p["boxes"].append(d["bbox"]), p["scores"].append(d["score"]), p["labels"].append(d["category_id"])
    pack = lambda d: {
        k: np.array(v, dtype=np.int64 if k in ("labels", "iscrowd") else float).reshape(
            (-1, 4) if k == "boxes" else (-1,)
        )
        for k, v in d.items()
    }
    return [pack(preds[i]) for i in image_ids], [pack(gts[i]) for i in image_ids]


def test_empty_results_give_the_stats_of_no_detections(tmp_path):
    gt, _ = random_coco_dataset(np.random.default_rng(5), n_images=10)
    result = detection.coco_eval_files(*_write(tmp_path, gt, []), per_image=True)
    np.testing.assert_allclose(result.stats, pycoco_files_eval(gt, []).stats, atol=1e-9, rtol=0)
    assert set(result.stats.tolist()) <= {0.0, -1.0} and result.stats[0] == 0.0


@pytest.mark.parametrize("max_dets", [(1, 10, 100), (1, 5, 20), (2, 100, 300), (100, 1, 10)])
def test_custom_max_dets_consistent_and_pycocotools_rules(max_dets):
    gt, dets = random_coco_dataset(np.random.default_rng(11), n_images=25)
    ref = pycoco_files_eval(gt, dets, max_dets=sorted(max_dets))
    compat = detection.coco_eval_files(gt, dets, max_dets=max_dets, max_dets_rule="pycocotools")
    np.testing.assert_allclose(compat.stats, ref.stats, atol=1e-9, rtol=0)
    assert compat.lines == ref.printed
    # Consistent: stats[0] is AP at the last max_dets, like stats[1:6]; the rest is pycocotools'.
    ours = detection.coco_eval_files(gt, dets, max_dets=max_dets)
    np.testing.assert_allclose(ours.stats[1:], ref.stats[1:], atol=1e-9, rtol=0)
    last = ref.eval["precision"][:, :, :, 0, -1]
    assert ours.stats[0] == pytest.approx(np.mean(last[last > -1]), abs=1e-9)
    assert f"maxDets={sorted(max_dets)[-1]:>3d} ]" in ours.lines[0]


def test_custom_area_ranges_match_pycocotools():
    gt, dets = random_coco_dataset(np.random.default_rng(12), n_images=25)
    ranges = [(0, 1e12), (0, 500.0), (500.0, 5000.0), (5000.0, 1e12)]
    ref = pycoco_files_eval(gt, dets, area_ranges=ranges)
    for given in (ranges, dict(zip(("all", "small", "medium", "large"), ranges))):
        ours = detection.coco_eval_files(gt, dets, area_ranges=given, per_image=True)
        np.testing.assert_allclose(ours.stats, ref.stats, atol=1e-9, rtol=0)
        assert_per_class_close(ours.per_class, per_class_reference(ref))


@pytest.mark.skipif(not DEMO_GT.exists() or not DEMO_RESULTS.exists(), reason="shared/data not present")
def test_real_cocoapi_demo_data_prints_the_published_stats():
    with gzip.open(DEMO_GT) as f:
        gt = json.load(f)
    with gzip.open(DEMO_RESULTS) as f:
        dets = json.load(f)
    ref = pycoco_files_eval(gt, dets)
    result = detection.coco_eval_files(DEMO_GT, DEMO_RESULTS, per_image=True)
    np.testing.assert_allclose(result.stats, ref.stats, atol=1e-9, rtol=0)
    np.testing.assert_allclose(result.stats, faster_coco_files_eval(gt, dets).stats[:12], atol=1e-9, rtol=0)
    assert_per_class_close(result.per_class, per_class_reference(ref))
    assert result.lines == ref.printed
    published = [0.505, 0.697, 0.573, 0.586, 0.519, 0.501, 0.387, 0.594, 0.595, 0.640, 0.566, 0.564]
    assert [float(f"{s:.3f}") for s in result.stats] == published


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rewards.detection", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


def test_cli_prints_pycocotools_summary_and_writes_json(tmp_path):
    gt, dets = random_coco_dataset(np.random.default_rng(3), n_images=20)
    gt_path, res_path = _write(tmp_path, gt, dets)
    out = tmp_path / "out.json"
    run = _cli(gt_path, res_path, "--per-class", "--json-out", out)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no RuntimeWarning about rewards.detection being imported twice
    ref = pycoco_files_eval(gt, dets)
    lines = run.stdout.splitlines()
    assert lines[:12] == ref.printed
    table = lines[12:]
    assert re.match(r"\s*category\s+name\s+AP\s+AP50\s+AP75\s+AR100", table[0])
    assert len(table) == 1 + len(gt["categories"])
    written = json.loads(out.read_text())
    np.testing.assert_allclose(written["stats"], ref.stats, atol=1e-9, rtol=0)
    assert written["per_class"].keys() == {str(c["id"]) for c in gt["categories"]}
    assert all(set(v) == {"ap", "ap50", "ap75", "ar100"} for v in written["per_class"].values())
    assert written["per_image"].keys() == {str(im["id"]) for im in gt["images"]}
    assert_per_class_close({int(k): v for k, v in written["per_class"].items()}, per_class_reference(ref))


def test_cli_options_and_bad_input_exit_status(tmp_path):
    gt, dets = random_coco_dataset(np.random.default_rng(4), n_images=10)
    gt_path, res_path = _write(tmp_path, gt, dets)
    run = _cli(
        gt_path,
        res_path,
        "--max-dets",
        "1",
        "5",
        "50",
        "--area-ranges",
        "0:1e10",
        "0:400",
        "400:4000",
        "4000:1e10",
        "--max-dets-rule",
        "pycocotools",
    )
    assert run.returncode == 0, run.stderr
    ref = pycoco_files_eval(
        gt, dets, max_dets=[1, 5, 50], area_ranges=[(0, 1e10), (0, 400), (400, 4000), (4000, 1e10)]
    )
    assert run.stdout.splitlines() == ref.printed
    bad = copy.deepcopy(dets)
    bad[3]["bbox"] = bad[3]["bbox"][:3]
    res_path.write_text(json.dumps(bad))
    run = _cli(gt_path, res_path)
    assert run.returncode == 2 and run.stdout == ""
    assert re.search(r'results\.json: \[3\]\["bbox"\] must be a list of 4 numbers', run.stderr)
    run = _cli(gt_path, tmp_path / "missing.json")
    assert run.returncode == 2 and "missing.json: cannot be read" in run.stderr


def _mutated(section, index, key, value):
    gt, dets = random_coco_dataset(np.random.default_rng(9), n_images=8)
    target = dets if section == "results" else gt[section]
    if value is KeyError:
        del target[index][key]
    else:
        target[index][key] = value
    return gt, dets


@pytest.mark.parametrize(
    "section, index, key, value, match",
    [
        ("results", 2, "bbox", [1, 2, 3], r'results\.json: \[2\]\["bbox"\] must be a list of 4 numbers'),
        ("results", 4, "bbox", [1, 2, float("nan"), 3], r'\[4\]\["bbox"\] contains NaN or infinite'),
        ("results", 1, "bbox", [1, 2, -3, 3], r'\[1\]\["bbox"\] has a negative width'),
        ("results", 5, "score", float("inf"), r'\[5\]\["score"\] must be finite'),
        ("results", 5, "score", None, r'\[5\]\["score"\] must be a number'),
        ("results", 0, "image_id", 10**6, r'\[0\]\["image_id"\] 1000000 is not an image of the ground truth'),
        ("results", 3, "category_id", 10**6, r'\[3\]\["category_id"\] 1000000 is not a category'),
        ("results", 6, "score", KeyError, r"results\.json: \[6\] is missing the key 'score'"),
        ("annotations", 3, "bbox", [0, 0, 1], r'gt\.json: annotations\[3\]\["bbox"\] must be a list of 4'),
        ("annotations", 2, "bbox", [0, 0, float("inf"), 1], r'annotations\[2\]\["bbox"\] contains NaN'),
        (
            "annotations",
            1,
            "image_id",
            10**6,
            r'annotations\[1\]\["image_id"\] 1000000 is not the id of an image',
        ),
        (
            "annotations",
            4,
            "category_id",
            -5,
            r'annotations\[4\]\["category_id"\] -5 is not the id of a category',
        ),
        ("annotations", 0, "id", KeyError, r"annotations\[0\] is missing the key 'id'"),
        ("annotations", 5, "id", 1.5, r'annotations\[5\]\["id"\] must be an integer'),
        ("annotations", 2, "area", "big", r'annotations\[2\]\["area"\] must be a number'),
        ("images", 1, "id", KeyError, r"images\[1\] is missing the key 'id'"),
    ],
)
def test_bad_input_errors_name_file_index_and_key(tmp_path, section, index, key, value, match):
    gt, dets = _mutated(section, index, key, value)
    with pytest.raises(ValueError, match=match):
        detection.coco_eval_files(*_write(tmp_path, gt, dets))


def test_repeated_ids_and_wrong_containers(tmp_path):
    gt, dets = random_coco_dataset(np.random.default_rng(10), n_images=8)
    dup = copy.deepcopy(gt)
    dup["annotations"][4]["id"] = dup["annotations"][1]["id"]
    with pytest.raises(ValueError, match=r'annotations\[4\]\["id"\] repeats the id \d+ of annotations\[1\]'):
        detection.coco_eval_files(dup, dets)
    dup = copy.deepcopy(gt)
    dup["images"][3]["id"] = dup["images"][0]["id"]
    with pytest.raises(ValueError, match=r'images\[3\]\["id"\] repeats the id'):
        detection.coco_eval_files(dup, dets)
    with pytest.raises(ValueError, match=r"gt is missing the key 'categories'"):
        detection.coco_eval_files({"images": [], "annotations": []}, dets)
    with pytest.raises(ValueError, match=r"results must hold a list of results, got dict"):
        detection.coco_eval_files(gt, {"annotations": dets})
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        detection.coco_eval_files(gt, tmp_path / "broken.json")
    with pytest.raises(ValueError, match=r"`iou_type` must be 'bbox' or 'segm', got 'keypoints'"):
        detection.coco_eval_files(gt, dets, iou_type="keypoints")
    with pytest.raises(ValueError, match=r"`max_dets` must be 3 positive integers"):
        detection.coco_eval_files(gt, dets, max_dets=[100])
    with pytest.raises(ValueError, match=r"`max_dets\[1\]` must be >= 1"):
        detection.coco_eval_files(gt, dets, max_dets=[1, 0, 100])
    with pytest.raises(ValueError, match=r"`area_ranges` must be 4 \(low, high\) pairs"):
        detection.coco_eval_files(gt, dets, area_ranges=[(0, 1)])


def test_ignore_key_is_overwritten_by_iscrowd():
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 10, 10],
                "area": 100,
                "iscrowd": 0,
                "ignore": 1,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "bbox": [50, 50, 10, 10],
                "area": 100,
                "iscrowd": 1,
                "ignore": 0,
            },
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.8},
    ]
    ours = detection.coco_eval_files(gt, dets)
    np.testing.assert_allclose(ours.stats, pycoco_files_eval(gt, dets).stats, atol=1e-9, rtol=0)
    assert ours.stats[0] == pytest.approx(
        1.0
    )  # the "ignore": 1 GT counts; the crowd one absorbs its detection


def test_evaluator_batches_processes_and_pickle_equal_one_evaluation():
    gt, dets = random_coco_dataset(np.random.default_rng(21), n_images=30)
    image_ids = sorted(im["id"] for im in gt["images"])
    preds, gts = _as_dicts(gt, dets, image_ids)
    cats = [c["id"] for c in gt["categories"]]
    whole = detection.coco_eval_files(gt, dets)
    # Two "ranks" with interleaved images (a DistributedSampler split), several batches each.
    ranks = [detection.CocoEvaluator(box_format="xywh", categories=cats) for _ in range(2)]
    for r, ev in enumerate(ranks):
        mine = list(range(r, len(image_ids), 2))[::-1]
        for start in range(0, len(mine), 4):
            idx = mine[start : start + 4]
            ev.update([preds[i] for i in idx], [gts[i] for i in idx], image_ids=[image_ids[i] for i in idx])
    merged = pickle.loads(pickle.dumps(ranks[0])).merge(pickle.loads(pickle.dumps(ranks[1])))
    assert len(merged) == len(image_ids)
    result = merged.compute(per_image=True)
    np.testing.assert_array_equal(result.stats, whole.stats)
    assert result.per_class == whole.per_class
    with pytest.raises(ValueError, match=r"`image_ids` repeats the image id"):
        detection.CocoEvaluator(box_format="xywh", categories=cats).merge(ranks[0], ranks[0]).compute()
    with pytest.raises(ValueError, match=r"different settings"):
        detection.CocoEvaluator(box_format="xywh", categories=cats, max_dets=(1, 10, 50)).merge(ranks[0])
    with pytest.raises(ValueError, match=r"`image_ids` must be 2 integers"):
        ranks[0].update(preds[:2], gts[:2], image_ids=[1])


def test_evaluator_under_torchrun_two_processes(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():  # gloo on loopback: no network needed
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "coco_evaluator_ddp.py"),
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(out.read_text())
    gt, dets = random_coco_dataset(np.random.default_rng(31), n_images=24)
    whole = detection.coco_eval_files(gt, dets, per_image=True)
    assert got["world_size"] == 2 and got["images_per_rank"] == [12, 12]
    assert got["stats"] == whole.stats.tolist()
    assert got["per_image"] == {str(k): v for k, v in whole.per_image.items()}


def test_readme_evaluate_coco_files_block_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = text[
        text.index("<!-- BEGIN evaluate-coco-files -->") : text.index("<!-- END evaluate-coco-files -->")
    ]
    gt, dets = random_coco_dataset(np.random.default_rng(2), n_images=12)
    _write(tmp_path, gt, dets)
    (tmp_path / "gt.json").rename(tmp_path / "instances_val.json")
    ref = pycoco_files_eval(gt, dets)
    shell = re.search(r"```(?:sh|bash)\n(.*?)```", block, re.S).group(1)
    cli = [line for line in shell.splitlines() if line.startswith("python -m rewards.detection")]
    assert cli
    for line in cli:
        run = _cli(*line.split()[3:], cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[:12] == ref.printed
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    out = io.StringIO()
    try:
        namespace: dict = {}
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    np.testing.assert_allclose(namespace["result"].stats, ref.stats, atol=1e-9, rtol=0)
    printed = out.getvalue().splitlines()
    assert printed[:12] == ref.printed
    assert printed[12:] == [re.search(r"print\(round.*# (.*)", code).group(1)]  # the comment's value
