"""Stages of the reference run: MLE pretraining, reward tuning, the continued-MLE control.

Each stage is a loop of optimizer steps whose randomness is a pure function
of (seed, stage, step), so a run restarted from its last checkpoint with
``--resume`` reproduces the uninterrupted run exactly (on CPU).
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from reference_training import recipe
from reference_training.data import make_splits, shuffle_objects
from reference_training.model import ModelConfig, Seq2Seq, unwrap
from reference_training.tasks import TASKS

STAGES = {"pretrain": 1, "tune": 2, "mle_continued": 3}


@dataclass(frozen=True)
class Config:
    task: str = "detection"
    seed: int = 0
    n_train: int = 4000
    n_heldout: int = 256
    image_size: int = 64
    max_objects: int = 8
    n_bins: int = 64
    patch_size: int = 8
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    pretrain_steps: int = 2200
    tune_steps: int = 160
    tune_batch: int = 16
    tune_lr: float = 4e-5
    samples: int = 8
    temperature: float = 0.5
    reward: str = "recall"
    duplicate_weight: float = 0.5
    confidence_weight: float = 1.0
    confidence_lr: float = 3e-3
    eval_every: int = 40
    eval_images: int = 128
    checkpoint_every: int = 40
    threads: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu


PRESETS = {
    "default": Config(),
    "smoke": Config(
        n_train=96, n_heldout=16, image_size=32, max_objects=3, n_bins=32, dim=32, heads=2,
        encoder_layers=1, decoder_layers=1, batch_size=16, pretrain_steps=30, tune_steps=6,
        tune_batch=4, samples=4, eval_every=3, eval_images=16, checkpoint_every=2, lr=2e-3,
    ),
}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


class Run:
    """Data and task (grammar, targets, reward, evaluation) shared by every stage of one configuration.

    Under torchrun each rank draws its own images (and samples their N
    sequences itself); only rank 0 writes files.
    """

    def __init__(self, cfg: Config, out_dir: str | None = None):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.rank, self.world = init_distributed(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        train, heldout = make_splits(cfg.n_train, cfg.n_heldout, cfg.seed, cfg.image_size, cfg.max_objects)
        self.task = TASKS[cfg.task](cfg, train, heldout, out_dir if self.is_main else None)
        self.train, self.heldout = self.task.train, self.task.heldout
        self.grammar = self.task.grammar.to(self.device)
        self.codec = self.task.codec
        self.eval_subset = self.heldout.subset(np.arange(min(cfg.eval_images, len(self.heldout))))

    def new_model(self) -> Seq2Seq:
        torch.manual_seed(self.cfg.seed)
        c = self.cfg
        model = Seq2Seq(ModelConfig(c.image_size, c.patch_size, c.dim, c.heads, c.encoder_layers,
                                    c.decoder_layers, self.task.vocab_size, self.grammar.length,
                                    *self.task.coord_tokens, self.task.certainty_features))
        return model.to(self.device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def parallel(self, model):
        """The model wrapped for data parallelism when there are several ranks."""
        # find_unused_parameters: MLE never touches the confidence head.
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def mean_over_ranks(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)  # nccl reduces GPU tensors only
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (keeps time-based loops in step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def step_rng(self, stage: str, step: int) -> tuple[np.random.Generator, torch.Generator]:
        key = [self.cfg.seed, STAGES[stage], step, self.rank]
        seed = int(np.random.SeedSequence(key).generate_state(1)[0])
        return np.random.default_rng(key), torch.Generator(self.device).manual_seed(seed)

    def batch(self, rng: np.random.Generator, size: int):
        return shuffle_objects(self.train.subset(rng.integers(0, len(self.train), size)), rng)

    def mle_loss(self, model, rng: np.random.Generator):
        scenes = self.batch(rng, self.cfg.batch_size)
        return recipe.mle_loss(model, self.grammar, scenes.images, *self.task.mle_targets(scenes, rng))

    def evaluate(self, model, scenes=None):
        """(metrics, per-image rewards) on the held-out split (or ``scenes``)."""
        return self.task.evaluate(model, self.heldout if scenes is None else scenes)


def save_checkpoint(path: str, model, optimizer, step: int, stage: str, cfg: Config, extra: dict | None = None) -> None:
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    tmp = path + ".tmp"
    torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "step": step, "stage": stage,
                "config": asdict(cfg), **(extra or {})}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind a kill


def load_model(path: str, run: Run) -> Seq2Seq:
    model = run.new_model()
    model.load_state_dict(torch.load(path, map_location=run.device, weights_only=False)["model"])
    return model


def with_confidence_of(model: Seq2Seq, donor: Seq2Seq) -> Seq2Seq:
    """A copy of ``model`` whose confidence head is ``donor``'s (ablations of the tuning gain)."""
    out = copy.deepcopy(unwrap(model))
    out.confidence.load_state_dict(unwrap(donor).confidence.state_dict())
    return out


class MetricsLog:
    """metrics.jsonl: one JSON object per line, written by rank 0 only (``fresh``: start a new file)."""

    def __init__(self, out_dir: str | None, main: bool = True, fresh: bool = False):
        self.path = os.path.join(out_dir, "metrics.jsonl") if out_dir and main else None
        if fresh and self.path and os.path.exists(self.path):
            os.remove(self.path)  # a rerun of the demo into the same directory must not mix two runs

    def write(self, **record) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _loop(run: Run, stage: str, model, optimizer, step_fn, n_steps: int, state_path: str | None,
          resume: bool, log: MetricsLog, *, interrupt_at: int | None = None, on_eval=None,
          seconds: float | None = None, first_step: int = 0, lr_at=None) -> dict:
    """Optimizer steps with checkpoints; returns the stage's history.

    ``lr_at(step)`` sets the learning rate of each step (a pure function of the
    step, so resuming needs no scheduler state).
    """
    start, history = first_step, {"step": [], "headline": [], "reward": []}
    if resume and state_path and os.path.exists(state_path):
        state = torch.load(state_path, map_location=run.device, weights_only=False)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
    t0 = time.perf_counter()
    done = start
    bar = tqdm(range(start, n_steps), desc=stage, dynamic_ncols=True, disable=None if run.is_main else True)
    for step in bar:
        rng, gen = run.step_rng(stage, step)
        loss, value = step_fn(rng, gen)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        done = step + 1
        loss_value, value = run.mean_over_ranks(float(loss.detach()), value)
        log.write(stage=stage, step=done, loss=loss_value, value=value, seconds=time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss_value:.3f}", value=f"{value:.3f}")
        if on_eval and (done % run.cfg.eval_every == 0 or done == n_steps):
            metrics, per_image = run.evaluate(unwrap(model), run.eval_subset)
            history["step"].append(done)
            history["headline"].append(metrics[run.task.headline])
            history["reward"].append(float(per_image.mean()))
            log.write(stage=f"{stage}_eval", step=done, **metrics)
        if state_path and (done % run.cfg.checkpoint_every == 0 or done == n_steps):
            save_checkpoint(state_path, model, optimizer, done, stage, run.cfg, {"history": history})
        if interrupt_at is not None and done == interrupt_at:
            raise KeyboardInterrupt(f"interrupted after step {done} (--interrupt-at)")
        if seconds is not None and run.agree(time.perf_counter() - t0 >= seconds):
            break
    history["seconds"] = time.perf_counter() - t0
    history["steps"] = done
    return history


def mle_lr(cfg: Config, step: int) -> float:
    """Linear warmup, then cosine decay to 10% at the end of pretraining (and 10% after it)."""
    warmup = max(1, min(100, cfg.pretrain_steps // 10))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, cfg.pretrain_steps - warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress)))


def pretrain(run: Run, out_dir: str | None, resume: bool = False, log=None, interrupt_at=None) -> Seq2Seq:
    """Stage 1: MLE with teacher forcing on random-order box sequences."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(run.new_model())
    opt = torch.optim.AdamW(model.parameters(), lr=run.cfg.lr, weight_decay=0.01)

    def step_fn(rng, gen):
        return run.mle_loss(model, rng), 0.0

    state = os.path.join(out_dir, "pretrain_state.pt") if out_dir else None
    _loop(run, "pretrain", model, opt, step_fn, run.cfg.pretrain_steps, state, resume, log,
          interrupt_at=interrupt_at, lr_at=lambda step: mle_lr(run.cfg, step))
    if out_dir:
        save_checkpoint(os.path.join(out_dir, "mle.pt"), model, opt, run.cfg.pretrain_steps, "pretrain", run.cfg)
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model)


def tune(run: Run, init: str, out_dir: str | None, resume: bool = False, log=None, interrupt_at=None):
    """Stage 2: REINFORCE on the task reward from the MLE checkpoint; returns (model, history)."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(load_model(init, run))
    head = list(unwrap(model).confidence.parameters())
    rest = [p for n, p in unwrap(model).named_parameters() if not n.startswith("confidence.")]
    # The confidence head starts untrained (MLE has no confidence signal) and only reads
    # detached features, so it can learn much faster than the policy may move.
    opt = torch.optim.AdamW([{"params": rest, "lr": run.cfg.tune_lr},
                             {"params": head, "lr": run.cfg.confidence_lr}], weight_decay=0.0)
    c = run.cfg

    def step_fn(rng, gen):
        return run.task.reinforce_step(model, run.batch(rng, c.tune_batch), gen)

    state = os.path.join(out_dir, "tune_state.pt") if out_dir else None
    history = _loop(run, "tune", model, opt, step_fn, c.tune_steps, state, resume, log,
                    interrupt_at=interrupt_at, on_eval=True)
    if out_dir:
        save_checkpoint(os.path.join(out_dir, "tuned.pt"), model, opt, c.tune_steps, "tune", run.cfg)
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model), history


def continue_mle(run: Run, init: str, seconds: float, out_dir: str | None, log=None) -> Seq2Seq:
    """The control: plain MLE from the same checkpoint for the same wall-clock time as tuning."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(load_model(init, run))
    opt = torch.optim.AdamW(model.parameters(), lr=run.cfg.lr, weight_decay=0.01)
    opt.load_state_dict(torch.load(init, map_location=run.device, weights_only=False)["optimizer"])

    def step_fn(rng, gen):
        return run.mle_loss(model, rng), 0.0

    history = _loop(run, "mle_continued", model, opt, step_fn, 10**9, None, False, log, seconds=seconds,
                    first_step=run.cfg.pretrain_steps, lr_at=lambda step: mle_lr(run.cfg, step))
    if out_dir:
        save_checkpoint(os.path.join(out_dir, "mle_continued.pt"), model, opt, history["steps"], "mle_continued", run.cfg)
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model)


def config_from(preset: str, **overrides) -> Config:
    base = PRESETS[preset]
    known = {f.name for f in fields(Config)}
    return replace(base, **{k: v for k, v in overrides.items() if k in known and v is not None})
