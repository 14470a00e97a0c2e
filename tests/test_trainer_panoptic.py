"""Panoptic task of the reference trainer: generated scenes, the token-grid codec and its ceiling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from reference_training.tasks import panoptic as pan  # noqa: E402
from rewards.panoptic import pq_eval, pq_reward_batch  # noqa: E402


@pytest.fixture(scope="module")
def scenes():
    return pan.make_scenes(40, seed=5, size=48, max_objects=5)


def test_scenes_are_deterministic_per_seed(scenes):
    again = pan.make_scenes(40, seed=5, size=48, max_objects=5)
    for a, b in (
        (scenes.images, again.images),
        (scenes.panoptic, again.panoptic),
        (scenes.crowd, again.crowd),
    ):
        np.testing.assert_array_equal(a, b)
    other = pan.make_scenes(40, seed=6, size=48, max_objects=5)
    assert not np.array_equal(scenes.panoptic, other.panoptic)


def test_ground_truth_has_stuff_things_void_and_crowd(scenes):
    cat, inst = scenes.panoptic[..., 0], scenes.panoptic[..., 1]
    assert set(np.unique(cat)) <= {pan.VOID, *pan.THINGS, *pan.STUFFS}
    for c, i, crowd in zip(cat, inst, scenes.crowd):
        stuff_present = {s for s in pan.STUFFS if (c == s).any()}
        assert len(stuff_present) == 2  # two stuff regions split every background
        assert (i[c >= len(pan.THINGS)] == 0).all()  # stuff has no instances
        thing = (c >= 0) & (c < len(pan.THINGS))
        assert (i[thing] > 0).all()
        for k in np.unique(i[thing]):  # one category per instance; a crowd segment is wholly crowd
            assert len(np.unique(c[thing & (i == k)])) == 1
            assert len(np.unique(crowd[thing & (i == k)])) == 1
        assert not crowd[~thing].any()
    assert (cat == pan.VOID).any(axis=(1, 2)).all()  # the stuff boundary band at least
    assert scenes.crowd.any(axis=(1, 2)).sum() >= 3


def test_instance_masks_are_the_visible_pixels_of_their_shape(scenes):
    # Things are painted in flat palette colours: every pixel of an instance has its shape's colour.
    for image, p in zip(scenes.images, scenes.panoptic):
        for k in np.unique(p[..., 1][p[..., 1] > 0]):
            colours = np.unique(image[p[..., 1] == k].reshape(-1, 3), axis=0)
            assert len(colours) == 1


def test_codec_round_trips_cell_aligned_maps_and_numbers_slots_in_raster_order():
    codec = pan.GridCodec(size=16, cell=4, slots=3)
    tokens = np.zeros((1, 16), np.int64)
    tokens[0] = [
        1,
        1,
        2,
        2,
        1,
        codec.thing_offset + 3 * 3 + 0,
        2,
        0,
        1,
        codec.thing_offset + 3 * 3 + 0,
        codec.thing_offset + 1 * 3 + 1,
        2,
        3,
        3,
        3,
        3,
    ]
    decoded = codec.decode(tokens)
    assert decoded.shape == (1, 16, 16, 2)
    np.testing.assert_array_equal(codec.encode(decoded, np.zeros((1, 16, 16), bool)), tokens)
    # instance ids are arbitrary in the ground truth: slots follow raster order of first cells
    relabelled = decoded.copy()
    relabelled[..., 1] = np.where(decoded[..., 1] == 1, 7, np.where(decoded[..., 1] == 2, 3, decoded[..., 1]))
    np.testing.assert_array_equal(codec.encode(relabelled, np.zeros((1, 16, 16), bool)), tokens)
    crowd = decoded[..., 1] == 2
    assert codec.encode(decoded, crowd)[0, 10] == 0  # crowd cells encode as void


def test_ceiling_is_the_pq_of_the_ground_truth_through_the_codec(scenes):
    codec = pan.GridCodec(size=48, cell=6, slots=5)
    decoded = codec.decode(codec.encode(scenes.panoptic, scenes.crowd))
    opts = dict(things=pan.THINGS, stuffs=pan.STUFFS, crowd=scenes.crowd)
    result = pq_eval(decoded, scenes.panoptic, **opts)
    assert 0.4 < result.all.pq < 1.0 and result.stuff.pq > result.things.pq
    exact = pq_eval(scenes.panoptic, scenes.panoptic, **opts)
    assert exact.all.pq == 1.0
    assert (pq_reward_batch(decoded, scenes.panoptic, **opts) <= 1.0).all()
