"""Detection rewards against pycocotools, faster-coco-eval and a port of the released reward."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import detection
from tests.coco_oracle import (
    faster_coco_stats,
    pycoco_image_ap,
    pycoco_stats,
    random_image,
    recall_oracle,
)


def expected_map(pred, gt, **kw) -> float:
    ref = pycoco_image_ap(pred, gt, **kw)
    if ref == -1:  # our documented value where COCO has none
        return 1.0 if len(pred["labels"]) == 0 else 0.0
    return ref


# ------------------------------------------------------------------ mAP


@pytest.mark.parametrize("seed", range(4))
def test_map_reward_matches_pycocotools_on_random_adversarial_images(seed):
    rng = np.random.default_rng(seed)
    cases = [random_image(rng) for _ in range(100)]
    for pred, gt in cases:
        assert detection.map_reward(pred, gt) == pytest.approx(expected_map(pred, gt), abs=1e-9)
    ours = detection.map_reward_batch([p for p, _ in cases], [g for _, g in cases])
    refs = [detection.map_reward(p, g) for p, g in cases]
    np.testing.assert_array_equal(ours, refs)


def test_map_reward_more_than_max_dets_of_one_class():
    rng = np.random.default_rng(7)
    for _ in range(10):
        pred, gt = random_image(rng, n_gt=6, n_pred=150, n_classes=1)
        assert detection.map_reward(pred, gt) == pytest.approx(expected_map(pred, gt), abs=1e-9)
        assert detection.map_reward(pred, gt, max_dets=20) == pytest.approx(
            expected_map(pred, gt, max_dets=20), abs=1e-9
        )


def test_map_reward_custom_thresholds():
    rng = np.random.default_rng(8)
    thrs = [0.3, 0.5, 0.75]
    for _ in range(30):
        pred, gt = random_image(rng)
        got = detection.map_reward(pred, gt, iou_thresholds=thrs)
        assert got == pytest.approx(expected_map(pred, gt, iou_thrs=thrs), abs=1e-9)


def test_map_reward_exact_iou_ties_on_integer_boxes():
    gt = {"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "labels": [1, 1]}
    # IoU exactly 0.5 against both GTs (equal IoUs: the later GT wins in COCO).
    pred = {
        "boxes": [[0, 0, 10, 5], [0, 0, 5, 10], [0, 0, 10, 10]],
        "scores": [0.5, 0.5, 0.5],
        "labels": [1, 1, 1],
    }
    assert detection.map_reward(pred, gt) == pytest.approx(expected_map(pred, gt), abs=1e-9)


def test_map_reward_crowd_gt_is_reusable_and_ignored():
    gt = {"boxes": [[0, 0, 100, 100], [200, 200, 220, 220]], "labels": [1, 1], "iscrowd": [1, 0]}
    pred = {
        "boxes": [[10, 10, 30, 30], [20, 20, 40, 40], [200, 200, 220, 221]],
        "scores": [0.9, 0.8, 0.1],
        "labels": [1, 1, 1],
    }
    got = detection.map_reward(pred, gt)
    assert got == pytest.approx(expected_map(pred, gt), abs=1e-9)
    assert got == pytest.approx(1.0)  # both crowd hits are ignored, the real object is found


def test_map_reward_empty_cases_have_documented_values():
    empty_pred = {"boxes": np.zeros((0, 4)), "scores": [], "labels": []}
    empty_gt = {"boxes": [], "labels": []}
    gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
    pred = {"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [0]}
    assert detection.map_reward(empty_pred, empty_gt) == 1.0
    assert detection.map_reward(pred, empty_gt) == 0.0
    assert detection.map_reward(empty_pred, gt) == 0.0
    only_crowd = {"boxes": [[0, 0, 10, 10]], "labels": [0], "iscrowd": [1]}
    assert detection.map_reward(empty_pred, only_crowd) == 1.0


def test_penalize_absent_classes_closes_the_false_positive_hole():
    gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
    pred = {"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "scores": [0.9, 0.95], "labels": [0, 5]}
    assert detection.map_reward(pred, gt) == pytest.approx(expected_map(pred, gt))
    assert detection.map_reward(pred, gt) == pytest.approx(1.0)  # COCO: class 5 is absent, its FP is free
    assert detection.map_reward(pred, gt, penalize_absent_classes=True) == pytest.approx(0.5)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6), st.integers(0, 6), st.integers(0, 5), st.integers(0, 5), st.integers(0, 1)
        ),
        max_size=5,
    ),
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.integers(0, 6),
            st.integers(0, 5),
            st.integers(0, 5),
            st.integers(0, 1),
            st.sampled_from([0.25, 0.5, 0.75]),
        ),
        max_size=7,
    ),
    st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_map_reward_property_small_integer_grids(gt_rows, pred_rows, crowd):
    gt = {
        "boxes": np.array([[x, y, x + w, y + h] for x, y, w, h, _ in gt_rows], float).reshape(-1, 4),
        "labels": np.array([c for *_, c in gt_rows], np.int64),
        "iscrowd": np.array(crowd[: len(gt_rows)], int),
    }
    pred = {
        "boxes": np.array([[x, y, x + w, y + h] for x, y, w, h, _, _ in pred_rows], float).reshape(-1, 4),
        "labels": np.array([r[4] for r in pred_rows], np.int64),
        "scores": np.array([r[5] for r in pred_rows]),
    }
    assert detection.map_reward(pred, gt) == pytest.approx(expected_map(pred, gt), abs=1e-9)


# ----------------------------------------------------------- box formats


def _convert(boxes_xyxy, fmt):
    b = np.asarray(boxes_xyxy, float).reshape(-1, 4)
    x1, y1, x2, y2 = b.T
    return {
        "xyxy": b,
        "xywh": np.stack([x1, y1, x2 - x1, y2 - y1], 1),
        "cxcywh": np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1),
        "yxyx": np.stack([y1, x1, y2, x2], 1),
    }[fmt]


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh", "yxyx"])
def test_box_formats_agree_with_xyxy(fmt):
    rng = np.random.default_rng(11)
    for _ in range(30):
        pred, gt = random_image(rng, adversarial=False)
        p2 = {**pred, "boxes": _convert(pred["boxes"], fmt)}
        g2 = {**gt, "boxes": _convert(gt["boxes"], fmt)}
        assert detection.map_reward(p2, g2, box_format=fmt) == pytest.approx(
            detection.map_reward(pred, gt), abs=1e-9
        )
        assert detection.recall_reward(p2, g2, box_format=fmt) == pytest.approx(
            detection.recall_reward(pred, gt), abs=1e-9
        )


def test_accepts_lists_torch_and_jax_and_never_modifies_inputs():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(3)
    pred, gt = random_image(rng, n_gt=5, n_pred=10)
    before = copy.deepcopy((pred, gt))
    expected = detection.map_reward(pred, gt)
    as_lists = (
        {k: np.asarray(v).tolist() for k, v in pred.items()},
        {k: np.asarray(v).tolist() for k, v in gt.items()},
    )
    as_torch = (
        {k: torch.as_tensor(v) for k, v in pred.items()},
        {k: torch.as_tensor(v) for k, v in gt.items()},
    )
    as_jax = ({k: jnp.asarray(v) for k, v in pred.items()}, {k: jnp.asarray(v) for k, v in gt.items()})
    for p, g in (as_lists, as_torch):
        assert detection.map_reward(p, g) == pytest.approx(expected, abs=1e-12)
    # jax defaults to float32: the value may move in the last bits only.
    assert detection.map_reward(*as_jax) == pytest.approx(
        detection.map_reward(*({k: np.asarray(v) for k, v in d.items()} for d in as_jax)), abs=1e-12
    )
    for a, b in zip(before, (pred, gt)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


# ------------------------------------------------------------ validation

GOOD_PRED = {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [0]}
GOOD_GT = {"boxes": [[0, 0, 1, 1]], "labels": [0]}


@pytest.mark.parametrize(
    "pred, gt, kwargs, match",
    [
        ({**GOOD_PRED, "boxes": [[0, 0, 1]]}, GOOD_GT, {}, r'pred\["boxes"\].*shape \(N, 4\)'),
        ({**GOOD_PRED, "boxes": [[0, 0, np.nan, 1]]}, GOOD_GT, {}, r'pred\["boxes"\].*NaN'),
        (GOOD_PRED, {**GOOD_GT, "boxes": [[0, 0, np.inf, 1]]}, {}, r'gt\["boxes"\].*NaN or infinite'),
        ({**GOOD_PRED, "boxes": [[5, 0, 1, 1]]}, GOOD_GT, {}, r'pred\["boxes"\].*negative width'),
        ({**GOOD_PRED, "labels": [0.5]}, GOOD_GT, {}, r'pred\["labels"\].*integers'),
        (GOOD_PRED, {**GOOD_GT, "labels": [1.0]}, {}, r'gt\["labels"\].*integers'),
        ({**GOOD_PRED, "scores": [0.5, 0.1]}, GOOD_GT, {}, r'pred\["scores"\].*shape \(1,\)'),
        ({**GOOD_PRED, "scores": [np.nan]}, GOOD_GT, {}, r'pred\["scores"\].*NaN'),
        ({"boxes": [[0, 0, 1, 1]], "labels": [0]}, GOOD_GT, {}, r"pred.*missing the key 'scores'"),
        (GOOD_PRED, GOOD_GT, {"box_format": "xxyy"}, r"box_format"),
        (GOOD_PRED, GOOD_GT, {"iou_thresholds": [1.5]}, r"iou_thresholds"),
        (GOOD_PRED, GOOD_GT, {"max_dets": 0}, r"max_dets"),
    ],
)
def test_map_reward_rejects_bad_input_naming_the_argument(pred, gt, kwargs, match):
    with pytest.raises(ValueError, match=match):
        detection.map_reward(pred, gt, **kwargs)


def test_batch_errors_name_the_example_and_lengths():
    with pytest.raises(ValueError, match=r"`preds` has 2 examples but `gts` has 1"):
        detection.map_reward_batch([GOOD_PRED, GOOD_PRED], [GOOD_GT])
    with pytest.raises(ValueError, match=r'preds\[1\]\["boxes"\].*NaN'):
        detection.map_reward_batch(
            [GOOD_PRED, {**GOOD_PRED, "boxes": [[0, 0, np.nan, 1]]}], [GOOD_GT, GOOD_GT]
        )
    with pytest.raises(TypeError, match=r"preds\[0\]` must be a dict"):
        detection.recall_reward_batch([[0, 0, 1, 1]], [GOOD_GT])
    with pytest.raises(ValueError, match=r"class_weights.*label is 3"):
        detection.recall_reward({**GOOD_PRED, "labels": [3]}, GOOD_GT, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"negative labels"):  # labels index class_weights
        detection.recall_reward({**GOOD_PRED, "labels": [-1]}, GOOD_GT, class_weights=[1.0])


# ---------------------------------------------------------------- recall


@pytest.mark.parametrize("seed", range(3))
def test_recall_reward_matches_the_released_recipe(seed):
    rng = np.random.default_rng(100 + seed)
    counts = rng.integers(1, 5000, size=80)
    weights = detection.class_weights_from_counts(counts)
    thresholds = detection.COCO_IOU_THRESHOLDS
    cases = [random_image(rng) for _ in range(120)]
    for dw in (0.3, 0.0, 1.0):
        got = detection.recall_reward_batch(
            [p for p, _ in cases], [g for _, g in cases], class_weights=weights, duplicate_weight=dw
        )
        for (pred, gt), value in zip(cases, got):
            expected, _ = recall_oracle(pred, gt, thresholds, weights, dw)
            assert value == pytest.approx(expected, abs=1e-9)
            assert detection.recall_reward(pred, gt, class_weights=weights, duplicate_weight=dw) == value
    for pred, gt in cases[:40]:
        _, expected_iou = recall_oracle(pred, gt, [0.5], np.ones(80), 0.3)
        np.testing.assert_allclose(detection.match_iou(pred, gt), expected_iou, atol=1e-12)


def test_recall_reward_five_key_accident_is_not_reproduced():
    gt = {"boxes": [[0, 0, 100, 100]], "labels": [0]}
    pred = {"boxes": [[0, 0, 100, 78]], "scores": [1.0], "labels": [0]}  # IoU 0.78
    # Found at .50 .55 .60 .65 .70 .75 (6 of 10): the mean over all ten thresholds.
    assert detection.recall_reward(pred, gt) == pytest.approx(0.6)


def test_recall_reward_normalize_and_weights():
    gt = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 1]}
    pred = {"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [0]}
    w = np.array([1.0, 3.0])
    assert detection.recall_reward(pred, gt, class_weights=w) == pytest.approx(1.0)
    assert detection.recall_reward(pred, gt, class_weights=w, normalize=True) == pytest.approx(0.25)
    assert detection.recall_reward(pred, {"boxes": [], "labels": []}, normalize=True) == 0.0


def test_match_iou_batch_splits_per_image():
    rng = np.random.default_rng(5)
    cases = [random_image(rng) for _ in range(20)]
    got = detection.match_iou_batch([p for p, _ in cases], [g for _, g in cases], iou_threshold=0.6)
    for (p, g), arr in zip(cases, got):
        np.testing.assert_array_equal(arr, detection.match_iou(p, g, iou_threshold=0.6))


def test_class_weights_from_counts_formula():
    counts = np.array([262465, 7113, 43867, 225, 198])
    w = detection.class_weights_from_counts(counts, smoothing=0.05)
    raw = 1.0 / (counts + 0.05 * counts.sum())
    np.testing.assert_allclose(w, len(counts) * raw / raw.sum())
    assert w.sum() == pytest.approx(len(counts))
    assert np.all(np.diff(w[[0, 2, 1, 3, 4]]) > 0)  # rarer is heavier
    with pytest.raises(ValueError, match="counts"):
        detection.class_weights_from_counts([-1, 2])


# ----------------------------------------------------------- dataset eval


@pytest.mark.parametrize("seed", range(3))
def test_coco_eval_matches_pycocotools_and_faster_coco_eval(seed):
    rng = np.random.default_rng(200 + seed)
    cases = [random_image(rng) for _ in range(150)]
    # Some images carry COCO's annotation area (differs from the box area).
    for _, gt in cases[::3]:
        gt["area"] = rng.uniform(0, 3 * 96**2, size=len(gt["labels"]))
    preds, gts = [p for p, _ in cases], [g for _, g in cases]
    ours = np.array(list(detection.coco_eval(preds, gts).values()))
    np.testing.assert_allclose(ours, pycoco_stats(preds, gts), atol=1e-9, rtol=0)
    np.testing.assert_allclose(ours, faster_coco_stats(preds, gts), atol=1e-9, rtol=0)


def test_coco_eval_keys_and_many_detections_per_image():
    rng = np.random.default_rng(9)
    cases = [random_image(rng, n_gt=8, n_pred=130, n_classes=2) for _ in range(8)]
    preds, gts = [p for p, _ in cases], [g for _, g in cases]
    stats = detection.coco_eval(preds, gts)
    assert list(stats) == list(detection.COCO_STAT_KEYS)
    np.testing.assert_allclose(list(stats.values()), pycoco_stats(preds, gts), atol=1e-9, rtol=0)


# ------------------------------------------- bad-input probe rows (issue 12)


def test_map_reward_sums_precision_as_pycocotools_does():
    """Bit for bit: the mean over the (T, R, K) precision samples in numpy's pairwise order."""
    rng = np.random.default_rng(17)
    gt = {"boxes": [[0, 0, 10, 10]], "labels": [3]}
    cases = [({"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [3]}, gt)]
    cases += [random_image(rng, n_classes=int(rng.integers(1, 4))) for _ in range(40)]
    for pred, g in cases:
        ref = pycoco_image_ap(pred, g)
        if ref != -1:
            assert detection.map_reward(pred, g) == ref


@pytest.mark.parametrize("fn", [detection.map_reward, detection.recall_reward, detection.match_iou])
def test_none_and_mapping_inputs(fn):
    from types import MappingProxyType

    with pytest.raises(TypeError, match=r"`gt` must be a dict"):
        fn(GOOD_PRED, None)
    with pytest.raises(TypeError, match=r"`pred` must be a dict"):
        fn(None, GOOD_GT)
    proxy = fn(MappingProxyType(GOOD_PRED), MappingProxyType(GOOD_GT))
    np.testing.assert_array_equal(proxy, fn(GOOD_PRED, GOOD_GT))


@pytest.mark.parametrize(
    "pred, gt, kwargs, error, match",
    [
        (
            {**GOOD_PRED, "boxes": np.zeros((0, 3)), "scores": [], "labels": []},
            GOOD_GT,
            {},
            ValueError,
            r'`pred\["boxes"\]` must have shape \(N, 4\), got \(0, 3\)',
        ),
        (
            GOOD_PRED,
            {**GOOD_GT, "iscrowd": [0.0]},
            {},
            ValueError,
            r'`gt\["iscrowd"\]` must hold integers or booleans',
        ),
        (
            {**GOOD_PRED, "labels": np.array([2**64 - 1], np.uint64)},
            GOOD_GT,
            {},
            ValueError,
            r'`pred\["labels"\]` holds 18446744073709551615, which does not fit int64',
        ),
        (
            {**GOOD_PRED, "boxes": [[-1e308, 0, 1e308, 1]]},
            GOOD_GT,
            {},
            ValueError,
            r'`pred\["boxes"\]` has a box whose size overflows float64',
        ),
        (GOOD_PRED, GOOD_GT, {"max_dets": float("inf")}, ValueError, r"`max_dets` must be a whole number"),
        (GOOD_PRED, GOOD_GT, {"max_dets": float("nan")}, ValueError, r"`max_dets` must be a whole number"),
        (GOOD_PRED, GOOD_GT, {"max_dets": None}, TypeError, r"`max_dets` must be an integer"),
        (GOOD_PRED, GOOD_GT, {"max_dets": 2**70}, ValueError, r"`max_dets` must be <="),
    ],
)
def test_map_reward_probe_rows(pred, gt, kwargs, error, match):
    with pytest.raises(error, match=match):
        detection.map_reward(pred, gt, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"duplicate_weight": "0.3"}, TypeError, r"`duplicate_weight` must be a real number"),
        ({"duplicate_weight": None}, TypeError, r"`duplicate_weight` must be a real number"),
        ({"duplicate_weight": np.array([0.3])}, TypeError, r"`duplicate_weight` must be a real number"),
        ({"class_weights": [-1.0, -1.0, -1.0]}, ValueError, r"`class_weights` must be non-negative"),
        ({"iou_thresholds": ["a"]}, ValueError, r"`iou_thresholds`"),
    ],
)
def test_recall_reward_option_probe_rows(kwargs, error, match):
    with pytest.raises(error, match=match):
        detection.recall_reward(GOOD_PRED, GOOD_GT, **kwargs)
    with pytest.raises(TypeError, match=r"`smoothing` must be a real number"):
        detection.class_weights_from_counts([1, 2], smoothing="0.1")
    with pytest.raises(TypeError, match=r"`iou_threshold` must be a real number"):
        detection.match_iou(GOOD_PRED, GOOD_GT, iou_threshold="0.5")


def test_empty_batches_and_empty_boxes():
    assert detection.match_iou_batch([], []) == []
    assert detection.map_reward_batch([], []).shape == (0,)
    assert detection.recall_reward_batch([], []).shape == (0,)
    empty = {"boxes": [], "scores": [], "labels": []}
    assert detection.map_reward(empty, {"boxes": np.zeros((0, 4)), "labels": []}) == 1.0


def test_negative_gt_area_is_ignored_as_in_pycocotools():
    gt = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [1, 1], "area": [-1.0, 100.0]}
    pred = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "scores": [0.9, 0.8], "labels": [1, 1]}
    assert detection.map_reward(pred, gt) == expected_map(pred, gt)


def test_labels_of_any_int64_value_use_memory_of_the_input():
    rng = np.random.default_rng(23)
    for big in (2**40, 2**62, -(2**62)):
        pred, gt = random_image(rng, n_gt=6, n_pred=12, n_classes=2)
        shifted = ({**pred, "labels": pred["labels"] + big}, {**gt, "labels": gt["labels"] + big})
        # 2**40 with a dense label table would allocate 8 TiB.
        assert detection.recall_reward(*shifted) == detection.recall_reward(pred, gt)
        assert detection.map_reward(*shifted) == detection.map_reward(pred, gt)
        np.testing.assert_array_equal(detection.match_iou(*shifted), detection.match_iou(pred, gt))
        assert detection.coco_eval([shifted[0]], [shifted[1]]) == detection.coco_eval([pred], [gt])
    small = {**GOOD_PRED, "labels": np.array([0], np.uint64)}
    assert detection.map_reward(small, GOOD_GT) == detection.map_reward(GOOD_PRED, GOOD_GT)


PADDED_PREDS = {
    "boxes": np.array([[[0, 0, 10, 10]]], float),
    "scores": np.ones((1, 1)),
    "labels": np.zeros((1, 1), int),
    "valid": np.ones((1, 1), bool),
}
PADDED_GTS = {
    "boxes": np.array([[[0, 0, 10, 10]]], float),
    "labels": np.zeros((1, 1), int),
    "valid": np.ones((1, 1), bool),
}


@pytest.mark.parametrize(
    "fn", [detection.map_reward_padded, detection.recall_reward_padded, detection.match_iou_padded]
)
@pytest.mark.parametrize("dtype", [complex, str, bool, object])
def test_padded_entry_points_reject_non_numeric_boxes(fn, dtype):
    boxes = PADDED_PREDS["boxes"].astype(dtype)
    if dtype is object:
        boxes[0, 0, 0] = None
    with pytest.raises(ValueError, match=r'`preds\["boxes"\]` must be numeric'):
        fn({**PADDED_PREDS, "boxes": boxes}, PADDED_GTS)
    with pytest.raises(ValueError, match=r'`gts\["boxes"\]` must be numeric'):
        fn(PADDED_PREDS, {**PADDED_GTS, "boxes": boxes})


def test_bfloat16_inputs_are_widened():
    torch = pytest.importorskip("torch")
    pred = {k: torch.as_tensor(np.asarray(v)) for k, v in GOOD_PRED.items()}
    pred["boxes"] = pred["boxes"].to(torch.bfloat16)
    assert detection.recall_reward(pred, GOOD_GT) == detection.recall_reward(GOOD_PRED, GOOD_GT)
    padded = {**PADDED_PREDS, "boxes": torch.as_tensor(PADDED_PREDS["boxes"]).to(torch.bfloat16)}
    np.testing.assert_array_equal(
        detection.recall_reward_padded(padded, PADDED_GTS),
        detection.recall_reward_padded(PADDED_PREDS, PADDED_GTS),
    )


def test_stable_order_kernel_equals_numpy_stable_lexsort():
    from rewards._coco_kernels import _stable_order

    rng = np.random.default_rng(29)
    for n in (0, 1, 5, 64, 65, 200, 1000):
        major = rng.integers(-3, 3, n).astype(np.int64)
        minor = np.round(rng.normal(size=n), 1)  # many ties
        np.testing.assert_array_equal(_stable_order(major, minor), np.lexsort((minor, major)))


def test_recall_reward_with_predictions_but_no_gt_reads_nothing_out_of_bounds():
    """Under numba's bounds checking (a subprocess: the flag is read at compile time)."""
    import os
    import subprocess
    import sys
    import tempfile

    code = (
        "import numpy as np, rewards\n"
        "pred = {'boxes': [[0, 0, 1, 1], [0, 0, 2, 2]], 'scores': [1.0, 0.5], 'labels': [0, 3]}\n"
        "gt = {'boxes': np.zeros((0, 4)), 'labels': np.zeros(0, int)}\n"
        "print(rewards.recall_reward(pred, gt), rewards.recall_reward(pred, gt, normalize=True))\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0.0", "0.0"]
