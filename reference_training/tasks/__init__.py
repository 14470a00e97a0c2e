"""The task interface of the reference trainer, and the registry of tasks.

The stages (``train.py``), the CLI (``__main__.py``) and the plots read a
task only through ``Task``; nothing outside a task's module branches on its
name. Adding a task = one module defining a ``TaskBase`` subclass + one line
in ``TASKS`` below (see the README's "Adding a task").
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from reference_training.sequence import SequenceGrammar

# name -> "module:Class". Imported on first use, so a task's own dependencies load only when it runs.
TASKS: dict[str, str] = {
    "detection": "reference_training.tasks.detection:DetectionTask",
    "captioning": "reference_training.tasks.captioning:CaptionTask",
    "panoptic": "reference_training.tasks.panoptic:PanopticTask",
    "colorization": "reference_training.tasks.colorization:ColorizationTask",
}


@runtime_checkable
class Task(Protocol):
    """Everything the stages, the CLI and the plots read from a task.

    Built as ``Task(cfg, out_dir)`` (``out_dir`` None except on the writing rank);
    it owns its data splits, token grammar and reward.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # one line for --help
    headline: ClassVar[str]  # the metric the demo reports gains in
    metrics: ClassVar[tuple[str, ...]]  # columns of the printed table (``evaluate``'s keys)
    headline_scale: ClassVar[
        tuple[float, str]
    ]  # (factor, unit) the gain is printed in, e.g. (100, " points")
    reward_name: ClassVar[str]  # axis label of the per-image reward
    presets: ClassVar[dict[str, dict[str, Any]]]  # preset name -> Config overrides for this task

    train: Any  # training split (anything with ``images`` (S, H, W, 3) uint8 and ``subset(idx)``)
    heldout: Any
    vocab_size: int  # including BOS (the last id)
    grammar: SequenceGrammar
    coord_tokens: tuple[int, int]  # (offset, count) of tokens naming a place in the image; (0, 0): none
    grid_positions: int  # > 0: output positions are the cells of a grid this many cells wide (raster order)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Raises ValueError naming the flag when ``cfg`` does not suit the task (before anything runs)."""
        ...

    def model_extras(self, dim: int) -> dict[str, nn.Module]:
        """Extra submodules the task's model carries (e.g. detection's confidence head)."""
        ...

    def tune_param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """The tuning optimizer's parameter groups."""
        ...

    def batch(self, rng: np.random.Generator, size: int) -> Any:
        """A training batch of ``size`` images drawn with ``rng``."""
        ...

    def mle_targets(self, batch: Any, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Target tokens (B, L) and loss mask (B, L) of teacher-forced MLE."""
        ...

    def train_head(self, tokens: torch.Tensor):
        """None, or the ``head`` function the REINFORCE forward pass also evaluates (see Seq2Seq.forward)."""
        ...

    def reward(
        self, tokens: torch.Tensor, probs: torch.Tensor, batch: Any, samples: int
    ) -> tuple[np.ndarray, Any]:
        """Rewards (B * samples,) of sampled sequences (one batch call of the task reward), and what
        ``auxiliary_loss`` needs."""
        ...

    def auxiliary_loss(self, tokens: torch.Tensor, head_out: Any, info: Any) -> torch.Tensor | float:
        """A loss added to the policy gradient (e.g. detection's IoU supervision); 0.0 for none."""
        ...

    def evaluate(self, model: nn.Module, data: Any) -> tuple[dict[str, float], np.ndarray]:
        """Held-out metrics (greedy decoding) and per-image rewards."""
        ...

    def picture(self, models: dict[str, nn.Module], data: Any, path: str) -> None:
        """A PNG of predictions on ``data``; ``models``: "MLE", "tuned" (and more), in order."""
        ...

    def ablations(self, evaluate, models: dict[str, nn.Module]) -> dict[str, float]:
        """Extra diagnostic numbers for summary.json (``evaluate(model) -> metrics``)."""
        ...


class TaskBase:
    """Defaults for the optional parts of ``Task``: no extras, one parameter group, no auxiliary loss."""

    headline_scale: ClassVar[tuple[float, str]] = (1.0, "")
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    coord_tokens: tuple[int, int] = (0, 0)
    grid_positions: int = 0

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        return None

    def model_extras(self, dim: int) -> dict[str, nn.Module]:
        return {}

    def tune_param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        return [{"params": list(model.parameters()), "lr": lr}]

    def train_head(self, tokens: torch.Tensor):
        return None

    def auxiliary_loss(self, tokens: torch.Tensor, head_out: Any, info: Any) -> torch.Tensor | float:
        return 0.0

    def ablations(self, evaluate, models: dict[str, nn.Module]) -> dict[str, float]:
        return {}


def task_class(name: str) -> type:
    """The registered task class of ``name``; unknown names raise ValueError listing the choices."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)
