"""Every FAIL and WEAK row of the bad-input probe (shared/probes/bad-input-probe.md), as a test.

Written fresh from the rows, not parsed from the file: one test per row (parametrised where
rows differ only in a value), grouped by area in the probe's order. Each asserts the row's
"expected" column: the correct value, or a ``TypeError``/``ValueError`` whose message names
the argument (and, in batches, the example index). Messages are matched on the argument's
name only, never on wording. bfloat16 inputs must give the value of float32 holding the same
numbers (they widen exactly). torch and jax rows skip when the framework is missing.
"""

from __future__ import annotations

import re
import types

import numpy as np
import pytest

from rewards import captioning, colorization, detection, panoptic
from rewards.adapters.box_tokens import BoxTokenizer


def raises_naming(*names: str):
    """``pytest.raises`` of TypeError/ValueError whose message names every one of ``names``."""
    pattern = "".join(f"(?=[\\s\\S]*{re.escape(n)})" for n in names)
    return pytest.raises((TypeError, ValueError), match=pattern)


# ------------------------------------------------------------------ detection

PRED = {
    "boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]],
    "scores": [0.9, 0.8, 0.7],
    "labels": [1, 2, 1],
}
GT = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 31]], "labels": [1, 2]}
DETECTION_FNS = [detection.map_reward, detection.recall_reward, detection.match_iou]
DETECTION_IDS = ["map_reward", "recall_reward", "match_iou"]


def _value(x):
    return np.asarray(x, np.float64).tolist()


@pytest.mark.parametrize("fn", DETECTION_FNS, ids=DETECTION_IDS)
def test_detection_gt_none_names_gt(fn):
    with raises_naming("gt"):
        fn(PRED, None)


@pytest.mark.parametrize(
    "fn",
    [detection.map_reward_batch, detection.recall_reward_batch, detection.match_iou_batch],
    ids=DETECTION_IDS,
)
def test_detection_batch_gt_none_names_index(fn):
    with raises_naming("gts[1]"):
        fn([PRED, PRED], [GT, None])


@pytest.mark.parametrize("fn", DETECTION_FNS, ids=DETECTION_IDS)
def test_detection_mapping_proxy_of_lists_works(fn):
    proxy = types.MappingProxyType({k: list(v) for k, v in PRED.items()})
    assert _value(fn(proxy, GT)) == _value(fn(PRED, GT))


def test_match_iou_batch_of_no_examples_is_empty():
    assert detection.match_iou_batch([], []) == []


@pytest.mark.parametrize("fn", DETECTION_FNS, ids=DETECTION_IDS)
def test_detection_float_iscrowd_is_baseline_or_named(fn):
    baseline = _value(fn(PRED, {**GT, "iscrowd": [False, False]}))
    try:
        got = fn(PRED, {**GT, "iscrowd": [0.0, 0.0]})
    except ValueError as err:
        assert "iscrowd" in str(err)
        assert "must hold numbers" not in str(err), "a float array is numbers: the message misleads"
    else:
        assert _value(got) == baseline


@pytest.mark.parametrize("big", [2**40, 10**8])
@pytest.mark.parametrize("fn", DETECTION_FNS, ids=DETECTION_IDS)
def test_detection_huge_labels_same_value(fn, big):
    relabel = {1: big, 2: big + 1}
    pred = {**PRED, "labels": [relabel[v] for v in PRED["labels"]]}
    gt = {**GT, "labels": [relabel[v] for v in GT["labels"]]}
    assert _value(fn(pred, gt)) == pytest.approx(_value(fn(PRED, GT)), abs=1e-12)


@pytest.mark.parametrize("max_dets", [float("inf"), float("nan"), None], ids=["inf", "nan", "None"])
def test_map_reward_bad_max_dets_named(max_dets):
    with raises_naming("max_dets"):
        detection.map_reward(PRED, GT, max_dets=max_dets)


def test_map_reward_huge_int_max_dets_works_or_named():
    try:
        got = detection.map_reward(PRED, GT, max_dets=2**70)
    except (TypeError, ValueError) as err:
        assert "max_dets" in str(err)
    else:
        assert got == detection.map_reward(PRED, GT, max_dets=100)


@pytest.mark.parametrize("weight", ["0.3", None, np.array([0.3])], ids=["str", "None", "array"])
def test_recall_reward_bad_duplicate_weight_named(weight):
    with raises_naming("duplicate_weight"):
        detection.recall_reward(PRED, GT, duplicate_weight=weight)


def test_class_weights_from_counts_string_smoothing_named():
    with raises_naming("smoothing"):
        detection.class_weights_from_counts([1, 2], smoothing="0.1")


PADDED_PRED = {
    "boxes": np.array([[[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]]),
    "scores": np.array([[0.9, 0.8]]),
    "labels": np.array([[1, 2]]),
    "valid": np.array([[True, True]]),
}
PADDED_GT = {
    "boxes": np.array([[[0.0, 0.0, 10.0, 10.0]]]),
    "labels": np.array([[1]]),
    "valid": np.array([[True]]),
}
PADDED_FNS = [detection.map_reward_padded, detection.recall_reward_padded, detection.match_iou_padded]
PADDED_IDS = ["map_reward_padded", "recall_reward_padded", "match_iou_padded"]


def _bad_boxes(kind: str) -> np.ndarray:
    boxes = PADDED_PRED["boxes"]
    if kind == "object None":
        bad = boxes.astype(object)
        bad[0, 0, 0] = None
        return bad
    return boxes.astype({"complex": complex, "str": str, "bool": bool}[kind])


@pytest.mark.parametrize("kind", ["complex", "str", "bool", "object None"])
@pytest.mark.parametrize("fn", PADDED_FNS, ids=PADDED_IDS)
def test_padded_non_real_boxes_named(fn, kind):
    with raises_naming("boxes") as caught:
        fn({**PADDED_PRED, "boxes": _bad_boxes(kind)}, PADDED_GT)
    assert "NaN" not in str(caught.value), "a None box is not a NaN: the message misleads"


# ------------------------------------------------------------------- panoptic

PAN_GT = np.zeros((4, 4, 2), np.int64)
PAN_GT[:, 2:, 0] = 1
PAN_GT[:, 2:, 1] = 3
PAN_PRED = PAN_GT.copy()
PAN_PRED[0, 0] = (1, 5)


def test_pq_things_none_named():
    with raises_naming("things"):
        panoptic.pq_reward(PAN_PRED, PAN_GT, things=None, stuffs=[0])


def test_pq_float_category_not_truncated():
    truncated = panoptic.pq_reward(PAN_PRED, PAN_GT, things={1}, stuffs={0})
    try:
        got = panoptic.pq_reward(PAN_PRED, PAN_GT, things={1.7}, stuffs={0})
    except (TypeError, ValueError) as err:  # 1.7 rejected, or it never matches and category 1 is unknown
        assert re.search("things|pred", str(err)), str(err)
    else:
        assert got != truncated, "category 1.7 was silently truncated to 1"


def test_pq_string_things_rejected():
    with raises_naming("things"):
        panoptic.pq_reward(PAN_PRED, PAN_GT, things="1", stuffs=[0])


def test_pq_uint64_category_that_wraps_to_negative_is_unknown():
    pred = PAN_PRED.astype(np.uint64)
    pred[0, 1, 0] = np.uint64(2**64 - 1)
    with raises_naming("pred"):
        panoptic.pq_reward(pred, PAN_GT.astype(np.uint64), things=[1], stuffs=[0])


def test_pq_huge_thing_category_same_value():
    big = 2**40
    pred, gt = PAN_PRED.copy(), PAN_GT.copy()
    pred[..., 0][PAN_PRED[..., 0] == 1] = big
    gt[..., 0][PAN_GT[..., 0] == 1] = big
    want = panoptic.pq_reward(PAN_PRED, PAN_GT, things={1}, stuffs=[0])
    assert panoptic.pq_reward(pred, gt, things={big}, stuffs=[0]) == pytest.approx(want, abs=1e-12)


def test_panoptic_from_id_map_missing_category_id_named():
    ids = np.array([[0, 5], [7, 7]])
    with pytest.raises((KeyError, ValueError), match=re.escape("segments_info[1]")):
        panoptic.panoptic_from_id_map(ids, [{"id": 5, "category_id": 3}, {"id": 7}])


# ----------------------------------------------------------------- captioning

REFS = [["a cat on a mat", "a cat sitting on a mat"], ["two dogs in the snow"]]
DOC_FREQ = captioning.document_frequencies(REFS)


@pytest.mark.parametrize("sigma", ["6", None], ids=["str", "None"])
def test_cider_bad_sigma_named(sigma):
    with raises_naming("sigma"):
        captioning.cider_reward("a cat", REFS[0], DOC_FREQ, sigma=sigma)


def test_document_frequencies_load_corrupt_file_is_clear(tmp_path):
    path = tmp_path / "df.npz"
    path.write_bytes(b"definitely not a document-frequency file" * 4)
    with pytest.raises((ValueError, OSError)) as caught:
        captioning.DocumentFrequencies.load(path)
    message = str(caught.value)
    assert "allow_pickle" not in message, "the message should not invite unpickling an unknown file"
    assert "df.npz" in message or "path" in message, message


def test_document_frequencies_load_missing_keys_is_clear(tmp_path):
    path = tmp_path / "df.npz"
    np.savez(path, n_images=np.array(3))
    with pytest.raises(ValueError, match="words"):
        captioning.DocumentFrequencies.load(path)


# --------------------------------------------------------------- colorization

IMAGE = np.random.default_rng(0).random((5, 6, 3))


@pytest.mark.parametrize(
    "fn",
    [colorization.colorfulness, colorization.colorfulness_reward],
    ids=["colorfulness", "colorfulness_reward"],
)
def test_colorfulness_big_endian_equals_native(fn):
    try:
        got = fn(IMAGE.astype(">f8"))
    except ValueError as err:
        assert "image" in str(err)
    else:
        assert got == fn(IMAGE)


@pytest.mark.parametrize(
    "fn",
    [colorization.colorfulness_batch, colorization.colorfulness_reward_batch],
    ids=["colorfulness_batch", "colorfulness_reward_batch"],
)
def test_colorfulness_batch_big_endian_equals_native(fn):
    batch = np.stack([IMAGE, IMAGE[::-1]])
    try:
        got = fn(batch.astype(">f8"))
    except ValueError as err:
        assert "images" in str(err)
    else:
        assert got.tolist() == fn(batch).tolist()


# ------------------------------------------------- frameworks: bf16 tensors


def _torch():
    return pytest.importorskip("torch")


def _jnp():
    return pytest.importorskip("jax.numpy")


@pytest.mark.parametrize(
    "fn", [detection.recall_reward, detection.map_reward], ids=["recall_reward", "map_reward"]
)
def test_torch_bfloat16_prediction_equals_float32(fn):
    torch = _torch()
    boxes = torch.tensor(PRED["boxes"], dtype=torch.float32) + 0.3  # not all exact in bf16
    scores = torch.tensor(PRED["scores"], dtype=torch.float32)
    bf16 = {"boxes": boxes.bfloat16(), "scores": scores.bfloat16(), "labels": torch.tensor(PRED["labels"])}
    f32 = {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in bf16.items()}
    assert fn(bf16, GT) == fn(f32, GT)


@pytest.mark.parametrize(
    "fn", [detection.recall_reward, detection.map_reward], ids=["recall_reward", "map_reward"]
)
def test_jax_bfloat16_prediction_equals_float32(fn):
    jnp = _jnp()
    bf16 = {
        "boxes": jnp.asarray(np.array(PRED["boxes"]) + 0.3, jnp.bfloat16),
        "scores": jnp.asarray(PRED["scores"], jnp.bfloat16),
        "labels": jnp.asarray(PRED["labels"]),
    }
    f32 = {k: np.asarray(v.astype(jnp.float32)) if k != "labels" else np.asarray(v) for k, v in bf16.items()}
    assert fn(bf16, GT) == fn(f32, GT)


def test_recall_reward_padded_torch_bfloat16_boxes_equal_float32():
    torch = _torch()
    boxes = torch.tensor(PADDED_PRED["boxes"] + 0.3).bfloat16()
    got = detection.recall_reward_padded({**PADDED_PRED, "boxes": boxes}, PADDED_GT)
    want = detection.recall_reward_padded({**PADDED_PRED, "boxes": boxes.float().numpy()}, PADDED_GT)
    assert got.tolist() == want.tolist()


def test_colorfulness_torch_bfloat16_equals_float32():
    torch = _torch()
    image = torch.tensor(IMAGE).bfloat16()
    assert colorization.colorfulness(image) == colorization.colorfulness(image.float().numpy())


def test_colorfulness_batch_jax_bfloat16_equals_float32():
    jnp = _jnp()
    images = jnp.asarray(np.stack([IMAGE, IMAGE[::-1]]), jnp.bfloat16)
    want = colorization.colorfulness_batch(np.asarray(images.astype(jnp.float32)))
    assert colorization.colorfulness_batch(images).tolist() == want.tolist()


# ------------------------------------------------------------ adapters.torch


def _rt():
    _torch()
    from rewards.adapters import torch as rt

    return rt


REWARDS_2x3 = [[1.0, 0.0, 0.5], [0.2, 0.4, 0.9]]


def test_torch_reinforce_loss_rewards_as_list():
    torch, rt = _torch(), _rt()
    lp = torch.linspace(-3, -1, 6).reshape(2, 3)
    assert (
        rt.reinforce_loss(lp, REWARDS_2x3).item() == rt.reinforce_loss(lp, torch.tensor(REWARDS_2x3)).item()
    )


def test_torch_reinforce_loss_baseline_as_list():
    torch, rt = _torch(), _rt()
    lp = torch.linspace(-3, -1, 6).reshape(2, 3)
    rewards = torch.tensor(REWARDS_2x3)
    got = rt.reinforce_loss(lp, rewards, baseline=[0.5, 0.25]).item()
    assert got == rt.reinforce_loss(lp, rewards, baseline=torch.tensor([0.5, 0.25])).item()


def test_torch_reinforce_loss_integer_logprob_rejected():
    torch, rt = _torch(), _rt()
    with raises_naming("seq_logprob"):
        rt.reinforce_loss(torch.ones(2, 3, dtype=torch.int64), torch.tensor(REWARDS_2x3))


def test_torch_loo_baseline_of_list():
    torch, rt = _torch(), _rt()
    assert rt.loo_baseline(REWARDS_2x3).tolist() == rt.loo_baseline(torch.tensor(REWARDS_2x3)).tolist()


def _logprob_case():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 2, 3, 10)).astype(np.float32)  # (B, N, T, V)
    tokens = np.array([[[1, 2, 3], [4, 5, 6]]])
    mask = np.array([[[True, True, False], [True, False, False]]])
    return logits, tokens, mask


@pytest.mark.parametrize("filler", [-100, 10], ids=["ignore_index_-100", "token_eq_V"])
def test_torch_sequence_logprob_masked_positions_may_hold_anything(filler):
    torch, rt = _torch(), _rt()
    logits, tokens, mask = _logprob_case()
    filled = np.where(mask, tokens, filler)
    want = rt.sequence_logprob(torch.tensor(logits), torch.tensor(tokens), torch.tensor(mask))
    got = rt.sequence_logprob(torch.tensor(logits), torch.tensor(filled), torch.tensor(mask))
    assert got.tolist() == want.tolist()


def test_torch_iou_confidence_loss_iou_above_one_rejected():
    torch, rt = _torch(), _rt()
    with raises_naming("match_iou"):
        rt.iou_confidence_loss(
            torch.zeros(1, 2, 3), torch.tensor([[1.5, 0.5]]), torch.ones(1, 2, dtype=torch.bool)
        )


def test_torch_iou_confidence_loss_takes_match_iou_padded_output():
    torch, rt = _torch(), _rt()
    ious = detection.match_iou_padded(PADDED_PRED, PADDED_GT)  # numpy float64 (B, K)
    conf = torch.linspace(-1, 1, 6).reshape(1, 2, 3)
    valid = PADDED_PRED["valid"]
    want = rt.iou_confidence_loss(conf, torch.tensor(ious, dtype=torch.float32), torch.tensor(valid))
    assert rt.iou_confidence_loss(conf, ious, valid).item() == pytest.approx(want.item(), rel=1e-6)


def test_torch_wrap_reward_bfloat16_equals_float32():
    torch, rt = _torch(), _rt()
    reward = rt.wrap_reward(lambda x: x.sum(axis=1))
    x = torch.tensor([[0.1, 0.7, 1.3], [2.2, -0.4, 0.05]])
    assert reward(x.bfloat16()).tolist() == reward(x.bfloat16().float()).tolist()


def test_torch_wrap_reward_of_recall_reward_padded_with_dicts():
    torch, rt = _torch(), _rt()
    reward = rt.wrap_reward(detection.recall_reward_padded)
    as_torch = {k: torch.tensor(v) for k, v in PADDED_PRED.items()}
    gt_torch = {k: torch.tensor(v) for k, v in PADDED_GT.items()}
    want = detection.recall_reward_padded(PADDED_PRED, PADDED_GT)
    assert reward(as_torch, gt_torch).tolist() == pytest.approx(want.tolist(), rel=1e-6)


# -------------------------------------------------------------- adapters.jax


def _rj():
    pytest.importorskip("jax")
    from rewards.adapters import jax as rj

    return rj


def test_jax_reinforce_loss_rewards_as_list():
    jnp, rj = _jnp(), _rj()
    lp = jnp.linspace(-3, -1, 6).reshape(2, 3)
    assert float(rj.reinforce_loss(lp, REWARDS_2x3)) == float(rj.reinforce_loss(lp, jnp.asarray(REWARDS_2x3)))


@pytest.mark.parametrize("token", [10, -1], ids=["token_eq_V", "negative"])
def test_jax_sequence_logprob_out_of_range_unmasked_token_rejected(token):
    jnp, rj = _jnp(), _rj()
    logits, tokens, mask = _logprob_case()
    tokens = tokens.copy()
    tokens[0, 0, 0] = token  # an unmasked position
    with raises_naming("tokens"):
        rj.sequence_logprob(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))


def test_jax_sequence_logprob_out_of_range_under_jit_is_not_a_silent_number():
    jnp, rj = _jnp(), _rj()
    import jax

    logits, tokens, mask = _logprob_case()
    tokens = tokens.copy()
    tokens[0, 0, 0] = 10
    try:
        out = jax.jit(rj.sequence_logprob)(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))
        out = np.asarray(out)
    except Exception:  # noqa: BLE001 - any error under jit is an acceptable answer here
        return
    assert np.isnan(out[0, 0]), f"an out-of-range token gave the finite log-prob {out[0, 0]}"


def _raising(x):
    raise ValueError("boom from the reward")


def _wrong_shape(x):
    return np.zeros(len(x) + 1)


def test_jax_wrap_reward_error_under_jit_is_readable():
    jnp, rj = _jnp(), _rj()
    import jax

    with pytest.raises(Exception) as caught:
        jax.jit(rj.wrap_reward(_raising))(jnp.ones((2, 3)))
    # jax keeps only the text of an exception raised in a callback: its last line (not a frame
    # of the traceback above it) must say which reward function failed and why.
    last = str(caught.value).strip().splitlines()[-1]
    assert "boom from the reward" in last and "_raising" in last, str(caught.value)


def test_jax_wrap_reward_wrong_shape_under_jit_names_fn():
    jnp, rj = _jnp(), _rj()
    import jax

    with pytest.raises(Exception) as caught:
        jax.jit(rj.wrap_reward(_wrong_shape))(jnp.ones((2, 3)))
    last = str(caught.value).strip().splitlines()[-1]
    assert "_wrong_shape" in last, str(caught.value)


def test_jax_wrap_reward_of_recall_reward_padded_with_dicts():
    jnp, rj = _jnp(), _rj()
    reward = rj.wrap_reward(detection.recall_reward_padded)
    as_jax = {k: jnp.asarray(v) for k, v in PADDED_PRED.items()}
    gt_jax = {k: jnp.asarray(v) for k, v in PADDED_GT.items()}
    want = detection.recall_reward_padded(
        {k: np.asarray(v) for k, v in as_jax.items()}, {k: np.asarray(v) for k, v in gt_jax.items()}
    )
    assert np.asarray(reward(as_jax, gt_jax)).tolist() == pytest.approx(want.tolist(), rel=1e-6)


# ------------------------------------------------------ adapters.box_tokens

CODEC = BoxTokenizer(n_classes=3, n_bins=11)


def test_box_tokens_encode_nan_coordinate_named():
    with raises_naming("boxes"):
        CODEC.encode([[[0.1, float("nan"), 0.5, 0.6]]], [[1]], [[True]])


def test_box_tokens_encode_pixel_coordinates_named():
    with raises_naming("boxes"):
        CODEC.encode([[[10.0, 20.0, 200.0, 300.0]]], [[1]], [[True]])


def test_box_tokens_encode_float_label_named():
    with raises_naming("labels"):
        CODEC.encode([[[0.1, 0.2, 0.5, 0.6]]], [[1.7]], [[True]])


@pytest.mark.parametrize("n_classes", [1.5, "3"], ids=["float", "str"])
def test_box_tokenizer_bad_n_classes_named(n_classes):
    with raises_naming("n_classes"):
        BoxTokenizer(n_classes=n_classes)
