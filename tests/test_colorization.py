"""Colorfulness against the published formula in numpy; the reward's designed properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rewards import colorization


def m3_numpy(img):
    """Hasler and Suesstrunk's M3, straight from the paper, in float64."""
    x = np.asarray(img, np.float64)
    if np.asarray(img).dtype.kind == "f":
        x = x * 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


@pytest.mark.parametrize("seed", range(3))
def test_colorfulness_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(20, 17, 23, 3), dtype=np.uint8)
    images[:5] = images[:5, :1, :1]  # near-constant images stress the variance
    images[5:8] //= 40
    ours = colorization.colorfulness_batch(images)
    np.testing.assert_allclose(ours, [m3_numpy(im) for im in images], rtol=1e-12, atol=1e-9)
    floats = images.astype(np.float32) / 255
    np.testing.assert_allclose(colorization.colorfulness_batch(floats), [m3_numpy(im) for im in floats], rtol=1e-6, atol=1e-6)
    assert colorization.colorfulness(images[9]) == ours[9]


def test_signed_opponents_not_absolute_values():
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, 1] = (0, 255, 0)  # rg = +255 and -255: their mean is 0, not 255
    assert colorization.colorfulness(img) == pytest.approx(m3_numpy(img))
    assert colorization.colorfulness(img) == pytest.approx(255 + 0.3 * 127.5)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.full((4, 4, 3), np.nan), r"outside \[0, 1\]"),
        (np.full((4, 4, 3), 2.0), r"outside \[0, 1\]"),
        (np.full((4, 4, 3), 7, np.int16), r"uint8"),
        (np.zeros((0, 4, 3), np.uint8), r"no pixels"),
    ],
)
def test_bad_images_are_rejected(image, match):
    with pytest.raises(ValueError, match=match):
        colorization.colorfulness(image)
    with pytest.raises(ValueError, match=match.replace("(H, W, 3)", "(B, H, W, 3)").replace(r"\(H, W, 3\)", r"\(B, H, W, 3\)")):
        colorization.colorfulness_reward_batch(image[None] if image.ndim == 3 else image)


def test_reward_is_zero_for_any_gray_image():
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 256, size=(6, 16, 16, 1), dtype=np.uint8)
    gray = np.repeat(levels, 3, axis=-1)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(gray), 0.0)


def test_desaturating_lowers_the_reward():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(32, 32, 3)).astype(np.float64) / 255
    luma = img.mean(axis=-1, keepdims=True)
    rewards = [colorization.colorfulness_reward(alpha * img + (1 - alpha) * luma) for alpha in (1.0, 0.7, 0.4, 0.1)]
    assert all(a > b for a, b in zip(rewards, rewards[1:])), rewards


def test_one_flat_hue_scores_below_many_hues_of_the_same_chroma():
    flat = np.zeros((12, 12, 3), np.uint8)
    flat[..., 0] = 255
    hues = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1)[..., 0] / 12
    import colorsys

    many = np.array([[colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in row] for row in hues])
    r_flat, r_many = colorization.colorfulness_reward(flat), colorization.colorfulness_reward(many)
    assert r_flat == pytest.approx(0.5)
    assert r_many > 0.95 and r_many <= 1.0


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))), st.randoms())
def test_reward_is_bounded_and_invariant_to_size_and_pixel_order(img, random):
    r = colorization.colorfulness_reward(img)
    assert 0.0 <= r <= 1.0
    tiled = np.tile(img, (2, 3, 1))
    assert colorization.colorfulness_reward(tiled) == pytest.approx(r, abs=1e-12)
    order = list(range(img.shape[0] * img.shape[1]))
    random.shuffle(order)
    shuffled = img.reshape(-1, 3)[order].reshape(img.shape)
    assert colorization.colorfulness_reward(shuffled) == pytest.approx(r, abs=1e-12)
    assert colorization.colorfulness(shuffled) == pytest.approx(colorization.colorfulness(img), rel=1e-9, abs=1e-9)


def test_batch_equals_single_and_float_equals_uint8():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 9, 7, 3), dtype=np.uint8)
    batch = colorization.colorfulness_reward_batch(images)
    np.testing.assert_array_equal(batch, [colorization.colorfulness_reward(im) for im in images])
    np.testing.assert_allclose(colorization.colorfulness_reward_batch(images / 255.0), batch, atol=1e-12)
