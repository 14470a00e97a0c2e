"""wrap_reward overhead over calling the numpy reward directly, on a (256, 8) batch (issue 6).

The reward is the padded recall reward on 20 decoded boxes per sample; the
figure of interest is the difference of the two medians (the wrapper's cost).
"""

from __future__ import annotations

import numpy as np
import pytest

from rewards import detection

B, N, K = 256, 8, 20
rng = np.random.default_rng(0)
lo = rng.random((B * N, K, 2)) * 0.6
PRED_BOXES = np.concatenate([lo, lo + 0.3 * rng.random((B * N, K, 2))], -1).astype(np.float32)
LABELS = rng.integers(0, 5, (B * N, K))
VALID = rng.random((B * N, K)) < 0.8
GTS = {
    "boxes": PRED_BOXES[:, :6].astype(np.float64),
    "labels": LABELS[:, :6],
    "valid": np.ones((B * N, 6), bool),
}


def reward(boxes, labels, valid):
    preds = {"boxes": boxes, "labels": labels, "valid": valid}
    return detection.recall_reward_padded(preds, GTS, box_format="yxyx")


def test_direct_numpy(benchmark, recorder):
    reward(PRED_BOXES, LABELS, VALID)
    benchmark(reward, PRED_BOXES, LABELS, VALID)
    recorder(benchmark, "wrap_reward (256,8) batch", "numpy reward called directly", 1)


def test_wrap_reward_torch(benchmark, recorder):
    torch = pytest.importorskip("torch")
    from rewards.adapters import torch as rt

    wrapped = rt.wrap_reward(reward, batch_dims=2)
    args = [torch.as_tensor(a.reshape(B, N, *a.shape[1:])) for a in (PRED_BOXES, LABELS, VALID)]
    wrapped(*args)
    benchmark(wrapped, *args)
    recorder(benchmark, "wrap_reward (256,8) batch", "ours torch wrap_reward", 1)


def test_wrap_reward_jax_jit(benchmark, recorder):
    jax = pytest.importorskip("jax")
    from rewards.adapters import jax as rj

    wrapped = jax.jit(rj.wrap_reward(reward, batch_dims=2))
    args = [jax.numpy.asarray(a.reshape(B, N, *a.shape[1:])) for a in (PRED_BOXES, LABELS, VALID)]
    wrapped(*args).block_until_ready()
    benchmark(lambda: wrapped(*args).block_until_ready())
    recorder(benchmark, "wrap_reward (256,8) batch", "ours jax jit(wrap_reward)", 1)
