"""Panoptic quality against a literal port of panopticapi and against torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest

from rewards import panoptic
from tests.panoptic_oracle import pq_oracle, random_scene

THINGS, STUFFS = (1, 2, 3), (10, 11)


@pytest.mark.parametrize("seed", range(3))
def test_pq_matches_panopticapi_rules_on_random_scenes_with_crowd_and_void(seed):
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(120)]
    for pred, gt, crowd in scenes:
        got = panoptic.pq_reward(pred, gt, things=THINGS, stuffs=STUFFS, crowd=crowd, return_sq_rq=True)
        np.testing.assert_allclose(got, pq_oracle(pred, gt, THINGS, STUFFS, crowd), atol=1e-12)
    # the batch path over differently sized images agrees with the single path
    preds, gts, crowds = zip(*scenes)
    batch = panoptic.pq_reward_batch(list(preds), list(gts), things=THINGS, stuffs=STUFFS, crowd=list(crowds))
    single = [panoptic.pq_reward(p, g, things=THINGS, stuffs=STUFFS, crowd=c) for p, g, c in scenes]
    np.testing.assert_array_equal(batch, single)


def test_stacked_batch_int32_and_int64_agree():
    rng = np.random.default_rng(4)
    scenes = [random_scene(rng, h=24, w=32) for _ in range(16)]
    preds = np.stack([s[0] for s in scenes])
    gts = np.stack([s[1] for s in scenes])
    crowd = np.stack([np.zeros((24, 32), bool) if s[2] is None else s[2] for s in scenes])
    a = panoptic.pq_reward_batch(preds, gts, things=THINGS, stuffs=STUFFS, crowd=crowd)
    b = panoptic.pq_reward_batch(
        preds.astype(np.int32), gts.astype(np.int32), things=THINGS, stuffs=STUFFS, crowd=crowd
    )
    np.testing.assert_array_equal(a, b)
    expected = [pq_oracle(p, g, THINGS, STUFFS, c)[0] for p, g, c in zip(preds, gts, crowd)]
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_many_segments_grow_the_hash_tables():
    rng = np.random.default_rng(5)
    gt = np.zeros((64, 64, 2), np.int64)
    gt[..., 0] = 1
    gt[..., 1] = np.arange(64 * 64).reshape(64, 64) // 2  # 2048 tiny instances
    pred = gt.copy()
    pred[..., 1] = rng.permutation(pred[..., 1].ravel()).reshape(64, 64)
    got = panoptic.pq_reward(pred, gt, things=[1], stuffs=[0], return_sq_rq=True)
    np.testing.assert_allclose(got, pq_oracle(pred, gt, (1,), (0,)), atol=1e-12)


def test_large_and_negative_instance_ids():
    gt = np.zeros((4, 4, 2), np.int64)
    gt[..., 0] = 1
    gt[:2, :, 1] = 2**30
    gt[2:, :, 1] = -7
    pred = gt.copy()
    assert panoptic.pq_reward(pred, gt, things=[1], stuffs=[]) == 1.0
    gt[0, 0, 1] = 2**40
    with pytest.raises(ValueError, match="int32 range"):
        panoptic.pq_reward(pred, gt, things=[1], stuffs=[])


def test_agrees_with_torchmetrics_without_crowd_and_predicted_void():
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.functional.detection")
    rng = np.random.default_rng(6)
    checked = 0
    for _ in range(40):
        pred, gt, _ = random_scene(rng, void_cats=(), with_crowd=False, pred_void=False)
        ours = panoptic.pq_reward(pred, gt, things=THINGS, stuffs=STUFFS)
        theirs = tm.panoptic_quality(
            torch.as_tensor(pred)[None], torch.as_tensor(gt)[None], things=set(THINGS), stuffs=set(STUFFS)
        )
        assert ours == pytest.approx(float(theirs), abs=1e-6)
        checked += 1
    assert checked == 40


def test_nothing_to_score_is_one_and_empty_prediction_is_zero():
    gt = np.full((4, 4, 2), -1, np.int64)  # all void
    assert panoptic.pq_reward(gt, gt, things=[1], stuffs=[2]) == 1.0
    gt = np.zeros((4, 4, 2), np.int64)
    gt[..., 0] = 2
    pred = np.full((4, 4, 2), -1, np.int64)  # predicts nothing
    assert panoptic.pq_reward(pred, gt, things=[1], stuffs=[2]) == 0.0


def test_bad_input_is_rejected_naming_the_argument():
    gt = np.zeros((4, 4, 2), np.int64)
    with pytest.raises(ValueError, match=r"`pred` has shape \(4, 5, 2\)"):
        panoptic.pq_reward(np.zeros((4, 5, 2), np.int64), gt, things=[1], stuffs=[0])
    with pytest.raises(ValueError, match=r"`pred` must be an integer array"):
        panoptic.pq_reward(gt.astype(float), gt, things=[1], stuffs=[0])
    with pytest.raises(ValueError, match=r"`gt` must have shape \(H, W, 2\)"):
        panoptic.pq_reward(gt, gt[..., 0], things=[1], stuffs=[0])
    with pytest.raises(ValueError, match=r"`pred` contains category 7"):
        bad = gt.copy()
        bad[0, 0, 0] = 7
        panoptic.pq_reward(bad, gt, things=[1], stuffs=[0])
    with pytest.raises(ValueError, match=r"overlap"):
        panoptic.pq_reward(gt, gt, things=[1], stuffs=[1])
    with pytest.raises(ValueError, match=r"`crowd` must have shape \(4, 4\)"):
        panoptic.pq_reward(gt, gt, things=[1], stuffs=[0], crowd=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match=r"`preds\[1\]` contains category 9"):
        bad = gt.copy()
        bad[..., 0] = 9
        panoptic.pq_reward_batch([gt, bad], [gt, gt], things=[1], stuffs=[0])


def test_converters_round_trip_a_coco_panoptic_png():
    rng = np.random.default_rng(7)
    ids = rng.choice([0, 1001, 2002, 70000], size=(6, 7))
    info = [
        {"id": 1001, "category_id": 1, "iscrowd": 0},
        {"id": 2002, "category_id": 1, "iscrowd": 1},
        {"id": 70000, "category_id": 10},
    ]
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    pan, crowd = panoptic.panoptic_from_rgb(rgb, info)
    pan2, crowd2 = panoptic.panoptic_from_id_map(ids, info)
    np.testing.assert_array_equal(pan, pan2)
    np.testing.assert_array_equal(crowd, ids == 2002)
    np.testing.assert_array_equal(pan[..., 0], np.select([ids == 0, ids == 70000], [-1, 10], 1))
    with pytest.raises(ValueError, match=r"segment id 70000 .* not in `segments_info`"):
        panoptic.panoptic_from_id_map(ids, info[:1])
