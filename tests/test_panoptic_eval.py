"""Dataset-level PQ (pq_eval) against the literal port of panopticapi's pq_compute, and the input rules of issues 12/13."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rewards import panoptic
from tests.panoptic_oracle import half_iou_scene, pq_eval_oracle, pq_oracle, random_scene

THINGS, STUFFS = (1, 2, 3), (10, 11, 12)  # 12 never appears: an empty category


def adversarial_set(seed, n=320):
    """Random scenes plus the cases that break implementations: IoU exactly 0.5, empty images, all void."""
    rng = np.random.default_rng(seed)
    scenes = []
    for k in range(n):
        r = k % 8
        if r == 0:
            scenes.append(half_iou_scene(rng))
        elif r == 1:  # GT all VOID (an image without segments), prediction anything
            pred, gt, _ = random_scene(rng)
            gt[..., 0] = 50
            scenes.append((pred, gt, None))
        elif r == 2:  # prediction empty (all 'no prediction')
            pred, gt, crowd = random_scene(rng)
            pred[..., 0] = -1
            scenes.append((pred, gt, crowd))
        else:
            scenes.append(random_scene(rng))
    return scenes


def assert_matches(result: panoptic.PanopticEval, expected: dict):
    for name, row in (("All", result.all), ("Things", result.things), ("Stuff", result.stuff)):
        assert row.n == expected[name]["n"], name
        np.testing.assert_allclose(
            [row.pq, row.sq, row.rq],
            [expected[name][k] for k in ("pq", "sq", "rq")],
            rtol=0,
            atol=1e-9,
            err_msg=name,
        )
    assert list(result.per_class) == list(expected["per_class"])
    for c, s in result.per_class.items():
        e = expected["per_class"][c]
        np.testing.assert_allclose([s.pq, s.sq, s.rq], [e["pq"], e["sq"], e["rq"]], rtol=0, atol=1e-9)


@pytest.mark.parametrize("separate", [False, True])
def test_pq_eval_matches_panopticapi_on_320_adversarial_images(separate):
    scenes = adversarial_set(1 + separate)
    preds, gts, crowds = (list(x) for x in zip(*scenes))
    mode = "separate" if separate else "merge"
    result = panoptic.pq_eval(preds, gts, things=THINGS, stuffs=STUFFS, crowd=crowds, stuff_segments=mode)
    expected = pq_eval_oracle(preds, gts, THINGS, STUFFS, crowds, separate_stuff=separate)
    assert_matches(result, expected)
    assert result.per_class[12] == panoptic.ClassPQ(0.0, 0.0, 0.0, 0, 0, 0, 0.0)
    # the counts are panopticapi's too, and the whole set exercises every rule
    tp = sum(s.tp for s in result.per_class.values())
    fp = sum(s.fp for s in result.per_class.values())
    fn = sum(s.fn for s in result.per_class.values())
    assert tp > 300 and fp > 100 and fn > 100
    # the per-image path agrees with panopticapi image by image (same kernel, other reduction)
    per_image = panoptic.pq_reward_batch(
        preds[:60],
        gts[:60],
        things=THINGS,
        stuffs=STUFFS,
        crowd=crowds[:60],
        stuff_segments=mode,
        return_sq_rq=True,
    )
    oracle = [
        pq_oracle(p, g, THINGS, STUFFS, c, separate) for p, g, c in zip(preds[:60], gts[:60], crowds[:60])
    ]
    np.testing.assert_allclose(per_image, oracle, rtol=0, atol=1e-12)


def test_iou_exactly_half_is_not_a_match():
    gt = np.zeros((8, 8, 2), np.int64)
    gt[..., 0] = 10
    gt[2:6, 2:6] = (1, 1)  # 16 pixels
    pred = gt.copy()
    pred[4:6, 2:6] = (10, 0)  # the thing predicted on 8 of its 16 pixels: IoU exactly 0.5
    s = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[10]).per_class[1]
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)
    pred[4, 2] = (1, 1)  # 9/16 > 0.5
    s = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[10]).per_class[1]
    assert (s.tp, s.fp, s.fn, s.iou_sum) == (1, 0, 0, 9 / 16)


def test_stacked_lists_streaming_and_single_image_agree():
    scenes = adversarial_set(5, n=40)
    scenes = [
        (p[:8, :8], g[:8, :8], None if c is None else c[:8, :8])
        for p, g, c in scenes
        if p.shape[0] >= 8 and p.shape[1] >= 8
    ]
    preds = np.stack([s[0] for s in scenes]).astype(np.int32)
    gts = np.stack([s[1] for s in scenes]).astype(np.int32)
    crowd = np.stack([np.zeros((8, 8), bool) if s[2] is None else s[2] for s in scenes])
    stacked = panoptic.pq_eval(preds, gts, things=THINGS, stuffs=STUFFS, crowd=crowd)
    listed = panoptic.pq_eval(
        list(preds), list(gts.astype(np.int64)), things=THINGS, stuffs=STUFFS, crowd=list(crowd)
    )
    acc = panoptic.PQAccumulator(things=THINGS, stuffs=STUFFS)
    for i in range(0, len(preds), 7):
        acc.update(preds[i : i + 7], gts[i : i + 7], crowd[i : i + 7])
    assert stacked.all == listed.all == acc.compute().all
    assert stacked.per_class == listed.per_class
    one = panoptic.pq_eval(preds[:1], gts[:1], things=THINGS, stuffs=STUFFS, crowd=crowd[:1]).all
    assert (one.pq, one.sq, one.rq) == panoptic.pq_reward(
        preds[0], gts[0], things=THINGS, stuffs=STUFFS, crowd=crowd[0], return_sq_rq=True
    )


def test_split_stuff_region_is_scored_per_segment_only_when_asked():
    gt = np.zeros((6, 6, 2), np.int64)
    gt[..., 0] = 10
    pred = gt.copy()
    pred[:2, :, 1] = 1  # one stuff region predicted as two segments (12 + 24 pixels)
    merged = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[10])
    separate = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[10], stuff_segments="separate")
    assert merged.stuff.pq == 1.0
    expected = pq_eval_oracle([pred], [gt], [1], [10], separate_stuff=True)
    assert_matches(separate, expected)
    assert separate.per_class[10].fp == 1 and separate.per_class[10].tp == 1


def test_nothing_to_score_gives_one_with_n_zero_and_empty_batch():
    gt = np.full((3, 3, 2), 50, np.int64)  # all void
    pred = np.full((3, 3, 2), -1, np.int64)
    result = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[10])
    assert result.all == panoptic.PQStats(1.0, 1.0, 1.0, 0)
    assert panoptic.pq_eval([], [], things=[1], stuffs=[10]).all.n == 0
    assert panoptic.pq_reward_batch([], [], things=[1], stuffs=[10]).shape == (0,)


def test_to_dict_is_panopticapis_structure():
    scenes = adversarial_set(7, n=24)
    preds, gts, crowds = (list(x) for x in zip(*scenes))
    d = panoptic.pq_eval(preds, gts, things=THINGS, stuffs=STUFFS, crowd=crowds).to_dict()
    expected = pq_eval_oracle(preds, gts, THINGS, STUFFS, crowds)
    assert set(d) == {"All", "Things", "Stuff", "per_class"}
    assert set(d["All"]) == {"pq", "sq", "rq", "n"}
    assert set(d["per_class"]) == set(expected["per_class"])
    assert d["per_class"][12] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}


# ---------------------------------------------------------------- categories of any value (issue 12)


def test_huge_category_ids_use_memory_bounded_by_input():
    gt = np.zeros((4, 4, 2), np.int64)
    gt[..., 0] = 2**40
    gt[:2, :, 0] = 2**62
    gt[:2, :, 1] = 3
    pred = gt.copy()
    pred[0, 0] = (2**40, 0)
    got = panoptic.pq_reward(pred, gt, things={2**62}, stuffs={2**40}, return_sq_rq=True)
    np.testing.assert_allclose(got, pq_oracle(pred, gt, {2**62}, {2**40}), atol=1e-12)
    only = np.zeros((4, 4, 2), np.int64)
    only[..., 0] = 2**40
    assert panoptic.pq_reward(only, only, things={2**40}, stuffs={0}) == 1.0  # was an 8 TiB allocation


def test_uint64_values_that_wrap_are_rejected():
    gt = np.zeros((2, 2, 2), np.uint64)
    pred = gt.copy()
    pred[0, 0, 0] = 2**64 - 1
    with pytest.raises(ValueError, match=r"`pred` holds 18446744073709551615, beyond int64"):
        panoptic.pq_reward(pred, gt, things=[1], stuffs=[0])
    with pytest.raises(ValueError, match=r"`preds\[1\]` holds"):
        panoptic.pq_eval([gt, pred], [gt, gt], things=[1], stuffs=[0])
    assert panoptic.pq_reward(gt, gt, things=[1], stuffs=[0]) == 1.0  # uint64 within range is fine


@pytest.mark.parametrize(
    ("things", "error", "message"),
    [
        (None, TypeError, r"`things` must be a collection of integer category ids"),
        ("1", TypeError, r"`things` must be a collection .* got str '1'"),
        ({1.7}, TypeError, r"`things` holds 1.7 \(float\)"),
        ([1.0], TypeError, r"`things` holds 1.0 \(float\)"),
        ([True], TypeError, r"`things` holds True"),
        (["1"], TypeError, r"`things` holds '1' \(str\)"),
        ([-3], ValueError, r"`things` holds category -3"),
        ([2**64], ValueError, r"`things` holds category 18446744073709551616"),
        ({1: "a"}, TypeError, r"`things` must be a collection"),
        (np.array([1.5]), TypeError, r"`things` holds 1.5"),
    ],
)
def test_bad_category_collections_name_the_argument(things, error, message):
    gt = np.zeros((2, 2, 2), np.int64)
    with pytest.raises(error, match=message):
        panoptic.pq_reward(gt, gt, things=things, stuffs=[0])
    with pytest.raises(error, match=message.replace("things", "stuffs")):
        panoptic.pq_eval([gt], [gt], things=[5], stuffs=things)


def test_category_arrays_and_ranges_are_accepted():
    gt = np.zeros((2, 2, 2), np.int64)
    assert panoptic.pq_reward(gt, gt, things=np.array([1, 2]), stuffs=range(1)) == 1.0
    with pytest.raises(ValueError, match="`stuff_segments` must be 'merge' or 'separate'"):
        panoptic.pq_reward(gt, gt, things=[1], stuffs=[0], stuff_segments="split")


def test_converter_errors_name_the_segment():
    ids = np.array([[0, 5], [7, 7]])
    with pytest.raises(ValueError, match=r"`segments_info\[0\]` has no 'category_id'"):
        panoptic.panoptic_from_id_map(ids, [{"id": 5}, {"id": 7, "category_id": 1}])
    with pytest.raises(TypeError, match=r"`segments_info\[1\]\['category_id'\]` must be an integer, got '3'"):
        panoptic.panoptic_from_id_map(ids, [{"id": 5, "category_id": 1}, {"id": 7, "category_id": "3"}])
    with pytest.raises(ValueError, match=r"segment id\(s\) \[9\] absent"):
        panoptic.panoptic_from_id_map(
            ids, [{"id": 5, "category_id": 1}, {"id": 7, "category_id": 1}, {"id": 9, "category_id": 1}]
        )
    with pytest.raises(ValueError, match=r"`png` must hold integer 0..255"):
        panoptic.panoptic_from_rgb(np.zeros((2, 2, 3)), [])


def test_one_instance_per_pixel_is_linear_in_pixels():
    """1000x1000, every predicted pixel its own instance, 400 GT segments: was 3.3 GB and 16 s (dense pairs)."""
    code = textwrap.dedent(
        """
        import resource, numpy as np
        from rewards import panoptic
        gt = np.zeros((1000, 1000, 2), np.int32)
        gt[..., 0] = 1
        gt[..., 1] = (np.arange(1000)[:, None] // 50) * 20 + np.arange(1000)[None, :] // 50  # 400 segments
        pred = gt.copy()
        pred[..., 1] = np.arange(10**6, dtype=np.int32).reshape(1000, 1000)
        panoptic.pq_reward(gt[:4, :4], gt[:4, :4], things=[1], stuffs=[0])  # compile outside the cap
        import gc; gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = panoptic.pq_eval([pred], [gt], things=[1], stuffs=[0])
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert r.per_class[1].fp == 10**6 and r.per_class[1].fn == 400, r.per_class[1]
        print(grown)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grown_kb = int(out.stdout.split()[-1])
    assert grown_kb < 400_000  # about 200 bytes per pixel at most, not 3.3 GB
