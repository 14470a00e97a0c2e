"""Colorization: colorfulness_batch vs a per-image numpy loop of the formula (issue 5).

Workload: 256 RGB images of 256x256, uint8.
"""

from __future__ import annotations

import numpy as np

from rewards import colorization


def m3_numpy(img):
    """The formula as a numpy user writes it, per image (float32, as fast as numpy gets here)."""
    x = img.astype(np.float32)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)

IMAGES = np.random.default_rng(0).integers(0, 256, size=(256, 256, 256, 3), dtype=np.uint8)


def test_colorfulness_batch_ours(benchmark, recorder):
    colorization.colorfulness_batch(IMAGES[:1])
    benchmark(colorization.colorfulness_batch, IMAGES)
    recorder(benchmark, "colorfulness 256 img 256x256", "ours colorfulness_batch", len(IMAGES))


def test_colorfulness_reward_batch_ours(benchmark, recorder):
    colorization.colorfulness_reward_batch(IMAGES[:1])
    benchmark(colorization.colorfulness_reward_batch, IMAGES)
    recorder(benchmark, "colorfulness 256 img 256x256", "ours colorfulness_reward_batch", len(IMAGES))


def test_colorfulness_numpy_loop(benchmark, recorder):
    benchmark.pedantic(lambda: [m3_numpy(im) for im in IMAGES[:64]], rounds=3, iterations=1)
    recorder(benchmark, "colorfulness 256 img 256x256", "numpy per-image loop", 64)
