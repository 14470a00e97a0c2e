"""REINFORCE adapters: torch and jax against numpy and each other; wrap_reward; box tokens; training proof."""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

from rewards import detection  # noqa: E402
from rewards.adapters import jax as rj  # noqa: E402
from rewards.adapters import torch as rt  # noqa: E402
from rewards.adapters.box_tokens import BoxTokenizer  # noqa: E402


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
    logits, tokens, mask = (
        as_arr(np.zeros((2, 3, 5), np.float32)),
        as_arr(np.zeros((2, 3), np.int64)),
        as_arr(np.ones((2, 3), bool)),
    )
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
        fw.reinforce_loss(
            as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 2), np.float32)), baseline="greedy"
        )
    with pytest.raises(ValueError, match=r"`baseline` array must have shape"):
        fw.reinforce_loss(
            as_arr(np.zeros((4, 2), np.float32)),
            as_arr(np.zeros((4, 2), np.float32)),
            baseline=as_arr(np.zeros(3, np.float32)),
        )
    with pytest.raises(ValueError, match=r"`reduction`"):
        fw.reinforce_loss(
            as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros((4, 2), np.float32)), reduction="avg"
        )
    with pytest.raises(ValueError, match=r"`conf_logits` must have shape"):
        fw.iou_confidence_loss(
            as_arr(np.zeros((4, 2), np.float32)), as_arr(np.zeros(4, np.float32)), as_arr(np.ones(4, bool))
        )


def test_iou_confidence_loss_matches_numpy_in_both_frameworks():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 9)).astype(np.float32)
    iou = rng.random((2, 5)).astype(np.float32)
    valid = rng.random((2, 5)) < 0.6
    logp = np_log_softmax(logits.astype(np.float64))[..., :3]
    target = np.stack([~valid, valid * (1 - iou), valid * iou], -1)
    expected = -(target * logp).sum(-1)
    got_t = rt.iou_confidence_loss(
        torch.tensor(logits), torch.tensor(iou), torch.tensor(valid), reduction="none"
    )
    got_j = rj.iou_confidence_loss(
        jnp.asarray(logits), jnp.asarray(iou), jnp.asarray(valid), reduction="none"
    )
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_j), expected, rtol=1e-5)
    assert float(
        rt.iou_confidence_loss(torch.tensor(logits), torch.tensor(iou), torch.tensor(valid))
    ) == pytest.approx(expected.mean(), rel=1e-5)


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


# ------------------------------------------- precision and bad inputs (issue 12)

FRAMEWORKS = [
    ("torch", rt, lambda a, **kw: torch.tensor(np.asarray(a), **kw)),
    ("jax", rj, lambda a, **kw: jnp.asarray(a, **kw)),
]


def grad_of_loss(fw, logp, rewards, **kwargs):
    """d reinforce_loss / d seq_logprob, in the log-probs' own dtype."""
    if fw is rt:
        logp = logp.clone().requires_grad_(True)
        loss = rt.reinforce_loss(logp, rewards, **kwargs)
        loss.backward()
        return loss, logp.grad
    return rj.reinforce_loss(logp, rewards, **kwargs), jax.grad(
        lambda lp: rj.reinforce_loss(lp, rewards, **kwargs)
    )(logp)


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
@pytest.mark.parametrize("baseline", ["loo", "mean", "greedy"])
def test_half_precision_policies_get_the_float32_gradient(low, baseline):
    # Rewards 0.002 apart near 1: bfloat16 (spacing 2**-7 there) would round them all to 1.0.
    rewards = np.array([[0.997, 0.999, 1.001, 1.003], [0.25, 0.5, 0.75, 1.0]], np.float32)
    logp = np.array([[-1.5, -2.0, -0.5, -3.0], [-1.0, -1.25, -2.5, -0.75]], np.float32)  # exact in both
    for fw_name, fw in (("torch", rt), ("jax", rj)):
        xp_low = getattr(torch, low) if fw is rt else getattr(jnp, low)
        conv = (
            (lambda a, dtype=None: torch.tensor(a, dtype=dtype))
            if fw is rt
            else (lambda a, dtype=None: jnp.asarray(a, dtype))
        )
        base = conv(np.array([0.5, 0.3], np.float32)) if baseline == "greedy" else baseline
        loss32, g32 = grad_of_loss(fw, conv(logp), conv(rewards), baseline=base)
        loss_low, g_low = grad_of_loss(fw, conv(logp, xp_low), conv(rewards), baseline=base)
        assert str(g_low.dtype).endswith(low)
        assert str(loss_low.dtype).endswith("float32"), fw_name  # the loss is computed in float32
        eps = 2.0**-8 if low == "bfloat16" else 2.0**-11
        np.testing.assert_allclose(
            np.asarray(g_low, np.float32) if fw is rj else g_low.float().numpy(),
            np.asarray(g32),
            rtol=eps,
            atol=1e-9,
            err_msg=fw_name,
        )
        assert float(np.asarray(loss_low.detach() if fw is rt else loss_low)) == pytest.approx(
            float(np.asarray(loss32.detach() if fw is rt else loss32)), rel=1e-6
        )
        assert np.abs(np.asarray(g32)).min() > 1e-4  # the float32 gradient is not trivially zero


@pytest.mark.parametrize("fw_name, fw, conv", FRAMEWORKS, ids=["torch", "jax"])
def test_reinforce_arguments_lists_dtypes_and_non_finite_values(fw_name, fw, conv):
    rewards = [[1.0, 0.0], [0.5, 0.25]]
    logp = conv(np.full((2, 2), -1.0, np.float32))
    expected = fw.reinforce_loss(logp, conv(np.array(rewards, np.float32)), reduction="none")
    np.testing.assert_allclose(
        np.asarray(fw.reinforce_loss(logp, rewards, reduction="none")), np.asarray(expected)
    )
    np.testing.assert_allclose(
        np.asarray(fw.reinforce_loss(logp, np.array(rewards), baseline=[0.5, 0.1])),
        np.asarray(fw.reinforce_loss(logp, rewards, baseline=conv(np.array([0.5, 0.1], np.float32)))),
    )
    np.testing.assert_allclose(np.asarray(fw.loo_baseline(rewards)), [[0.0, 1.0], [0.25, 0.5]])
    np.testing.assert_allclose(
        np.asarray(fw.reinforce_loss(logp, [[True, False], [1, 0]])),
        np.asarray(fw.reinforce_loss(logp, [[1.0, 0.0], [1.0, 0.0]])),
    )
    with pytest.raises(ValueError, match=r"`seq_logprob` must be floating point .*got dtype .*int"):
        fw.reinforce_loss(conv(np.zeros((2, 2), np.int32)), rewards)
    with pytest.raises(TypeError, match=r"`rewards` must hold real numbers, got dtype <U"):
        fw.reinforce_loss(logp, [["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match=r"`baseline` must hold real numbers, got dtype complex"):
        fw.reinforce_loss(logp, rewards, baseline=np.ones(2, complex))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"`rewards\[1, 0\]` is (nan|inf|-inf): rewards must be finite"):
            fw.reinforce_loss(logp, [[1.0, 0.0], [bad, 0.25]])
        with pytest.raises(ValueError, match=r"`rewards\[1, 0\]`"):
            fw.loo_baseline([[1.0, 0.0], [bad, 0.25]])
    with pytest.raises(ValueError, match=r"`baseline\[1\]` is nan"):
        fw.reinforce_loss(logp, rewards, baseline=[0.0, np.nan])
    with pytest.raises(ValueError, match=r"`reduction` must be one of"):
        fw.iou_confidence_loss(conv(np.zeros((2, 3), np.float32)), [0.5, 0.5], [True, True], reduction="avg")


def test_jax_traced_nan_rewards_give_a_nan_loss():
    loss = jax.jit(lambda r: rj.reinforce_loss(jnp.zeros((1, 2)), r))(jnp.array([[1.0, jnp.nan]]))
    assert np.isnan(float(loss))


def torch_or_jax_logprob(fw, conv, logits, tokens, mask):
    return np.asarray(fw.sequence_logprob(conv(logits), conv(tokens), conv(mask)))


def test_sequence_logprob_token_cases_torch_equals_jax():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 3, 10)).astype(np.float32)
    lp = np_log_softmax(logits.astype(np.float64))
    ok = np.array([[1, 2, 3], [4, 5, 6]])
    for fill in (-100, 10, -1, 2**31 - 1):  # HF ignore index, the vocabulary size, ...: masked, so never read
        tokens = ok.copy()
        tokens[:, 2] = fill
        for mask in (
            np.array([[1, 1, 0], [1, 1, 0]], bool),
            np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]], np.float32),
        ):
            expected = lp[0, [0, 1], [1, 2]].sum(), lp[1, [0, 1], [4, 5]].sum()
            for fw, conv in ((rt, torch.tensor), (rj, jnp.asarray)):
                np.testing.assert_allclose(
                    torch_or_jax_logprob(fw, conv, logits, tokens, mask), expected, rtol=1e-5
                )
    mask = np.ones((2, 3), bool)
    for bad, shown in ((10, "10"), (-1, "-1"), (-100, "-100")):
        tokens = ok.copy()
        tokens[1, 1] = bad
        for fw, conv in ((rt, torch.tensor), (rj, jnp.asarray)):
            with pytest.raises(
                ValueError, match=rf"`tokens\[1, 1\]` = {shown} is not a token id in \[0, 10\)"
            ):
                fw.sequence_logprob(conv(logits), conv(tokens), conv(mask))
        # under jit jax cannot raise: the sequence holding the bad token is NaN, the other one exact
        got = np.asarray(
            jax.jit(rj.sequence_logprob)(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(mask))
        )
        assert np.isnan(got[1]) and got[0] == pytest.approx(lp[0, [0, 1, 2], ok[0]].sum(), rel=1e-5)


def test_iou_confidence_loss_takes_match_iou_padded_output_and_checks_values():
    rng = np.random.default_rng(6)
    preds = {
        "boxes": np.array([[[0, 0, 10, 10], [0, 0, 5, 5], [0, 0, 0, 0]]], float),
        "labels": np.zeros((1, 3), int),
        "valid": np.array([[True, True, False]]),
    }
    gts = {
        "boxes": np.array([[[0, 0, 10, 9]]], float),
        "labels": np.zeros((1, 1), int),
        "valid": np.ones((1, 1), bool),
    }
    iou = detection.match_iou_padded(preds, gts)  # float64 numpy (1, 3)
    logits = rng.normal(size=(1, 3, 5)).astype(np.float32)
    logp = np_log_softmax(logits.astype(np.float64))[..., :3]
    v = preds["valid"]
    target = np.stack([~v, v * (1 - iou), v * iou], -1)
    expected = -(target * logp).sum(-1)
    for fw, conv in ((rt, torch.tensor), (rj, jnp.asarray)):
        got = fw.iou_confidence_loss(conv(logits), iou, v, reduction="none")
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
        padded_nan = np.where(v, iou, np.nan)  # padding is never read
        np.testing.assert_allclose(
            np.asarray(fw.iou_confidence_loss(conv(logits), padded_nan, v, reduction="none")),
            expected,
            rtol=1e-5,
        )
        for bad in (np.nan, 1.5, -0.1):
            with pytest.raises(
                ValueError, match=r"`match_iou\[0, 1\]` = (nan|1\.5|-0\.1) is not an IoU in \[0, 1\]"
            ):
                fw.iou_confidence_loss(conv(logits), np.array([[0.5, bad, 0.0]]), v)
    traced = jax.jit(rj.iou_confidence_loss)(
        jnp.asarray(logits), jnp.array([[0.5, 1.5, 0.0]]), jnp.asarray(v)
    )
    assert np.isnan(float(traced))


def padded_pair(rng, b, n, m=2):
    """Padded yxyx preds (3 boxes: the 2 GTs jittered, one random) and GTs (m=2 boxes), batch (b, n)."""
    glo = rng.random((b, n, m, 2)) * 0.5
    gts = {
        "boxes": np.concatenate([glo, glo + 0.4], -1),
        "labels": rng.integers(0, 2, (b, n, m)),
        "valid": np.ones((b, n, m), bool),
    }
    jitter = gts["boxes"] + rng.normal(scale=0.08, size=gts["boxes"].shape)
    extra = np.concatenate([glo[:, :, :1], glo[:, :, :1] + 0.2], -1)
    preds = {
        "boxes": np.clip(np.concatenate([jitter, extra], 2), 0, 1).astype(np.float32),
        "labels": np.concatenate(
            [
                np.where(rng.random((b, n, m)) < 0.8, gts["labels"], 1 - gts["labels"]),
                gts["labels"][:, :, :1],
            ],
            2,
        ),
        "valid": rng.random((b, n, m + 1)) < 0.8,
    }
    return preds, gts


def test_wrap_reward_with_recall_reward_padded_dicts_torch_and_jax_jit():
    rng = np.random.default_rng(7)
    preds, gts = padded_pair(rng, 3, 4)
    reward = functools.partial(detection.recall_reward_padded, box_format="yxyx", normalize=True)
    flat = lambda d: {key: v.reshape((12,) + v.shape[2:]) for key, v in d.items()}  # noqa: E731
    expected = reward(flat(preds), flat(gts)).reshape(3, 4)
    assert expected.std() > 0
    t_args = [{key: torch.tensor(v) for key, v in d.items()} for d in (preds, gts)]
    got_t = rt.wrap_reward(reward, batch_dims=2)(*t_args)
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-6)
    j_args = [{key: jnp.asarray(v) for key, v in d.items()} for d in (preds, gts)]
    wrapped = rj.wrap_reward(reward, batch_dims=2)
    np.testing.assert_allclose(np.asarray(jax.jit(wrapped)(*j_args)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(wrapped(*j_args)), expected, rtol=1e-6)  # eager: called directly
    per_row = jax.jit(jax.vmap(rj.wrap_reward(reward)))(*j_args)
    np.testing.assert_allclose(np.asarray(per_row), expected, rtol=1e-6)
    # bfloat16 boxes widen exactly to float32 on the host (probe: wrap_reward(bf16 tensor))
    t_bf16 = {**t_args[0], "boxes": t_args[0]["boxes"].bfloat16()}
    widened = {**flat(preds), "boxes": t_bf16["boxes"].float().numpy().reshape(12, 3, 4)}
    np.testing.assert_allclose(
        rt.wrap_reward(reward, batch_dims=2)(t_bf16, t_args[1]).numpy(),
        reward(widened, flat(gts)).reshape(3, 4),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"`args\[1\]\['labels'\]` has leading shape \(3, 5\)"):
        rt.wrap_reward(reward, batch_dims=2)(
            t_args[0], {**t_args[1], "labels": torch.zeros(3, 5, 2, dtype=torch.long)}
        )
    with pytest.raises(
        ValueError, match=r"`args\[1\]` has shape \(\): fewer than batch_dims=1 .*functools.partial"
    ):
        rj.wrap_reward(detection.recall_reward_padded)(j_args[0], "yxyx")


def test_jax_wrap_reward_errors_reach_the_user_readably():
    def boom(x):
        raise ValueError("the reward exploded")

    def wrong_shape(x):
        return np.zeros(len(x) + 1)

    def text(x):
        return np.array(["a"] * len(x))

    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="the reward exploded"):  # eager: the reward's own exception
        rj.wrap_reward(boom)(x)
    with pytest.raises(
        ValueError, match=r"reward function `wrong_shape` returned shape \(4,\); expected \(3,\)"
    ):
        rj.wrap_reward(wrong_shape)(x)
    with pytest.raises(TypeError, match=r"reward function `text` returned dtype <U1"):
        rj.wrap_reward(text)(x)
    with pytest.raises(TypeError, match=r"reward function `text` returned dtype <U1"):
        rt.wrap_reward(text)(torch.zeros(3, 2))
    # under jit the exception cannot cross compiled code: jax's error carries the reward's name and message
    with pytest.raises(
        jax.errors.JaxRuntimeError,
        match=r"(?s)RuntimeError: reward function `boom` raised ValueError: the reward exploded",
    ):
        jax.block_until_ready(jax.jit(rj.wrap_reward(boom))(x))
    with pytest.raises(
        jax.errors.JaxRuntimeError, match=r"(?s)reward function `wrong_shape` returned shape \(4,\)"
    ):
        jax.block_until_ready(jax.jit(rj.wrap_reward(wrong_shape))(x))
    with pytest.raises(ValueError, match=r"`batch_dims` must be >= 1"):
        rj.wrap_reward(boom, batch_dims=0)


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


def test_box_tokens_reject_bad_coordinates_labels_and_options():
    codec = BoxTokenizer(n_classes=3, n_bins=11)
    box = np.array([[[0.1, 0.2, 0.5, 0.6], [np.nan, 5.0, -1.0, np.inf]]])  # the second box is padding
    valid = np.array([[True, False]])
    tokens = codec.encode(box, [[2, 0]], valid)  # padding may hold anything
    assert tokens.tolist() == [[4, 5, 8, 9, 16, 2, 0, 0, 0, 0, 0, 0]]
    cases = [
        ([0.1, np.nan, 0.5, 0.6], r"`boxes\[0, 0\]` = \[0\.1, nan, 0\.5, 0\.6\] contains NaN or infinite"),
        ([0.1, 0.2, np.inf, 0.6], r"`boxes\[0, 0\]` .*contains NaN or infinite"),
        ([10.0, 20.0, 50.0, 60.0], r"`boxes\[0, 0\]` .*outside \[0, 1\]: .*normalised by the image size"),
        ([0.1, 0.2, 0.5, 1.0001], r"outside \[0, 1\]"),
        ([0.5, 0.2, 0.1, 0.6], r"`boxes\[0, 0\]` .*ymax < ymin"),
    ]
    for coords, match in cases:
        with pytest.raises(ValueError, match=match):
            codec.encode(np.array([[coords]]), [[1]], [[True]])
    with pytest.raises(ValueError, match=r"`labels\[0, 0\]` = 1\.7 is not a whole number"):
        codec.encode(box[:, :1], [[1.7]], [[True]])
    assert codec.encode(box[:, :1], [[2.0]], [[True]]).tolist() == tokens[:, :6].tolist()
    with pytest.raises(ValueError, match=r"`labels\[0, 0\]` = 3 must lie in \[0, 2\]"):
        codec.encode(box[:, :1], [[3]], [[True]])
    with pytest.raises(ValueError, match=r"`confidence\[0, 0\]` = 3 must lie in \[1, 2\]"):
        codec.encode(box[:, :1], [[1]], [[True]], confidence=3)
    with pytest.raises(ValueError, match=r"`coords\[1\]` = 2\.0 is not a coordinate in \[0, 1\]"):
        codec.quantize([0.5, 2.0])
    with pytest.raises(ValueError, match=r"`n_classes` must be a whole number, got 1\.5"):
        BoxTokenizer(n_classes=1.5)
    with pytest.raises(TypeError, match=r"`n_classes` must be an integer, got str '3'"):
        BoxTokenizer(n_classes="3")
    with pytest.raises(ValueError, match=r"`n_bins` must be >= 2"):
        BoxTokenizer(n_classes=3, n_bins=1)
    assert BoxTokenizer(n_classes=3.0).vocab_size == BoxTokenizer(n_classes=3).vocab_size == 1006
    # float tokens: whole numbers are ids, fractions an error
    decoded = codec.decode(tokens.astype(np.float32))
    np.testing.assert_array_equal(decoded["boxes"], codec.decode(tokens)["boxes"])
    with pytest.raises(ValueError, match=r"`tokens\[0, 1\]` = 5\.5 is not a whole number"):
        codec.decode(tokens + np.array([[0, 0.5] + [0] * 10]))
    with pytest.raises(ValueError, match=r"`tokens` must hold integer token ids, got dtype bool"):
        codec.decode(tokens > 0)
    torch_tokens = codec.decode(torch.tensor(tokens))
    np.testing.assert_array_equal(torch_tokens["valid"], decoded["valid"])


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
    np.testing.assert_array_equal(
        detection.map_reward_padded(preds, gts), detection.map_reward_batch(dict_preds, dict_gts)
    )
    np.testing.assert_array_equal(
        detection.recall_reward_padded(preds, gts), detection.recall_reward_batch(dict_preds, dict_gts)
    )
    flat = detection.match_iou_padded(preds, gts)
    for i, arr in enumerate(detection.match_iou_batch(dict_preds, dict_gts)):
        np.testing.assert_array_equal(flat[i, : len(arr)], arr)
    with pytest.raises(ValueError, match=r'preds\["valid"\]'):
        detection.map_reward_padded({**preds, "valid": preds["valid"][:, :2]}, gts)


# ------------------------------------------------------- proof of training

CODEC = BoxTokenizer(n_classes=1, n_bins=8)
TARGET = {
    "boxes": np.array([[[0.25, 0.25, 0.75, 0.75]]]),
    "labels": np.zeros((1, 1), int),
    "valid": np.ones((1, 1), bool),
}


def box_reward(bins):
    """Host reward of sampled coordinate bins (batch, 4): normalised recall of one target box."""
    n = len(bins)
    tokens = np.concatenate(
        [
            bins + CODEC.coord_offset,
            np.full((n, 1), CODEC.class_offset),
            np.full((n, 1), CODEC.high_confidence),
        ],
        1,
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
        loss = rt.reinforce_loss(
            rt.sequence_logprob(logits, bins, torch.ones(b, n, 4, dtype=torch.bool)), rewards
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(rewards.mean()))
    start, end = np.mean(history[:20]), np.mean(history[-20:])
    assert end > start + 0.4, (start, end)
