"""Colorization against numpy oracles (tests/colorization_oracle.py); the reward's designed properties."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rewards import colorization
from tests import colorization_oracle as oracle


@pytest.mark.parametrize("seed", range(3))
def test_colorfulness_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(20, 17, 23, 3), dtype=np.uint8)
    images[:5] = images[:5, :1, :1]  # near-constant images stress the variance
    images[5:8] //= 40
    ours = colorization.colorfulness_batch(images)
    np.testing.assert_allclose(ours, [oracle.m3(im) for im in images], rtol=1e-12, atol=1e-9)
    floats = images.astype(np.float32) / 255
    np.testing.assert_allclose(
        colorization.colorfulness_batch(floats), [oracle.m3(im) for im in floats], rtol=1e-6, atol=1e-6
    )
    assert colorization.colorfulness(images[9]) == ours[9]


def test_signed_opponents_not_absolute_values():
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, 1] = (0, 255, 0)  # rg = +255 and -255: their mean is 0, not 255
    assert colorization.colorfulness(img) == pytest.approx(oracle.m3(img))
    assert colorization.colorfulness(img) == pytest.approx(255 + 0.3 * 127.5)


# ------------------------------------------------ reward against the oracle


def adversarial_pixels():
    """Pixels on and beside every hue-bin boundary, with ties of the maximum, in all channel orders.

    For lo in {0, 9} and every chroma c, the middle channel sits at lo + m for
    m on and next to 0, c / 2 (rounded both ways) and c: the points where
    floor(2 (mid - lo) / c) changes and where two channels tie for the maximum.
    """
    out = []
    for lo in (0, 9):
        for c in range(0, 256 - lo):
            half = c // 2
            for m in {0, 1, half - 1, half, half + 1, (c + 1) // 2, c - 1, c}:
                if 0 <= m <= c:
                    hi, mid = lo + c, lo + m
                    for order in (
                        (hi, mid, lo),
                        (hi, lo, mid),
                        (mid, hi, lo),
                        (lo, hi, mid),
                        (mid, lo, hi),
                        (lo, mid, hi),
                    ):
                        out.append(order)
    return np.unique(np.array(out, np.uint8), axis=0)


def test_reward_equals_the_oracle_on_random_and_adversarial_images():
    rng = np.random.default_rng(0)
    step = np.arange(0, 256, 5)
    cube = np.stack(np.meshgrid(step, step, step, indexing="ij"), -1).reshape(-1, 3).astype(np.uint8)
    batches = [
        rng.integers(0, 256, size=(16, 31, 29, 3), dtype=np.uint8),  # random
        np.repeat(rng.integers(0, 256, size=(8, 20, 20, 1), dtype=np.uint8), 3, axis=-1),  # gray
        cube.reshape(13, 8, -1, 3),  # a 52^3 sample of the colour cube, all hues and ties
        np.broadcast_to(np.array([255, 128, 0], np.uint8), (2, 4, 4, 3)),  # one hue, on no boundary
        np.broadcast_to(np.array([255, 255, 0], np.uint8), (2, 4, 4, 3)),  # R = G tie: hue 60, bin 2
        (rng.integers(0, 4, size=(6, 10, 10, 3)) * 85).astype(np.uint8),  # few levels: many exact ties
    ]
    pixels = adversarial_pixels()
    batches.append(pixels[: len(pixels) // 64 * 64].reshape(64, 1, -1, 3))
    for images in batches:
        np.testing.assert_allclose(
            colorization.colorfulness_reward_batch(images), oracle.reward_batch(images), rtol=0, atol=1e-9
        )
        floats = images / 255.0
        np.testing.assert_allclose(
            colorization.colorfulness_reward_batch(floats), oracle.reward_batch(floats), rtol=0, atol=1e-9
        )
        np.testing.assert_allclose(
            colorization.colorfulness_reward_batch(floats.astype(np.float32)),
            oracle.reward_batch(floats.astype(np.float32)),
            rtol=0,
            atol=1e-9,
        )
    random_floats = rng.random((8, 13, 11, 3))
    np.testing.assert_allclose(
        colorization.colorfulness_reward_batch(random_floats),
        oracle.reward_batch(random_floats),
        rtol=0,
        atol=1e-9,
    )


def test_every_adversarial_pixel_lands_in_the_oracles_hue_bin():
    """Pixel by pixel: [p, q_j] scores as a one-hue image exactly when p is in q_j's bin j.

    Whole-image rewards could hide two mistakes that cancel; two-pixel images
    with a reference pixel from each bin cannot.
    """
    pixels = adversarial_pixels()
    pixels = pixels[pixels.max(1) > pixels.min(1)]  # gray pixels belong to no bin
    refs = np.array(
        [np.round(np.array(colorsys.hsv_to_rgb((j + 0.5) / 12, 1.0, 1.0)) * 255) for j in range(12)], np.uint8
    )
    expected_bin, _ = oracle.hue_bins(pixels.astype(np.float64))
    assert (oracle.hue_bins(refs.astype(np.float64))[0] == np.arange(12)).all()
    images = np.empty((len(pixels), 12, 1, 2, 3), np.uint8)
    images[:, :, 0, 0] = pixels[:, None]
    images[:, :, 0, 1] = refs[None]
    rewards = colorization.colorfulness_reward_batch(images.reshape(-1, 1, 2, 3)).reshape(len(pixels), 12)
    chroma = (pixels.max(1).astype(np.float64) - pixels.min(1) + 255.0) / (2 * 255.0)
    one_hue = rewards == chroma[:, None] * 0.5  # entropy exactly 0
    assert (one_hue.sum(1) == 1).all()
    np.testing.assert_array_equal(one_hue.argmax(1), expected_bin)


def test_uint8_reward_handles_images_larger_than_one_accumulation_chunk():
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, size=(1, 300, 301, 3), dtype=np.uint8)  # 90k pixels: 11 chunks
    big[0, :150] = (250, 10, 10)  # most chroma in one bin: fields close to their limit
    np.testing.assert_allclose(
        colorization.colorfulness_reward_batch(big), oracle.reward_batch(big), atol=1e-12
    )


# ------------------------------------------------------- accepted inputs


def test_big_endian_float64_gives_the_native_value():
    rng = np.random.default_rng(6)
    img = rng.random((9, 7, 3))
    swapped = img.astype(">f8")
    for fn in (colorization.colorfulness, colorization.colorfulness_reward):
        assert fn(swapped) == fn(img)
    assert colorization.colorfulness(img) != colorization.colorfulness(img.astype(np.float32))  # no downcast
    np.testing.assert_array_equal(
        colorization.colorfulness_batch(swapped[None]), colorization.colorfulness_batch(img[None])
    )
    np.testing.assert_array_equal(
        colorization.colorfulness_batch(img.astype(">f4")[None]),
        colorization.colorfulness_batch(img.astype(np.float32)[None]),
    )


def test_integer_images_in_0_255_are_read_as_uint8():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    as_list = img.tolist()  # nested Python ints: int64
    assert colorization.colorfulness(as_list) == colorization.colorfulness(img)
    assert colorization.colorfulness_reward(as_list) == colorization.colorfulness_reward(img)
    for dtype in (np.int16, np.uint16, np.int32, np.int64, np.uint64):
        np.testing.assert_array_equal(
            colorization.colorfulness_reward_batch(img[None].astype(dtype)),
            [colorization.colorfulness_reward(img)],
        )
    batch = np.stack([img, img]).astype(np.int64)
    batch[1, 2, 3, 0] = 256
    with pytest.raises(ValueError, match=r"`images\[1\]` holds integers outside 0\.\.255 \(e\.g\. 256\)"):
        colorization.colorfulness_reward_batch(batch)
    with pytest.raises(ValueError, match=r"`image` holds integers outside 0\.\.255 \(e\.g\. -1\)"):
        colorization.colorfulness(np.full((2, 2, 3), -1))


def test_non_contiguous_and_framework_inputs():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, size=(4, 10, 12, 3), dtype=np.uint8)
    expected = colorization.colorfulness_reward_batch(images)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(np.asfortranarray(images)), expected)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(images[:, ::-1, ::-1]), expected)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(torch.tensor(images)), expected)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(jnp.asarray(images)), expected)
    # bfloat16 (probe: colorfulness(torch bf16), colorfulness_batch(jax bf16)) widens exactly to float32
    floats = torch.tensor(images / 255.0, dtype=torch.bfloat16)
    widened = floats.float().numpy()
    assert colorization.colorfulness(floats[0]) == colorization.colorfulness(widened[0])
    np.testing.assert_array_equal(
        colorization.colorfulness_batch(jnp.asarray(widened, jnp.bfloat16)),
        colorization.colorfulness_batch(widened),
    )


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.full((4, 4, 3), np.nan), r"outside \[0, 1\]"),
        (np.full((4, 4, 3), 2.0), r"outside \[0, 1\]"),
        (np.full((4, 4, 3), np.inf, np.float32), r"outside \[0, 1\]"),
        (np.full((4, 4, 3), 300, np.int16), r"integers outside 0\.\.255"),
        (np.zeros((4, 4, 3), bool), r"must be uint8 .*got dtype bool"),
        (np.zeros((4, 4, 3), complex), r"must be uint8 .*got dtype complex128"),
        (np.full((4, 4, 3), "a"), r"must be uint8 .*got dtype <U1"),
        (np.zeros((0, 4, 3), np.uint8), r"no pixels"),
    ],
)
def test_bad_images_are_rejected(image, match):
    with pytest.raises(ValueError, match=r"`image`.*" + match):
        colorization.colorfulness(image)
    with pytest.raises(
        ValueError, match=r"`images(\[0\])?`.*" + match.replace(r"\(H, W, 3\)", r"\(B, H, W, 3\)")
    ):
        colorization.colorfulness_reward_batch(image[None] if image.ndim == 3 else image)


def test_the_failing_image_of_a_batch_is_named():
    images = np.zeros((3, 2, 2, 3))
    images[2, 1, 1, 1] = np.nan
    for fn in (colorization.colorfulness_batch, colorization.colorfulness_reward_batch):
        with pytest.raises(ValueError, match=r"`images\[2\]` is a float image with values outside \[0, 1\]"):
            fn(images)


# ------------------------------------------------ the reward's properties


def test_reward_is_zero_for_any_gray_image():
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 256, size=(6, 16, 16, 1), dtype=np.uint8)
    gray = np.repeat(levels, 3, axis=-1)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(gray), 0.0)
    np.testing.assert_array_equal(colorization.colorfulness_reward_batch(gray / 255.0), 0.0)


def test_desaturating_lowers_the_reward():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(32, 32, 3)).astype(np.float64) / 255
    luma = img.mean(axis=-1, keepdims=True)
    rewards = [
        colorization.colorfulness_reward(alpha * img + (1 - alpha) * luma) for alpha in (1.0, 0.7, 0.4, 0.1)
    ]
    assert all(a > b for a, b in zip(rewards, rewards[1:])), rewards


def test_one_flat_hue_scores_below_many_hues_of_the_same_chroma():
    flat = np.zeros((12, 12, 3), np.uint8)
    flat[..., 0] = 255
    hues = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1)[..., 0] / 12
    many = np.array([[colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in row] for row in hues])
    r_flat, r_many = colorization.colorfulness_reward(flat), colorization.colorfulness_reward(many)
    assert r_flat == pytest.approx(0.5)
    assert r_many > 0.95 and r_many <= 1.0


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))), st.randoms())
def test_reward_is_bounded_and_invariant_to_size_and_pixel_order(img, random):
    r = colorization.colorfulness_reward(img)
    assert 0.0 <= r <= 1.0
    assert r == pytest.approx(oracle.reward_batch(img[None])[0], abs=1e-12)
    tiled = np.tile(img, (2, 3, 1))
    assert colorization.colorfulness_reward(tiled) == pytest.approx(r, abs=1e-12)
    order = list(range(img.shape[0] * img.shape[1]))
    random.shuffle(order)
    shuffled = img.reshape(-1, 3)[order].reshape(img.shape)
    assert colorization.colorfulness_reward(shuffled) == pytest.approx(r, abs=1e-12)
    assert colorization.colorfulness(shuffled) == pytest.approx(
        colorization.colorfulness(img), rel=1e-9, abs=1e-9
    )


def test_batch_equals_single_and_float_equals_uint8():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 9, 7, 3), dtype=np.uint8)
    batch = colorization.colorfulness_reward_batch(images)
    np.testing.assert_array_equal(batch, [colorization.colorfulness_reward(im) for im in images])
    np.testing.assert_allclose(colorization.colorfulness_reward_batch(images / 255.0), batch, atol=1e-12)
    assert colorization.colorfulness_reward_batch(np.zeros((0, 4, 4, 3), np.uint8)).shape == (0,)
