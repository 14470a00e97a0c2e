"""REINFORCE adapters: torch and jax against numpy and each other; wrap_reward; box tokens; training proof."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

from rewards.adapters import jax as rj  # noqa: E402
from rewards.adapters import torch as rt  # noqa: E402
from rewards.adapters.box_tokens import BoxTokenizer  # noqa: E402
from rewards import detection  # noqa: E402


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 7, 11)).astype(np.float32)
    tokens = rng.integers(0, 11, size=(3, 4, 7))
    mask = rng.random((3, 4, 7)) < 0.7
    rewards = rng.normal(size=(3, 4)).astype(np.float32)
    return logits, tokens, mask, rewards


def test_sequence_logprob_matches_numpy_in_both_frameworks(batch):
    logits, tokens, mask, _ = batch
    lp = np.take_along_axis(np_log_softmax(logits.astype(np.float64)), tokens[..., None], -1)[..., 0]
    expected = (lp * mask).sum(-1)
    got_t = rt.sequence_logprob(torch.tensor(logits), torch.tensor(tokens), torch.tensor(mask))
    got_j = rj.sequence_logprob(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_j), expected, rtol=1e-5, atol=1e-5)


def test_masked_positions_may_hold_impossible_tokens():
    logits = np.zeros((1, 3, 4), np.float32)
    logits[0, 2, 1] = -np.inf  # token 1 is impossible at position 2
    tokens, mask = np.array([[0, 0, 1]]), np.array([[True, True, False]])
    for fw, conv in ((rt, torch.tensor), (rj, jnp.asarray)):
        out = fw.sequence_logprob(conv(logits), conv(tokens), conv(mask))
        np.testing.assert_allclose(np.asarray(out), [2 * np.log(0.25)], rtol=1e-6)


def test_loo_baseline(batch):
    r = batch[3]
    expected = np.stack([(r.sum(1) - r[:, i]) / 3 for i in range(4)], 1)
    np.testing.assert_allclose(rt.loo_baseline(torch.tensor(r)).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rj.loo_baseline(jnp.asarray(r))), expected, rtol=1e-6)
    for fw, arr in ((rt, torch.ones(2, 1)), (rj, jnp.ones((2, 1)))):
        with pytest.raises(ValueError, match="N >= 2"):
            fw.loo_baseline(arr)


@pytest.mark.parametrize("baseline", ["loo", "mean", "none", "greedy"])
def test_reinforce_gradient_is_minus_advantage_over_bn(batch, baseline):
    r = batch[3]
    b, n = r.shape
    greedy = np.linspace(-1, 1, b).astype(np.float32)
    ref_b = {
        "loo": (r.sum(1, keepdims=True) - r) / (n - 1),
        "mean": r.mean(1, keepdims=True),
        "none": np.zeros_like(r),
        "greedy": greedy[:, None],
    }[baseline]
    expected_grad = -(r - ref_b) / (b * n)

    logp_t = torch.zeros(b, n, requires_grad=True)
    base_t = torch.tensor(greedy) if baseline == "greedy" else baseline
    rt.reinforce_loss(logp_t, torch.tensor(r), baseline=base_t).backward()
    np.testing.assert_allclose(logp_t.grad.numpy(), expected_grad, rtol=1e-5, atol=1e-7)

    base_j = jnp.asarray(greedy) if baseline == "greedy" else baseline
    grad_j = jax.grad(lambda lp: rj.reinforce_loss(lp, jnp.asarray(r), baseline=base_j))(jnp.zeros((b, n)))
    np.testing.assert_allclose(np.asarray(grad_j), expected_grad, rtol=1e-5, atol=1e-7)


def test_reinforce_reductions_and_no_gradient_through_rewards(batch):
    r = torch.tensor(batch[3], requires_grad=True)
    logp = torch.randn(3, 4, requires_grad=True)
    per_sample = rt.reinforce_loss(logp, r, reduction="none")
    assert per_sample.shape == (3, 4)
    torch.testing.assert_close(rt.reinforce_loss(logp, r, reduction="sum"), per_sample.sum())
    rt.reinforce_loss(logp, r).backward()
    assert r.grad is None
    jr = rj.reinforce_loss(jnp.ones((3, 4)), jnp.asarray(batch[3]), reduction="none")
    np.testing.assert_allclose(np.asarray(jr), per_sample.detach().numpy() / logp.detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("fw, xp", [(rt, torch), (rj, jnp)], ids=["torch", "jax"])
def test_bad_arguments_are_named(fw, xp):
    as_arr = (lambda a: torch.tensor(a)) if xp is torch else jnp.asarray
    logits, tokens, mask = as_arr(np.zeros((2, 3, 5), np.float32)), as_arr(np.zeros((2, 3), np.int64)), as_arr(np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"`tokens` must have shape \(2, 3\)"):
        fw.sequence_logprob(logits, as_arr(np.zeros((2, 4), np.int64)), mask)
    with pytest.raises(ValueError, match=r"`mask` must be bool"):
        fw.sequence_logprob(logits, tokens, as_arr(np.ones((2, 3), np.int32)))
    with pytest.raises(ValueError, match=r"`mask` must have shape"):
        fw.sequence_logprob(logits, tokens, as_arr(np.ones((3, 3), bool)))
    with pytest.raises(ValueError, match=r"N >= 2"):
        fw.reinforce_loss(as_arr(np.zeros((4, 1), np.float32)), as_arr(np.zeros((4, 1), np.float32)))
    with pytest.raises(ValueError, match=r"`seq_logprob` has shape"):
        fw.reinforce_loss(as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 3), np.float32)))
    with pytest.raises(ValueError, match=r"`baseline` must be one of"):
        fw.reinforce_loss(as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 2), np.float32)), baseline="greedy")
    with pytest.raises(ValueError, match=r"`baseline` array must have shape"):
        fw.reinforce_loss(as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 2), np.float32)), baseline=as_arr(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"`reduction`"):
        fw.reinforce_loss(as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 2), np.float32)), reduction="avg")
    with pytest.raises(ValueError, match=r"`conf_logits` must have shape"):
        fw.iou_confidence_loss(as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros(4, np.float32)), as_arr(np.ones(4, bool)))


def test_iou_confidence_loss_matches_numpy_in_both_frameworks():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 9)).astype(np.float32)
    iou = rng.random((2, 5)).astype(np.float32)
    valid = rng.random((2, 5)) < 0.6
    logp = np_log_softmax(logits.astype(np.float64))[..., :3]
    target = np.stack([~valid, valid * (1 - iou), valid * iou], -1)
    expected = -(target * logp).sum(-1)
    got_t = rt.iou_confidence_loss(torch.tensor(logits), torch.tensor(iou), torch.tensor(valid), reduction="none")
    got_j = rj.iou_confidence_loss(jnp.asarray(logits), jnp.asarray(iou), jnp.asarray(valid), reduction="none")
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_j), expected, rtol=1e-5)
    assert float(rt.iou_confidence_loss(torch.tensor(logits), torch.tensor(iou), torch.tensor(valid))) == pytest.approx(expected.mean(), rel=1e-5)


def mean_pixel(images):
    return images.reshape(len(images), -1).mean(1)


def test_wrap_reward_torch_and_jax():
    x = np.random.default_rng(2).random((3, 4, 5, 5)).astype(np.float32)
    expected = x.reshape(3, 4, -1).mean(-1)
    t = rt.wrap_reward(mean_pixel, batch_dims=2)(torch.tensor(x, requires_grad=True))
    assert t.dtype == torch.float32 and t.device == torch.device("cpu") and not t.requires_grad
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)
    jfn = rj.wrap_reward(mean_pixel, batch_dims=2)
    np.testing.assert_allclose(np.asarray(jax.jit(jfn)(jnp.asarray(x))), expected, rtol=1e-6)
    # vmap over the first axis: the callback receives the mapped axis in front
    per_row = jax.jit(jax.vmap(rj.wrap_reward(mean_pixel)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(per_row), expected, rtol=1e-6)


def test_wrap_reward_checks_the_reward_shape():
    bad = lambda images: np.zeros(len(images) + 1)  # noqa: E731
    with pytest.raises(ValueError, match="returned shape"):
        rt.wrap_reward(bad)(torch.zeros(3, 2))
    with pytest.raises(Exception, match="returned shape"):
        jax.block_until_ready(rj.wrap_reward(bad)(jnp.zeros((3, 2))))
    with pytest.raises(ValueError, match="leading shape"):
        rt.wrap_reward(lambda a, b: a.sum(1))(torch.zeros(3, 2), torch.zeros(4, 2))


# ------------------------------------------------------------ box tokens


def test_box_tokens_round_trip_and_malformed_sequences():
    codec = BoxTokenizer(n_classes=5, n_bins=101)
    rng = np.random.default_rng(3)
    lo = rng.random((4, 3, 2)) * 0.5
    boxes = np.concatenate([lo, lo + rng.random((4, 3, 2)) * 0.5], -1)  # yxyx
    labels = rng.integers(0, 5, (4, 3))
    valid = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
    tokens = codec.encode(boxes, labels, valid)
    out = codec.decode(tokens)
    np.testing.assert_array_equal(out["valid"], valid)
    np.testing.assert_allclose(out["boxes"][valid], boxes[valid], atol=0.5 / 100 + 1e-12)
    np.testing.assert_array_equal(out["labels"][valid], labels[valid])
    broken = tokens.copy()
    broken[0, 6 + 4] = 1  # a confidence token in the class slot ends the sequence
    assert codec.decode(broken)["valid"][0].tolist() == [True, False, False]
    flipped = tokens.copy()
    flipped[0, 0], flipped[0, 2] = codec.coord_offset + 50, codec.coord_offset + 10  # ymax < ymin
    assert codec.decode(flipped)["valid"][0].tolist() == [False, True, True]  # invalid, but not the end
    with pytest.raises(ValueError, match="come first"):
        codec.encode(boxes, labels, valid[:, ::-1])


def test_padded_rewards_equal_dict_rewards():
    rng = np.random.default_rng(4)
    from tests.coco_oracle import random_image

    pairs = [random_image(rng, adversarial=False) for _ in range(20)]
    k = max(len(p["labels"]) for p, _ in pairs) + 2
    m = max(len(g["labels"]) for _, g in pairs) + 1

    def pad(arrays, size, tail=()):
        out = np.zeros((len(arrays), size) + tail)
        for i, a in enumerate(arrays):
            out[i, : len(a)] = a
        return out

    preds = {
        "boxes": pad([p["boxes"] for p, _ in pairs], k, (4,)),
        "scores": pad([p["scores"] for p, _ in pairs], k),
        "labels": pad([p["labels"] for p, _ in pairs], k).astype(int),
        "valid": pad([np.ones(len(p["labels"])) for p, _ in pairs], k).astype(bool),
    }
    preds["boxes"][~preds["valid"]] = np.nan  # padding is never read
    gts = {
        "boxes": pad([g["boxes"] for _, g in pairs], m, (4,)),
        "labels": pad([g["labels"] for _, g in pairs], m).astype(int),
        "iscrowd": pad([g["iscrowd"] for _, g in pairs], m).astype(bool),
        "valid": pad([np.ones(len(g["labels"])) for _, g in pairs], m).astype(bool),
    }
    dict_preds, dict_gts = [p for p, _ in pairs], [g for _, g in pairs]
    np.testing.assert_array_equal(detection.map_reward_padded(preds, gts), detection.map_reward_batch(dict_preds, dict_gts))
    np.testing.assert_array_equal(detection.recall_reward_padded(preds, gts), detection.recall_reward_batch(dict_preds, dict_gts))
    flat = detection.match_iou_padded(preds, gts)
    for i, arr in enumerate(detection.match_iou_batch(dict_preds, dict_gts)):
        np.testing.assert_array_equal(flat[i, : len(arr)], arr)
    with pytest.raises(ValueError, match=r'preds\["valid"\]'):
        detection.map_reward_padded({**preds, "valid": preds["valid"][:, :2]}, gts)


# ------------------------------------------------------- proof of training

CODEC = BoxTokenizer(n_classes=1, n_bins=8)
TARGET = {"boxes": np.array([[[0.25, 0.25, 0.75, 0.75]]]), "labels": np.zeros((1, 1), int), "valid": np.ones((1, 1), bool)}


def box_reward(bins):
    """Host reward of sampled coordinate bins (batch, 4): normalised recall of one target box."""
    n = len(bins)
    tokens = np.concatenate(
        [bins + CODEC.coord_offset, np.full((n, 1), CODEC.class_offset), np.full((n, 1), CODEC.high_confidence)], 1
    )
    decoded = CODEC.decode(tokens)
    gts = {k: np.repeat(v, n, axis=0) for k, v in TARGET.items()}
    preds = {"boxes": decoded["boxes"], "labels": decoded["labels"], "valid": decoded["valid"]}
    return detection.recall_reward_padded(
        preds, gts, box_format="yxyx", iou_thresholds=[0.1, 0.3, 0.5, 0.7], normalize=True
    )


def test_tiny_jax_policy_learns_with_reinforce_jitted_end_to_end():
    optax = pytest.importorskip("optax")
    reward_fn = rj.wrap_reward(box_reward, batch_dims=2)
    opt = optax.adam(0.1)
    params = jnp.zeros((4, CODEC.n_bins))
    state = opt.init(params)
    b, n = 4, 8

    @jax.jit
    def step(params, state, key):
        bins = jax.random.categorical(key, params, shape=(b, n, 4))
        rewards = reward_fn(bins)

        def loss(p):
            logits = jnp.broadcast_to(p, (b, n, 4, CODEC.n_bins))
            return rj.reinforce_loss(rj.sequence_logprob(logits, bins, jnp.ones((b, n, 4), bool)), rewards)

        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, rewards.mean()

    history = []
    key = jax.random.PRNGKey(0)
    for _ in range(200):
        key, sub = jax.random.split(key)
        params, state, mean_reward = step(params, state, sub)
        history.append(float(mean_reward))
    start, end = np.mean(history[:20]), np.mean(history[-20:])
    assert end > start + 0.4, (start, end)


def test_tiny_torch_policy_learns_with_reinforce():
    torch.manual_seed(0)
    reward_fn = rt.wrap_reward(box_reward, batch_dims=2)
    params = torch.zeros(4, CODEC.n_bins, requires_grad=True)
    opt = torch.optim.Adam([params], lr=0.1)
    b, n = 4, 8
    history = []
    for _ in range(200):
        logits = params.expand(b, n, 4, CODEC.n_bins)
        bins = torch.distributions.Categorical(logits=logits.detach()).sample()
        rewards = reward_fn(bins)
        loss = rt.reinforce_loss(rt.sequence_logprob(logits, bins, torch.ones(b, n, 4, dtype=torch.bool)), rewards)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(rewards.mean()))
    start, end = np.mean(history[:20]), np.mean(history[-20:])
    assert end > start + 0.4, (start, end)
