"""The reference trainer's colorization task: data, codec ceiling, metrics and reward wiring (CI-sized).

The end-to-end smoke demo runs in test_reference_training.py's contract test of every registered task.
"""

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from reference_training import colorization_data as cd  # noqa: E402
from reference_training import train  # noqa: E402
from reference_training.tasks import colorization as ct  # noqa: E402
from rewards import colorization  # noqa: E402


def test_scenes_are_a_pure_function_of_the_seed():
    a, b, c = (cd.make_scenes(6, seed, 32, 4) for seed in (3, 3, 4))
    for field in ("images", "colour", "objects"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.colour, c.colour)
    train_split, heldout = cd.make_splits(4, 4, 0, 32, 4)
    assert not np.array_equal(train_split.colour, heldout.colour)


def test_the_input_is_the_ground_truths_lightness_in_gray():
    s = cd.make_scenes(8, 1, 32, 4)
    assert s.images.dtype == np.uint8 and (s.images == s.images[..., :1]).all()
    lightness = cd.rgb_to_lab(s.colour)[..., 0]
    # One gray level is at most ~0.4 L* wide near black, well under 1 elsewhere.
    assert np.abs(cd.GRAY_LIGHTNESS[s.images[..., 0]] - lightness).max() < 0.5
    assert s.objects.any() and (~s.objects).any()


def test_lab_conversions_match_the_standard_and_invert_each_other():
    white, black = cd.rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], np.uint8))
    np.testing.assert_allclose(white, [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(black, [0, 0, 0], atol=1e-9)
    # Published CIELAB (D65) of sRGB primaries.
    np.testing.assert_allclose(
        cd.rgb_to_lab(np.array([0, 0, 255], np.uint8)), [32.30, 79.19, -107.86], atol=0.02
    )
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.uint8)
    np.testing.assert_array_equal(cd.lab_to_rgb(cd.rgb_to_lab(rgb)), rgb)


def test_colours_are_ambiguous_given_the_gray_input():
    """Each kind's dull colour is its most frequent, and the object's lightness does not tell the colour."""
    s = cd.make_scenes(300, 5, 32, 4)
    lab = cd.rgb_to_lab(s.colour)[s.objects]
    codes = ((lab[:, None, 1:] - cd.PALETTE) ** 2).sum(-1).argmin(-1)
    vivid = np.hypot(lab[:, 1], lab[:, 2]) > 40
    dull = codes == cd.NEUTRAL
    assert 0.15 < vivid.mean() < 0.85 and dull.any()
    # Same lightness range for vivid and gray pixels.
    assert abs(np.median(lab[vivid, 0]) - np.median(lab[dull, 0])) < 8


def test_the_codec_round_trips_palette_images_and_its_ceiling_is_measured():
    codec = ct.PaletteGridCodec(32, 4)
    s = cd.make_scenes(16, 2, 32, 4)
    tokens = codec.encode(s.colour)
    assert tokens.shape == (16, 64) and tokens.max() < codec.vocab_size - 1
    np.testing.assert_array_equal(codec.encode(codec.decode(tokens, s.images)), tokens)
    # A palette-coloured cell grid is reproduced where its colours lie in the sRGB gamut (chroma <= 30
    # at this lightness; vivid cyan at L* 58 is not: it is clipped, part of the ceiling).
    flat = np.random.default_rng(0).integers(0, 1 + 2 * cd.HUES, (3, 64))
    gray = np.full((3, 32, 32, 3), 140, np.uint8)
    np.testing.assert_array_equal(codec.encode(codec.decode(flat, gray)), flat)
    ceiling = ct.colour_metrics(codec.decode(tokens, s.images), s)[0]
    truth = ct.colour_metrics(s.colour, s)[0]
    assert truth["ab_error"] == 0 and 0 < ceiling["ab_error"] < 6 and ceiling["psnr"] > 22
    assert 0.7 * truth["reward"] < ceiling["reward"] <= 1.1 * truth["reward"]


def test_metrics_separate_gray_vivid_and_background_painting():
    s = cd.make_scenes(8, 3, 32, 4)
    codec = ct.PaletteGridCodec(32, 4)
    gray = codec.decode(np.zeros((8, 64), np.int64), s.images)
    m_gray = ct.colour_metrics(gray, s)[0]
    assert m_gray["reward"] == 0 and m_gray["m3"] == 0 and m_gray["hue_entropy_set"] == 0
    assert m_gray["background_chroma"] < 0.5
    vivid = codec.decode(np.full((8, 64), cd.code(1, 2)), s.images)
    m_vivid = ct.colour_metrics(vivid, s)[0]
    assert m_vivid["reward"] > 0.1 and m_vivid["background_chroma"] > 40  # painted backgrounds show up
    assert m_vivid["hue_entropy_image"] < 0.2  # one hue
    # Entropy: uniform over the 12 bins is 1.
    assert ct.normalised_entropy(np.ones(12)) == pytest.approx(1.0)


def test_hue_histogram_agrees_with_the_reward_on_single_pixels():
    """The metric's hue bins are the reward's: a two-pixel image of two hues gets the reward's entropy."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        img = rng.integers(0, 256, (1, 1, 2, 3)).astype(np.uint8)
        hist = ct.hue_histograms(img)[0]
        chroma = hist.sum() / 2
        expected = chroma * (0.5 + 0.5 * ct.normalised_entropy(hist))
        assert colorization.colorfulness_reward_batch(img)[0] == pytest.approx(expected, abs=1e-9)


def test_reward_scores_each_sample_decoded_over_its_own_image():
    cfg = train.config_from("smoke", task="colorization")
    task = ct.ColorizationTask(cfg)
    batch = task.batch(np.random.default_rng(0), 3)
    samples = 2
    tokens = torch.from_numpy(np.repeat(batch.tokens, samples, axis=0))
    tokens[1::2] = cd.code(5, 2)  # the second sample of each image: all vivid green
    rewards, truth = task.reward(tokens, None, batch, samples)
    assert rewards.shape == (6,)
    np.testing.assert_array_equal(truth.numpy(), np.repeat(batch.tokens, samples, axis=0))
    expected = colorization.colorfulness_reward_batch(task.codec.decode(batch.tokens, batch.images))
    np.testing.assert_allclose(rewards[0::2], expected, rtol=0, atol=0)
    assert (rewards[1::2] > rewards[0::2]).all()
    assert task.grammar.length == task.codec.length == (cfg.image_size // cfg.cell_size) ** 2
    with pytest.raises(ValueError, match="--cell-size 5"):
        ct.ColorizationTask.check_config(train.config_from("smoke", task="colorization", cell_size=5))


def test_the_fidelity_anchor_is_the_weighted_cross_entropy_of_the_ground_truth(monkeypatch):
    task = ct.ColorizationTask(train.config_from("smoke", task="colorization"))
    logits = torch.randn(4, task.codec.length, task.vocab_size, requires_grad=True)
    truth = torch.randint(0, task.vocab_size - 1, (4, task.codec.length))
    head = task.train_head(truth)
    assert head(None, logits, None) is logits
    loss = task.auxiliary_loss(truth, logits, truth)
    expected = torch.nn.functional.cross_entropy(
        logits[..., :-1].reshape(-1, task.vocab_size - 1), truth.ravel()
    )
    torch.testing.assert_close(loss, task.anchor_weight * expected)
    loss.backward()
    assert logits.grad[..., -1].abs().max() == 0  # BOS is never a colour
    monkeypatch.setattr(ct.ColorizationTask, "anchor_weight", 0.0)
    assert task.train_head(truth) is None and task.auxiliary_loss(truth, None, truth) == 0.0
