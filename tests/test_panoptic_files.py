"""COCO panoptic files: the PNG reader, the json loader's errors, pq_compute and the CLI against panopticapi's port."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from rewards import _png, panoptic
from rewards._panoptic_files import write_dataset, write_example_dataset
from tests.panoptic_oracle import pq_compute as oracle_pq_compute

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "panopticapi_sample"
CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 3, "name": "car", "isthing": 1},
    {"id": 100, "name": "road", "isthing": 0},
    {"id": 187, "name": "sky", "isthing": 0},
    {"id": 199, "name": "wall", "isthing": 0},
]  # 199 never appears


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rewards.panoptic", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=120,
    )


# ---------------------------------------------------------------- PNG reader


def test_png_round_trip_and_pillow_agree_on_every_filter():
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for k, (h, w) in enumerate([(1, 1), (7, 13), (40, 33)]):
        ids = rng.integers(0, 2**24, size=(h, w))
        ids[: h // 2] = ids[0, 0]  # runs (Sub/Up filters) and noise (Paeth/Average)
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rt-{os.getpid()}-{k}.png"
        try:
            _png.write_rgb(path, _png.ids_to_rgb(ids))
            np.testing.assert_array_equal(_png.read_ids(path), ids)
            for mode in ("RGB", "RGBA"):  # Pillow picks adaptive filters per row
                pil.fromarray(
                    np.dstack([_png.ids_to_rgb(ids), np.full((h, w, 1), 255, np.uint8)])[..., : len(mode)],
                    mode,
                ).save(path)
                np.testing.assert_array_equal(_png.read_ids(path), ids)
        finally:
            path.unlink(missing_ok=True)


def test_png_reader_matches_pillow_on_the_real_coco_pngs():
    pil = pytest.importorskip("PIL.Image")
    pngs = sorted(SAMPLE.glob("*.png"))
    if not pngs:
        pytest.skip("shared/data/panopticapi_sample not present")
    for png in pngs:
        rgb = np.array(pil.open(png), dtype=np.uint32)
        np.testing.assert_array_equal(
            _png.read_ids(png), rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        )


def test_png_reader_rejects_other_kinds_naming_the_file(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    for mode, kind in (("L", "8-bit grayscale"), ("P", r"\d-bit palette"), ("I;16", "16-bit grayscale")):
        pil.new(mode, (4, 3)).save(tmp_path / f"{mode[0]}.png")
        with pytest.raises(
            ValueError, match=rf"{mode[0]}.png: a {kind} PNG; COCO panoptic PNGs are 8-bit RGB"
        ):
            _png.read_ids(tmp_path / f"{mode[0]}.png")
    good = tmp_path / "good.png"
    _png.write_rgb(good, np.zeros((3, 4, 3), np.uint8))
    blob = bytearray(good.read_bytes())
    interlaced = blob.copy()
    interlaced[28] = 1  # IHDR interlace byte, CRC fixed below
    interlaced[29:33] = zlib.crc32(bytes(interlaced[12:29])).to_bytes(4, "big")
    (tmp_path / "i.png").write_bytes(bytes(interlaced))
    with pytest.raises(ValueError, match="i.png: a 8-bit RGB interlaced PNG"):
        _png.read_ids(tmp_path / "i.png")
    deep = blob.copy()
    deep[24] = 16  # IHDR bit depth
    deep[29:33] = zlib.crc32(bytes(deep[12:29])).to_bytes(4, "big")
    (tmp_path / "d.png").write_bytes(bytes(deep))
    with pytest.raises(ValueError, match="d.png: a 16-bit RGB PNG"):
        _png.read_ids(tmp_path / "d.png")
    corrupt = blob.copy()
    corrupt[40] ^= 0xFF
    (tmp_path / "c.png").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="c.png: corrupt PNG"):
        _png.read_ids(tmp_path / "c.png")
    (tmp_path / "t.png").write_bytes(bytes(blob[:30]))
    with pytest.raises(ValueError, match="t.png: truncated PNG"):
        _png.read_ids(tmp_path / "t.png")
    (tmp_path / "x.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="x.png: not a PNG"):
        _png.read_ids(tmp_path / "x.png")


# ---------------------------------------------------------------- pq_compute vs panopticapi


def random_coco_image(rng, h, w):
    """A COCO-style id map: several road segments (stuff split by id), cars, people, a crowd, void."""
    ids = np.full((h, w), 1000, np.int64)
    segments = {1000: (100, 0)}
    ids[: h // 3] = 2000  # sky
    segments[2000] = (187, 0)
    # a second road segment: COCO gives several segments of one stuff category ids of their own
    if rng.random() < 0.5:
        ids[h // 2 :, : w // 3] = 1001
        segments[1001] = (100, 0)
    for k in range(int(rng.integers(0, 6))):
        y, x = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        sid = 3000 + k
        ids[y : y + int(rng.integers(2, h // 2)), x : x + int(rng.integers(2, w // 2))] = sid
        segments[sid] = (int(rng.choice([1, 3])), int(k == 0 and rng.random() < 0.3))
    if rng.random() < 0.3:
        ids[: int(rng.integers(1, h)), : int(rng.integers(1, w))] = 0  # unlabeled
    if rng.random() < 0.1:
        ids[:] = 0  # an image without segments
    present = set(np.unique(ids).tolist())
    info = [
        {"id": s, "category_id": c, "iscrowd": cr, "area": int((ids == s).sum())}
        for s, (c, cr) in segments.items()
        if s in present
    ]
    return ids, info


def perturbed(rng, ids, info):
    pred = ids.copy()
    h, w = ids.shape
    extra = {}
    for k in range(int(rng.integers(0, 5))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        sl = np.s_[y : y + int(rng.integers(1, h)), x : x + int(rng.integers(1, w))]
        r = rng.random()
        if r < 0.3:
            pred[sl] = 0  # predicted void
        elif r < 0.7:
            pred[sl] = 5000 + k  # a new segment
            extra[5000 + k] = int(rng.choice([1, 3, 100, 187]))
        else:
            segs = [s["id"] for s in info]
            if segs:
                pred[sl] = rng.choice(segs)
    cats = {s["id"]: s["category_id"] for s in info} | extra
    present = set(np.unique(pred).tolist()) - {0}
    return pred, [{"id": s, "category_id": cats[s]} for s in sorted(present)][::-1]


def make_dataset(tmp_path, seed, n):
    rng = np.random.default_rng(seed)
    gts, preds, oracle_images = [], [], []
    for i in range(n):
        h, w = int(rng.integers(6, 30)), int(rng.integers(6, 30))
        ids, info = random_coco_image(rng, h, w)
        pred, pinfo = perturbed(rng, ids, info)
        image_id = int(rng.integers(0, 10**9)) * 1000 + i
        gts.append((image_id, ids, info))
        preds.append((image_id, pred, pinfo))
        oracle_images.append((ids, info, pred, pinfo))
    gt_json = write_dataset(tmp_path, "gt", gts, CATEGORIES)
    pred_json = write_dataset(tmp_path, "pred", preds[::-1])  # another order than the GT
    categories = {c["id"]: c for c in CATEGORIES}
    return gt_json, pred_json, oracle_pq_compute(oracle_images, categories)


def assert_like_panopticapi(result: dict, expected: dict):
    for name in ("All", "Things", "Stuff"):
        assert result[name]["n"] == expected[name]["n"]
        for k in ("pq", "sq", "rq"):
            assert abs(result[name][k] - expected[name][k]) <= 1e-9, (name, k)
    assert list(result["per_class"]) == list(expected["per_class"])
    for c, row in result["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert abs(row[k] - expected["per_class"][c][k]) <= 1e-9


@pytest.mark.parametrize("workers", [1, 3])
def test_pq_compute_matches_panopticapi_on_generated_coco_files(tmp_path, workers):
    gt_json, pred_json, expected = make_dataset(tmp_path, workers, 150)
    result = panoptic.pq_compute(gt_json, pred_json, workers=workers)
    assert_like_panopticapi(result.to_dict(), expected)
    assert result.per_class[199].tp + result.per_class[199].fp + result.per_class[199].fn == 0
    assert result.per_class[100].fp > 0 and result.per_class[1].tp > 0


def test_cli_prints_panopticapis_table_and_writes_its_json(tmp_path):
    gt_json, pred_json, expected = make_dataset(tmp_path, 9, 20)
    out = tmp_path / "out.json"
    run = cli(
        "--gt-json",
        gt_json,
        "--gt-folder",
        tmp_path / "gt",
        "--pred-json",
        pred_json,
        "--pred-folder",
        tmp_path / "pred",
        "--json-out",
        out,
        "--per-class",
        "--workers",
        2,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no runpy double-import warning, no numba noise
    written = json.loads(out.read_text())
    written["per_class"] = {int(c): v for c, v in written["per_class"].items()}
    assert_like_panopticapi(written, expected)
    lines = run.stdout.splitlines()
    assert lines[0] == "          |    PQ     SQ     RQ     N" and lines[1] == "-" * 38
    for line, name in zip(lines[2:5], ("All", "Things", "Stuff")):
        row = expected[name]
        assert line == "{:10s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(
            name, 100 * row["pq"], 100 * row["sq"], 100 * row["rq"], row["n"]
        )
    assert any(re.match(r"187 sky \(stuff\) +\|", line) for line in lines)
    assert re.search(r"Time elapsed: [\d.]+ seconds \(kernel load [\d.]+ s; PNG decoding", run.stdout)


def bad_dataset(tmp_path, mutate):
    gt_json, pred_json = write_example_dataset(tmp_path)
    gt, pred = json.loads(Path(gt_json).read_text()), json.loads(Path(pred_json).read_text())
    mutate(gt, pred, tmp_path)
    Path(gt_json).write_text(json.dumps(gt))
    Path(pred_json).write_text(json.dumps(pred))
    return gt_json, pred_json


def _set(data, i, key, value):
    data["annotations"][i]["segments_info"][0][key] = value


BAD_INPUTS = {
    "missing png": (lambda g, p, d: (d / "pred" / "2.png").unlink(), r"pred/2.png: PNG missing for image 2"),
    "json segment absent from png": (
        lambda g, p, d: p["annotations"][1]["segments_info"].append({"id": 77, "category_id": 1}),
        r"image 2 \(.*pred/2.png.*\): segments_info lists segment id\(s\) \[77\] absent from the PNG",
    ),
    "png segment absent from json": (
        lambda g, p, d: p["annotations"][1]["segments_info"].pop(1),
        r"image 2 \(.*pred/2.png.*\): segment id 11 \(RGB \(11, 0, 0\)\) is in the PNG but not in segments_info",
    ),
    "gt png segment absent from json": (
        lambda g, p, d: g["annotations"][0]["segments_info"].pop(0),
        r"image 1 \(.*gt/1.png.*\): segment id 10 .* is in the PNG but not in segments_info",
    ),
    "unknown predicted category": (
        lambda g, p, d: _set(p, 1, "category_id", 55),
        r"pred.json: image 2 \(annotations\[1\]\): segment 10 .*unknown category_id 55",
    ),
    "unknown gt category": (
        lambda g, p, d: _set(g, 0, "category_id", 56),
        r"gt.json: image 1 \(annotations\[0\]\): segment 10 .*unknown category_id 56",
    ),
    "duplicate segment id": (
        lambda g, p, d: p["annotations"][1]["segments_info"].append({"id": 10, "category_id": 1}),
        r"pred.json: image 2 \(annotations\[1\]\): segment 10 \(segments_info\[3\]\): duplicate segment id",
    ),
    "duplicate image id": (
        lambda g, p, d: p["annotations"].append(dict(p["annotations"][0])),
        r"pred.json: image 1 \(annotations\[2\]\): duplicate image_id",
    ),
    "gt image without prediction": (
        lambda g, p, d: p["annotations"].pop(0),
        r"pred.json: no prediction for 1 ground-truth image\(s\), e.g. image_id 1",
    ),
    "sizes differ": (
        lambda g, p, d: _png.write_rgb(
            d / "pred" / "2.png", _png.ids_to_rgb(np.vstack([_png.read_ids(d / "pred" / "2.png")] * 2)[:5])
        ),
        r"image 2: the prediction PNG .*pred/2.png is 6x5 but the ground truth PNG .*gt/2.png is 6x4",
    ),
    "gt area disagrees": (
        lambda g, p, d: _set(g, 1, "area", 3),
        r"image 2 .*: segment 10 has area 3 in the json but 11 pixels in the PNG",
    ),
    "category id a string": (
        lambda g, p, d: _set(p, 0, "category_id", "1"),
        r"pred.json: image 1 \(annotations\[0\]\): segments_info\[0\]: 'category_id' must be an integer",
    ),
    "segment id out of range": (
        lambda g, p, d: _set(p, 0, "id", 2**24),
        r"segment 16777216 \(segments_info\[0\]\): segment ids are R \+ 256 G",
    ),
    "two crowd segments of one category": (
        lambda g, p, d: [s.update(iscrowd=1, category_id=1) for s in g["annotations"][0]["segments_info"]],
        r"gt.json: image 1 has several crowd segments of category 1",
    ),
    "missing folder": (
        lambda g, p, d: [f.unlink() for f in (d / "pred").iterdir()] + [(d / "pred").rmdir()],
        r"pred: PNG folder of .*pred.json does not exist",
    ),
    "not a panoptic json": (lambda g, p, d: p.pop("annotations"), r"pred.json: a COCO panoptic json holds"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_clear_error_naming_file_and_segment(tmp_path, case):
    mutate, message = BAD_INPUTS[case]
    gt_json, pred_json = bad_dataset(tmp_path, mutate)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        panoptic.pq_compute(gt_json, pred_json, workers=1)


def test_cli_exit_status_2_with_the_error_on_stderr(tmp_path):
    gt_json, pred_json = bad_dataset(tmp_path, BAD_INPUTS["unknown predicted category"][0])
    run = cli("--gt-json", gt_json, "--pred-json", pred_json)
    assert run.returncode == 2 and run.stdout == ""
    assert re.fullmatch(r"error: .*unknown category_id 55\n", run.stderr)
    assert cli("--gt-json", gt_json).returncode == 2  # argparse: --pred-json missing


def test_extra_predicted_images_are_ignored_with_a_warning(tmp_path):
    def extra(g, p, d):
        p["annotations"].append(
            {"image_id": 99, "file_name": "1.png", "segments_info": p["annotations"][0]["segments_info"]}
        )

    gt_json, pred_json = bad_dataset(tmp_path, extra)
    with pytest.warns(
        UserWarning, match=r"1 predicted image\(s\) are not in the ground truth \(e.g. image_id 99\)"
    ):
        result = panoptic.pq_compute(gt_json, pred_json, workers=1)
    assert result.stuff.n == 1
    run = cli("--gt-json", gt_json, "--pred-json", pred_json, "--no-timing")
    assert run.returncode == 0 and run.stderr.startswith("warning: ") and "image_id 99" in run.stderr


# ---------------------------------------------------------------- the real panopticapi sample


def split_stuff_prediction(tmp_path, fraction):
    """The GT as prediction, with the largest stuff segment of each image split in raster order."""
    gt = json.loads(gzip.open(SAMPLE / "panoptic_examples.json.gz", "rt").read())
    things = {c["id"] for c in gt["categories"] if c["isthing"]}
    pred_annotations, oracle_images = [], []
    (tmp_path / "pred").mkdir()
    for ann in gt["annotations"]:
        ids = _png.read_ids(SAMPLE / ann["file_name"]).astype(np.int64)
        stuff = max(
            (s for s in ann["segments_info"] if s["category_id"] not in things), key=lambda s: s["area"]
        )
        where = np.flatnonzero(ids.ravel() == stuff["id"])
        new_id = 256**3 - 1
        pred = ids.copy().ravel()
        pred[where[: int(len(where) * fraction)]] = new_id
        pred = pred.reshape(ids.shape)
        info = [{"id": s["id"], "category_id": s["category_id"]} for s in ann["segments_info"]]
        info.append({"id": new_id, "category_id": stuff["category_id"]})
        _png.write_rgb(tmp_path / "pred" / ann["file_name"], _png.ids_to_rgb(pred))
        pred_annotations.append(
            {"image_id": ann["image_id"], "file_name": ann["file_name"], "segments_info": info}
        )
        oracle_images.append((ids, ann["segments_info"], pred, info))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": pred_annotations}))
    return gt, oracle_images


def test_real_panopticapi_sample_split_stuff_segment(tmp_path):
    if not (SAMPLE / "panoptic_examples.json.gz").exists():
        pytest.skip("shared/data/panopticapi_sample not present")
    gt, oracle_images = split_stuff_prediction(tmp_path, 0.4975)  # the rest keeps IoU 0.5025: one TP, one FP
    categories = {c["id"]: c for c in gt["categories"]}
    gt_json = SAMPLE / "panoptic_examples.json.gz"
    result = panoptic.pq_compute(gt_json, tmp_path / "pred.json", SAMPLE, tmp_path / "pred", workers=1)
    assert_like_panopticapi(result.to_dict(), oracle_pq_compute(oracle_images, categories))
    per_image = [oracle_pq_compute([im], categories)["All"]["pq"] for im in oracle_images]
    assert [round(p, 3) for p in per_image] == [0.867, 0.905]  # the panopticapi numbers
    # pq_reward on the converted arrays: panopticapi's numbers only with COCO segment semantics
    for (ids, info, pred, pinfo), expected in zip(oracle_images, per_image):
        g, crowd = panoptic.panoptic_from_id_map(ids, info)
        p, _ = panoptic.panoptic_from_id_map(pred, pinfo)
        kw = dict(
            things={c for c in categories if categories[c]["isthing"]},
            stuffs={c for c in categories if not categories[c]["isthing"]},
            crowd=crowd,
        )
        assert abs(panoptic.pq_reward(p, g, stuff_segments="separate", **kw) - expected) < 1e-12
        assert panoptic.pq_reward(p, g, **kw) == 1.0  # merged stuff: the (H, W, 2) convention
    # the CLI reads the gzipped json
    run = cli(
        "--gt-json", gt_json, "--gt-folder", SAMPLE, "--pred-json", tmp_path / "pred.json", "--no-timing"
    )
    assert run.returncode == 0 and run.stderr == ""
    row = oracle_pq_compute(oracle_images, categories)["All"]
    assert run.stdout.splitlines()[2] == "All       | {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(
        100 * row["pq"], 100 * row["sq"], 100 * row["rq"], row["n"]
    )


# ---------------------------------------------------------------- README


def test_readme_coco_panoptic_section_runs(tmp_path):
    text = (REPO / "README.md").read_text()
    block = text[text.index("<!-- BEGIN coco-panoptic -->") : text.index("<!-- END coco-panoptic -->")]
    command = re.search(r"```console\n\$ (python -m rewards\.panoptic [^\n]+)\n(.*?)```", block, re.S)
    assert command, "the README block shows one CLI run"
    write_example_dataset(tmp_path)
    args = command.group(1).split()[3:]
    run = cli(*args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shown = [line for line in command.group(2).splitlines() if not line.startswith("Time elapsed")]
    assert run.stdout.splitlines()[: len(shown)] == shown
    assert json.loads((tmp_path / "pq.json").read_text())["Stuff"]["n"] == 1
