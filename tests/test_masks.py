"""rewards.masks against pycocotools.mask (the oracle) on random, adversarial and real COCO masks."""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import masks

M = pytest.importorskip("pycocotools.mask")
# pycocotools' decode predates numpy 2's __array__(copy=) protocol.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GT_FILE = DATA / "instances_val2014_100.json.gz"
SEGM_FILE = DATA / "cocoapi_instances_val2014_fakesegm100_results.json.gz"


def ref_encode(dense: np.ndarray) -> list[dict]:
    """pycocotools' RLEs of an (N, H, W) stack."""
    return M.encode(np.asfortranarray(np.moveaxis(dense.astype(np.uint8), 0, -1)))


def ref_polygons(polygons, h, w) -> dict:
    """pycocotools' annToRLE of a polygon segmentation."""
    return M.merge(M.frPyObjects(polygons, h, w))


def random_dense(rng, n, h, w) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:  # noise of random density (incl. empty and full)
        return rng.random((n, h, w)) < rng.choice([0.0, 0.05, 0.5, 0.95, 1.0])
    if kind == 1:  # blobs
        yy, xx = np.mgrid[:h, :w]
        out = np.zeros((n, h, w), bool)
        for i in range(n):
            cy, cx = rng.uniform(-2, h + 2), rng.uniform(-2, w + 2)
            ry, rx = rng.uniform(0.5, h), rng.uniform(0.5, w)
            out[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        return out
    if kind == 2:  # rectangles touching the borders
        out = np.zeros((n, h, w), bool)
        for i in range(n):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            out[i, y0 : rng.integers(y0, h + 1), x0 : rng.integers(x0, w + 1)] = True
        return out
    return rng.random((n, h, w)) < 0.2  # sparse


def random_polygon(rng, h, w) -> list[float]:
    kind = rng.integers(8)
    k = int(rng.integers(3, 12))
    if kind == 0:  # anywhere, also outside the image
        xy = rng.uniform(-0.3 * w - 2, 1.3 * w + 2, (k, 2)) * [1, h / w]
    elif kind == 1:  # on the 1/10 pixel grid (the 5x upsampling rounding ties)
        xy = rng.integers(-20, 10 * max(h, w) + 20, (k, 2)) / 10
    elif kind == 2:  # collinear and repeated vertices
        a, b = rng.uniform(-2, max(h, w) + 2, (2, 2))
        t = np.sort(rng.uniform(-0.5, 1.5, k))
        xy = a + t[:, None] * (b - a)
        xy = np.concatenate([xy, xy[::-1][:2], xy[:1]])
        xy[1] = xy[2]
    elif kind == 3:  # self-touching: a bow tie and a figure eight sharing a vertex
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.5, max(h, w) / 2)
        xy = np.array(
            [
                [cx - r, cy - r],
                [cx + r, cy + r],
                [cx + r, cy - r],
                [cx - r, cy + r],
                [cx, cy],
                [cx - r / 2, cy],
                [cx, cy + r / 3],
            ]
        )
    elif kind == 4:  # tiny: inside one pixel
        c = rng.uniform(0, [w, h])
        xy = c + rng.uniform(-0.4, 0.4, (k, 2))
    elif kind == 5:  # a rectangle on or across the image border
        x0, x1 = np.sort(rng.choice([-3.0, 0.0, 0.5, w - 1, w - 0.5, w, w + 2, rng.uniform(0, w)], 2))
        y0, y1 = np.sort(rng.choice([-3.0, 0.0, 0.5, h - 1, h - 0.5, h, h + 2, rng.uniform(0, h)], 2))
        xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    elif kind == 6:  # small negative coordinates (C truncates toward zero, not down)
        xy = rng.choice([-0.3, -0.2, -0.1, -0.09, 0.0, 0.1, 0.3, 1.0, 2.0], (k, 2)) * rng.integers(1, 4)
    else:  # star-shaped, self-intersecting
        ang = rng.uniform(0, 2 * np.pi, k)
        rad = rng.uniform(0, max(h, w), k)
        xy = np.stack([w / 2 + rad * np.cos(ang), h / 2 + rad * np.sin(ang)], 1)
    return [float(v) for v in xy.ravel()]


def assert_rles_equal(ours, ref):
    ours = ours if isinstance(ours, list) else [ours]
    ref = ref if isinstance(ref, list) else [ref]
    assert [r["size"] for r in ours] == [list(map(int, r["size"])) for r in ref]
    assert [r["counts"] for r in ours] == [r["counts"] for r in ref]


# ---------------------------------------------------------------------------
# encode / decode / area / toBbox / merge / iou on dense masks.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_dense_masks_match_pycocotools(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        if rng.random() < 0.1:
            h = 1
        n = int(rng.integers(1, 6))
        dense = random_dense(rng, n, h, w)
        ref = ref_encode(dense)
        ours = masks.encode(np.moveaxis(dense, 0, -1))  # pycocotools' (H, W, N) layout
        assert_rles_equal(ours, ref)
        assert_rles_equal(masks.encode(dense[0]), ref[0])
        assert_rles_equal([masks.encode(d.astype(np.float32)) for d in dense], ref)
        decoded = masks.decode(ours)
        assert decoded.dtype == np.uint8 and decoded.flags.f_contiguous
        np.testing.assert_array_equal(decoded, M.decode(ref))
        np.testing.assert_array_equal(masks.decode(ref[0]), M.decode(ref[0]))
        np.testing.assert_array_equal(masks.area(ours), M.area(ref))
        assert masks.area(ref[0]) == M.area(ref[0])
        np.testing.assert_array_equal(masks.to_bbox(ours), M.toBbox(ref))
        np.testing.assert_array_equal(masks.to_bbox(dense), M.toBbox(ref))  # (N, H, W) stack
        for intersect in (0, 1):
            assert_rles_equal(masks.merge(ours, intersect=bool(intersect)), M.merge(ref, intersect))
        # IoU, with crowd GT, against another random set of the same size
        other = random_dense(rng, int(rng.integers(1, 6)), h, w)
        ref_other = ref_encode(other)
        crowd = rng.random(len(ref_other)) < 0.4
        expected = M.iou(ref, ref_other, crowd.astype(np.uint8).tolist())
        np.testing.assert_array_equal(masks.iou(ours, ref_other, crowd), expected)
        np.testing.assert_array_equal(masks.iou(dense, list(other), crowd), expected)
        np.testing.assert_array_equal(masks.iou(ref_other, ref), M.iou(ref_other, ref, [0] * len(ref)))


def test_empty_and_full_masks():
    h, w = 7, 5
    empty, full = np.zeros((h, w), bool), np.ones((h, w), bool)
    stack = np.stack([empty, full, empty])
    ref = ref_encode(stack)
    assert_rles_equal(masks.encode(np.moveaxis(stack, 0, -1)), ref)
    np.testing.assert_array_equal(masks.to_bbox(ref), M.toBbox(ref))
    np.testing.assert_array_equal(masks.iou(ref, ref, [0, 1, 0]), M.iou(ref, ref, [0, 1, 0]))
    assert masks.iou(ref, [], []).shape == (3, 0)
    assert masks.iou([], ref).shape == (0, 3)
    for shape in [(0, 5), (5, 0), (0, 0)]:
        z = np.zeros(shape, bool)
        rle = masks.encode(z)
        assert_rles_equal(rle, M.encode(np.zeros(shape + (1,), np.uint8, order="F"))[0])
        assert masks.area(rle) == 0 and masks.decode(rle).shape == shape


def test_masks_are_not_mutated_and_frameworks_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    dense = rng.random((3, 9, 11)) < 0.4
    before = dense.copy()
    ref = ref_encode(dense)
    rles = copy.deepcopy(ref)
    expected = M.iou(ref, ref, [0, 0, 1])
    warn_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch warns once per process when a tensor is indexed by a string
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            np.testing.assert_array_equal(masks.iou(torch.from_numpy(dense), rles, [0, 0, 1]), expected)
            np.testing.assert_array_equal(
                masks.iou([torch.from_numpy(d) for d in dense], rles, [0, 0, 1]), expected
            )
    finally:
        torch.set_warn_always(warn_always)
    assert [str(w.message) for w in caught] == []
    mixed = [rles[0], dense[1], {"size": [9, 11], "counts": masks.decompress(rles[2])["counts"]}]
    np.testing.assert_array_equal(masks.iou(mixed, rles, [False, False, True]), expected)
    str_counts = [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
    np.testing.assert_array_equal(masks.iou(str_counts, rles, [0, 0, 1]), expected)
    np.testing.assert_array_equal(dense, before)
    assert rles == ref


# ---------------------------------------------------------------------------
# Compressed-string codec and uncompressed RLE.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_codec_matches_pycocotools(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 3000, 2))
        n_runs = int(rng.integers(0, 30))
        cuts = np.sort(rng.choice(h * w + 1, size=min(n_runs, h * w + 1), replace=False))
        counts = np.diff(np.concatenate([[0], cuts, [h * w]])).tolist()
        rle = {"size": [h, w], "counts": counts}
        ref = M.frPyObjects(copy.deepcopy(rle), h, w)
        ours = masks.compress(rle)
        assert ours["size"] == [h, w]
        if 0 not in counts[1:]:  # canonical counts: the same string
            assert ours["counts"] == ref["counts"]
        assert masks.area(ours) == M.area(ref)
        np.testing.assert_array_equal(masks.to_bbox(ours), M.toBbox(ref))
        canonical = masks.decompress(ref)
        assert sum(canonical["counts"]) == h * w
        assert masks.compress(canonical) == ours
        as_str = {"size": [h, w], "counts": ref["counts"].decode()}
        assert masks.decompress(as_str) == canonical


def test_uncompressed_with_zero_runs_is_the_same_mask():
    rle = {"size": [4, 5], "counts": [3, 0, 2, 4, 0, 0, 1, 10]}
    ref = M.frPyObjects(copy.deepcopy(rle), 4, 5)
    np.testing.assert_array_equal(masks.decode(rle), M.decode(ref))
    assert masks.area(rle) == M.area(ref)
    np.testing.assert_array_equal(masks.to_bbox(rle), M.toBbox(ref))
    canonical = masks.compress(rle)
    np.testing.assert_array_equal(masks.iou([rle], [canonical]), M.iou([ref], [canonical], [0]))
    assert masks.decompress(rle)["counts"] == [5, 4, 1, 10]


# ---------------------------------------------------------------------------
# Polygons (rleFrPoly + merge).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_polygons_match_pycocotools(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        parts = [random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 4)))]
        ref = ref_polygons(parts, h, w)
        assert_rles_equal(masks.from_polygons(parts, h, w), ref)
        assert_rles_equal(masks.from_coco_segmentation(parts, h, w), ref)
        assert_rles_equal(masks.from_polygons([np.array(p) for p in parts], h, w), ref)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    parts=st.lists(
        st.lists(st.tuples(st.integers(-30, 150), st.integers(-30, 150)), min_size=3, max_size=8),
        min_size=1,
        max_size=3,
    ),
)
def test_polygons_on_the_tenth_pixel_grid(size, parts):
    """Coordinates on multiples of 0.1 hit every rounding tie of the 5x upsampling."""
    h, w = size
    polygons = [[v / 10 for xy in part for v in xy] for part in parts]
    assert_rles_equal(masks.from_polygons(polygons, h, w), ref_polygons(polygons, h, w))


def test_pycocotools_rules_for_degenerate_polygons():
    square = [0.0, 0.0, 4.0, 0.0, 4.0, 3.0, 0.0, 3.0]
    h, w = 6, 7
    for segm in (
        [square, [1, 1, 5, 3]],  # a 2-point segment
        [square, [3, 3]],  # a point
        [square, [2.5]],  # half a point: nothing
        [square, []],
        [square[:-1]],  # odd: the trailing coordinate is dropped
        [square + [1.0, 2.0, 3.0]],
        [[0.2, 0.1, 5.3, 5.9, 0.4]],  # 5 numbers: a 2-point sliver
        [[0.2, 0.1, 5.3, 5.9, 0.4, 0.2], [4.1, 0.2, 0.1, 5.7]],
    ):
        ours = masks.from_polygons(segm, h, w, degenerate="pycocotools")
        assert_rles_equal(ours, ref_polygons(copy.deepcopy(segm), h, w))
    for segm in ([[1, 1, 5, 3]], [[1, 1, 5]], [[1, 1, 5], square]):
        with pytest.raises((TypeError, ValueError, Exception)):  # noqa: B017 (pycocotools raises bare Exception)
            M.frPyObjects(copy.deepcopy(segm), h, w)  # pycocotools rejects these too
        with pytest.raises(ValueError, match=r"`polygons\[0\]` has \d numbers: pycocotools rejects"):
            masks.from_polygons(segm, h, w, degenerate="pycocotools")
    assert masks.area(masks.from_polygons([], h, w)) == 0


def test_polygons_in_a_zero_size_image():
    for shape in [(0, 5), (5, 0)]:
        rle = masks.from_polygons([[0, 0, 3, 0, 3, 3]], *shape)
        assert rle == {"size": list(shape), "counts": b"0"}


# ---------------------------------------------------------------------------
# Batch IoU blocks (what the COCO segm evaluation calls).
# ---------------------------------------------------------------------------


def test_iou_blocks_equal_per_block_iou():
    rng = np.random.default_rng(7)
    h, w = 30, 40
    items = []
    for _ in range(40):
        if rng.random() < 0.5:
            items.append([random_polygon(rng, h, w)])
        else:
            items.append(masks.encode(random_dense(rng, 1, h, w)[0]))
    packed = masks._pack(items, lambda i: f"items[{i}]", [h] * len(items), [w] * len(items))
    rles = [masks.from_coco_segmentation(s, h, w) for s in items]
    crowd = rng.random(len(items)) < 0.3  # one flag per ground-truth mask of the set
    dt_index, gt_index, dt_start, dt_count, gt_start, gt_count, expected = [], [], [], [], [], [], []
    for nd, ng in [(5, 3), (0, 4), (3, 0), (1, 1), (12, 7), (0, 0)]:
        d = rng.choice(len(items), nd + 2)  # two more rows than the block uses: a gap, as maxDets leaves
        g = rng.choice(len(items), ng)
        (
            dt_start.append(len(dt_index)),
            dt_count.append(nd),
            gt_start.append(len(gt_index)),
            gt_count.append(ng),
        )
        dt_index += d.tolist()
        gt_index += g.tolist()
        want = M.iou([rles[i] for i in d[:nd]], [rles[i] for i in g], crowd[g].astype(np.uint8).tolist())
        expected.append(np.asarray(want, np.float64).reshape(nd, ng))
    ious, offsets = masks._iou_blocks(
        packed, packed, np.array(dt_index), np.array(dt_start), np.array(dt_count),
        np.array(gt_index), np.array(gt_start), np.array(gt_count), crowd,
    )  # fmt: skip
    for b, want in enumerate(expected):
        np.testing.assert_array_equal(ious[offsets[b] : offsets[b + 1]].reshape(want.shape), want)


def test_pack_keeps_the_order_of_mixed_forms():
    rng = np.random.default_rng(11)
    h, w = 12, 9
    dense = random_dense(rng, 6, h, w)
    ref = ref_encode(dense)
    square = [[0, 0, 4, 0, 4, 4, 0, 4]]
    as_str = {"size": [h, w], "counts": ref[4]["counts"].decode()}
    items = [ref[0], dense[1], masks.decompress(ref[2]), square, as_str, dense[5]]
    packed = masks._pack(items, lambda i: f"items[{i}]", [h] * 6, [w] * 6)
    want = [ref[0], ref[1], ref[2], ref_polygons(square, h, w), ref[4], ref[5]]
    assert_rles_equal(masks._to_rles(packed), want)


# ---------------------------------------------------------------------------
# Real COCO: the 100 images of cocoapi's demo and its segm results.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco_real():
    if not (GT_FILE.exists() and SEGM_FILE.exists()):
        pytest.skip("shared COCO sample data absent")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_json = json.loads(gzip.decompress(GT_FILE.read_bytes()))
    results = json.loads(gzip.decompress(SEGM_FILE.read_bytes()))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt_json)
        coco.createIndex()
        coco_dt = coco.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco, coco_dt, "segm")
        ev.params.imgIds = sorted(coco.getImgIds())
        ev._prepare()
    return gt_json, results, coco, coco_dt, ev


def test_real_coco_annotations_equal_ann_to_rle(coco_real):
    gt_json, results, coco, coco_dt, _ = coco_real
    images = {im["id"]: im for im in gt_json["images"]}
    anns = gt_json["annotations"]
    hs = [images[a["image_id"]]["height"] for a in anns]
    ws = [images[a["image_id"]]["width"] for a in anns]
    packed = masks._pack([a["segmentation"] for a in anns], lambda i: f"annotations[{i}]", hs, ws)
    ref = [coco.annToRLE(a) for a in anns]
    assert_rles_equal(masks._to_rles(packed), ref)
    np.testing.assert_array_equal(packed.areas, [M.area(r) for r in ref])  # M.area of > 255 overflows
    np.testing.assert_array_equal(packed.boxes, M.toBbox(ref))
    for a, h, w, r in zip(anns[:50], hs, ws, ref):
        assert_rles_equal(masks.from_coco_segmentation(a["segmentation"], h, w), r)
    dt = masks._pack([r["segmentation"] for r in results], lambda i: f"results[{i}]")
    loaded = [coco_dt.anns[i] for i in sorted(coco_dt.anns)]  # loadRes numbers results 1..N in order
    np.testing.assert_array_equal(dt.areas, [a["area"] for a in loaded])
    np.testing.assert_array_equal(dt.boxes, [a["bbox"] for a in loaded])


def test_real_coco_ious_equal_compute_iou(coco_real):
    gt_json, results, coco, coco_dt, ev = coco_real
    images = {im["id"]: im for im in gt_json["images"]}
    anns = gt_json["annotations"]
    gt_pos = {a["id"]: i for i, a in enumerate(anns)}
    gts = masks._pack(
        [a["segmentation"] for a in anns],
        lambda i: f"annotations[{i}]",
        [images[a["image_id"]]["height"] for a in anns],
        [images[a["image_id"]]["width"] for a in anns],
    )
    dts = masks._pack([r["segmentation"] for r in results], lambda i: f"results[{i}]")
    dt_pos = {i + 1: i for i in range(len(results))}  # loadRes ids
    max_det = ev.params.maxDets[-1]
    dt_idx, gt_idx, d_start, d_count, g_start, g_count, expected = [], [], [], [], [], [], []
    for img in ev.params.imgIds:
        for cat in ev.params.catIds:
            g = ev._gts[img, cat]
            d = ev._dts[img, cat]
            order = np.argsort([-x["score"] for x in d], kind="mergesort")
            d = [d[i] for i in order][:max_det]
            d_start.append(len(dt_idx)), g_start.append(len(gt_idx))
            d_count.append(len(d)), g_count.append(len(g))
            dt_idx += [dt_pos[x["id"]] for x in d]
            gt_idx += [gt_pos[x["id"]] for x in g]
            expected.append(np.asarray(ev.computeIoU(img, cat), np.float64).reshape(len(d), len(g)))
    crowd = np.array([a["iscrowd"] for a in anns], bool)
    ious, offsets = masks._iou_blocks(
        dts, gts, np.array(dt_idx), np.array(d_start), np.array(d_count),
        np.array(gt_idx), np.array(g_start), np.array(g_count), crowd,
    )  # fmt: skip
    assert sum(e.size for e in expected) > 1000 and any(e.size and e.max() > 0.5 for e in expected)
    for b, want in enumerate(expected):
        np.testing.assert_array_equal(ious[offsets[b] : offsets[b + 1]].reshape(want.shape), want)


# ---------------------------------------------------------------------------
# Bad input: errors name the example and key.
# ---------------------------------------------------------------------------


def test_bad_polygons_name_the_part():
    with pytest.raises(ValueError, match=r"`polygons\[1\]` has 2 point\(s\): a polygon needs at least 3"):
        masks.from_polygons([[0, 0, 4, 0, 4, 4], [1, 1, 2, 2]], 5, 5)
    with pytest.raises(ValueError, match=r"`polygons\[0\]` has an odd number of coordinates \(7\)"):
        masks.from_polygons([[0, 0, 4, 0, 4, 4, 1]], 5, 5)
    with pytest.raises(ValueError, match=r"`polygons\[0\]` contains NaN"):
        masks.from_polygons([[0, 0, 4, float("nan"), 4, 4]], 5, 5)
    with pytest.raises(ValueError, match=r"`polygons\[0\]` must hold numbers"):
        masks.from_polygons([[0, 0, 4, "a", 4, 4]], 5, 5)
    with pytest.raises(ValueError, match=r"`polygons\[0\]` has a coordinate beyond"):
        masks.from_polygons([[0, 0, 4e9, 0, 4, 4]], 5, 5)
    with pytest.raises(ValueError, match=r"`polygons\[0\]` must be a list of coordinates"):
        masks.from_polygons([0, 0, 4, 0, 4, 4], 5, 5)
    with pytest.raises(ValueError, match="`degenerate` must be"):
        masks.from_polygons([[0, 0, 4, 0, 4, 4]], 5, 5, degenerate="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`height` must be >= 0"):
        masks.from_polygons([[0, 0, 4, 0, 4, 4]], -5, 5)
    with pytest.raises(ValueError, match=r"`segmentation\[0\]` has 1 point"):
        masks.from_coco_segmentation([[0, 0]], 5, 5)


def test_bad_rles_name_the_example():
    good = {"size": [2, 3], "counts": [2, 3, 1]}
    with pytest.raises(ValueError, match=r"`gts\[1\]\['counts'\]` sums to 5 but size \[2, 3\] has 6 pixels"):
        masks.iou([good], [good, {"size": [2, 3], "counts": [2, 3]}])
    with pytest.raises(ValueError, match=r"`dts\[0\]\['counts'\]` sums to 7 but size \[2, 3\] has 6"):
        masks.iou([{"size": [2, 3], "counts": [2, 3, 2]}], [good])
    with pytest.raises(ValueError, match=r"`dts\[0\]\['counts'\]` sums to 7"):
        masks.iou([{"size": [2, 3], "counts": b"232"}], [good])
    with pytest.raises(ValueError, match=r"`masks\[0\]\['counts'\]` holds a negative run length"):
        masks.area([{"size": [2, 3], "counts": [2, -3, 7]}])
    with pytest.raises(ValueError, match=r"`rle\['counts'\]` holds a character outside"):
        masks.decompress({"size": [2, 3], "counts": "2 3"})
    with pytest.raises(ValueError, match=r"`rle\['counts'\]` ends in the middle of a value"):
        masks.decompress({"size": [2, 3], "counts": "2P"})
    with pytest.raises(ValueError, match=r"`rle\['counts'\]` decodes to a negative run length"):
        masks.decompress({"size": [2, 3], "counts": "@"})
    with pytest.raises(ValueError, match=r"`rle\['counts'\]` must be a flat list of integer"):
        masks.decompress({"size": [2, 3], "counts": [2.5, 3.5]})
    with pytest.raises(ValueError, match=r"`rle\['size'\]` must be \[height, width\]"):
        masks.decompress({"size": [2], "counts": [2]})
    with pytest.raises(ValueError, match=r"`masks\[0\]` must be an RLE dict with keys"):
        masks.area([{"counts": [6]}])
    with pytest.raises(ValueError, match=r"`segmentation` has size \[2, 3\] but its image is \[3, 2\]"):
        masks.from_coco_segmentation(good, 3, 2)


def test_mismatched_sizes_and_bad_dense_masks():
    a = {"size": [2, 3], "counts": [6]}
    b = {"size": [3, 2], "counts": [0, 6]}
    with pytest.raises(ValueError, match=r"`dts\[1\]` has size \[3, 2\] but `gts\[0\]` has \[2, 3\]"):
        masks.iou([a, b], [a])
    with pytest.raises(ValueError, match=r"`masks\[1\]` has size \[3, 2\] but `masks\[0\]` has \[2, 3\]"):
        masks.merge([a, b])
    with pytest.raises(ValueError, match=r"`rles\[1\]` has size"):
        masks.decode([a, b])
    with pytest.raises(ValueError, match=r"`dts\[1\]` must hold only 0 and 1 \(threshold"):
        masks.iou(np.stack([np.zeros((2, 3)), np.full((2, 3), 0.7)]), [a])
    with pytest.raises(ValueError, match=r"`dts\[1\]` must hold only 0 and 1"):
        masks.iou(np.stack([np.zeros((2, 3)), np.full((2, 3), 2)]).astype(np.uint8), [a])
    with pytest.raises(ValueError, match=r"`mask` must hold only 0 and 1"):
        masks.encode(np.full((2, 3), -1))
    with pytest.raises(ValueError, match=r"`iscrowd` must have one flag per ground truth \(1\)"):
        masks.iou([a], [a], [0, 1])
    with pytest.raises(ValueError, match=r"`gts\[0\]` looks like a polygon list"):
        masks.iou([a], [[[0, 0, 1, 0, 1, 1]]])
    with pytest.raises(ValueError, match=r"`dts\[0\]` must be a 2-D \(H, W\) mask"):
        masks.iou([np.zeros((2, 3, 1))], [a])
    with pytest.raises(ValueError, match=r"`mask\[:, :, 2\]` must hold only 0 and 1"):
        masks.encode(np.stack([np.zeros((2, 3)), np.ones((2, 3)), np.full((2, 3), 0.5)], axis=-1))


def test_batch_packing_equals_one_by_one_under_both_polygon_rules():
    """The COCO packer's fast path (all objects at once) against pycocotools, also for the
    degenerate parts only degenerate="pycocotools" accepts, and numpy-array polygons."""
    rng = np.random.default_rng(5)
    h, w = 25, 31
    objects = [[random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 3)))] for _ in range(30)]
    ref = [ref_polygons(copy.deepcopy(o), h, w) for o in objects]
    assert_rles_equal(masks._to_rles(masks._pack(objects, str, [h] * 30, [w] * 30)), ref)
    odd = [o + [[1.5, 2.0, 7.25, 9.0]] for o in objects[:10]] + [[objects[0][0] + [3.0]]]
    ref_odd = [ref_polygons(copy.deepcopy(o), h, w) for o in odd]
    packed = masks._pack(odd, str, [h] * len(odd), [w] * len(odd), degenerate="pycocotools")
    assert_rles_equal(masks._to_rles(packed), ref_odd)
    with pytest.raises(ValueError, match=r"`odd\[0\]\[\d\]` has 2 point\(s\)"):
        masks._pack(odd, lambda i: f"odd[{i}]", [h] * len(odd), [w] * len(odd))
    as_arrays = [np.asarray(p) for p in objects[1]]
    assert_rles_equal(masks.from_polygons(as_arrays, h, w), ref[1])
    assert_rles_equal(masks.from_polygons(tuple(objects[1]), h, w), ref[1])


def test_single_and_list_forms_of_the_helpers():
    rng = np.random.default_rng(9)
    dense = random_dense(rng, 3, 6, 8)
    ref = ref_encode(dense)
    assert masks.compress(masks.decompress(ref)) == [dict(r) for r in ref]
    assert masks.merge(ref[0]) == ref[0]  # one mask: itself (pycocotools' merge of one)
    assert_rles_equal(masks.merge([ref[0]], intersect=True), M.merge([ref[0]], 1))
    assert isinstance(masks.area(dense[0]), int)
    assert masks.to_bbox(dense).shape == (3, 4)
    with pytest.raises(ValueError, match="`masks` is empty"):
        masks.merge([])


def test_long_steep_edges_far_outside_the_image():
    """Edges millions of pixels long: the shallow/steep shortcuts and the step-by-step walk
    (taken where rounding could move a steep edge's column by two in one step) agree with C."""
    h, w = 50, 60
    for segm in (
        [[-2e6, -4e6, -1.9e6, 4e6, 30.0, 40.0]],  # steep, long: step by step
        [[-3e3, -9e3, 35.3, 9e3, 30.0, 40.0]],  # steep, long, through the image
        [[-9e3, -3e3, 9e3, 35.3, 30.0, 40.0]],  # shallow, long, through the image
    ):
        assert_rles_equal(masks.from_polygons(segm, h, w), ref_polygons(segm, h, w))
