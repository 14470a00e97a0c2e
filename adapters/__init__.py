"""Thin framework adapters for task-rewards.

``rewards.adapters.torch`` and ``rewards.adapters.jax`` hold the REINFORCE estimator
(leave-one-out baseline, masked sequence log-prob, IoU confidence loss) and
``wrap_reward``, which runs a numpy reward on tensors or inside ``jax.jit``.
``rewards.adapters.box_tokens`` is the framework-free box token codec of the paper.
Import the framework module you use; this package imports neither.

The two framework modules share their argument checks and messages
(``rewards.adapters._shared``): same names, same option values
(``baseline``: ``"loo" | "mean" | "none"`` or an array; ``reduction``:
``"mean" | "sum" | "none"``, typed as ``Literal``), same errors. Each exports
an ``ArrayLike`` alias for the arguments that accept tensors, numpy arrays or
lists. Rewards and advantages are float32 whatever the policy's precision.
"""
