"""Stages of the reference run: MLE pretraining, reward tuning, the continued-MLE control.

Each stage is a loop of optimizer steps whose randomness is a pure function
of (seed, stage, step), so a run restarted from its last checkpoint with
``--resume`` reproduces the uninterrupted run exactly (on CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from reference_training import sequence
from reference_training.data import OBJECT_ORDERS
from reference_training.model import ModelConfig, Seq2Seq, unwrap
from reference_training.tasks import Task, task_class

STAGES = {"pretrain": 1, "tune": 2, "mle_continued": 3}


@dataclass(frozen=True)
class Config:
    """One run's settings. A task reads the generic ones and its own (marked); its ``presets``
    override these defaults per preset, and command-line flags override both."""

    task: str = "detection"
    seed: int = 0  # data, initialisation and sampling
    n_train: int = 4000  # generated training scenes
    n_heldout: int = 256  # generated held-out scenes (evaluation)
    image_size: int = 64
    max_objects: int = 8  # shapes per scene at most
    n_bins: int = 64  # detection: coordinate bins
    cell_size: int = 8  # panoptic: pixels per side of a token cell
    patch_size: int = 8
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    pretrain_steps: int = 2200
    tune_steps: int = 160
    tune_batch: int = 16  # images per tuning step (x samples sequences)
    tune_lr: float = 4e-5
    samples: int = 8  # per image; the leave-one-out baseline needs >= 2
    temperature: float = 0.5
    reward: str = "recall"  # detection: "recall" (the paper's) or "map"
    duplicate_weight: float = 0.5  # detection: recall reward's duplicate penalty
    confidence_weight: float = 1.0  # detection: weight of the IoU supervision
    confidence_lr: float = 3e-3  # detection: tuning learning rate of the confidence head
    object_order: str = "random"  # detection: box order of the MLE targets (data.OBJECT_ORDERS)
    eval_every: int = 40  # tuning steps between evaluations on eval_images held-out images
    eval_images: int = 128
    checkpoint_every: int = 40
    threads: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu


PRESETS = {
    "default": Config(),
    "smoke": Config(
        n_train=96,
        n_heldout=16,
        image_size=32,
        max_objects=3,
        n_bins=32,
        dim=32,
        heads=2,
        encoder_layers=1,
        decoder_layers=1,
        batch_size=16,
        pretrain_steps=30,
        tune_steps=6,
        tune_batch=4,
        samples=4,
        eval_every=3,
        eval_images=16,
        checkpoint_every=2,
        lr=2e-3,
    ),
}


class UsageError(ValueError):
    """A bad argument or file, reported to the user as one line (no traceback)."""


def config_from(preset: str, **overrides) -> Config:
    """The preset's Config, then the task's overrides of that preset, then ``overrides`` (None: unset)."""
    if preset not in PRESETS:
        raise UsageError(f"--preset: unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(Config)}
    overrides = {k: v for k, v in overrides.items() if k in known and v is not None}
    task = overrides.get("task", PRESETS[preset].task)
    try:
        task_presets = task_class(task).presets
    except ValueError as err:
        raise UsageError(f"--task: {err}") from None
    return replace(PRESETS[preset], **{**task_presets.get(preset, {}), **overrides})


def check_config(cfg: Config) -> None:
    """Every setting checked before anything runs (a bad one must not surface after pretraining)."""

    def need(ok: bool, flag: str, rule: str) -> None:
        if not ok:
            raise UsageError(f"--{flag.replace('_', '-')} must be {rule}, got {getattr(cfg, flag)!r}")

    for flag in (
        "n_train",
        "n_heldout",
        "image_size",
        "max_objects",
        "patch_size",
        "dim",
        "heads",
        "encoder_layers",
        "decoder_layers",
        "batch_size",
        "pretrain_steps",
        "tune_steps",
        "tune_batch",
        "eval_every",
        "eval_images",
        "checkpoint_every",
        "cell_size",
    ):
        need(isinstance(getattr(cfg, flag), int) and getattr(cfg, flag) >= 1, flag, "a positive integer")
    need(
        cfg.samples >= 2, "samples", ">= 2 (the leave-one-out baseline compares each sample with the others)"
    )
    need(cfg.n_bins >= 2, "n_bins", ">= 2")
    need(cfg.threads >= 0, "threads", ">= 0 (0: the cores not busy at the start)")
    for flag in ("lr", "tune_lr", "confidence_lr", "temperature"):
        need(np.isfinite(getattr(cfg, flag)) and getattr(cfg, flag) > 0, flag, "a positive number")
    for flag in ("confidence_weight", "duplicate_weight"):
        need(np.isfinite(getattr(cfg, flag)) and getattr(cfg, flag) >= 0, flag, "a number >= 0")
    need(cfg.reward in ("recall", "map"), "reward", "'recall' or 'map'")
    need(cfg.object_order in OBJECT_ORDERS, "object_order", f"one of {', '.join(OBJECT_ORDERS)}")
    need(
        cfg.patch_size % 2 == 0 and cfg.image_size % cfg.patch_size == 0,
        "patch_size",
        f"even and divide --image-size {cfg.image_size}",
    )
    need(
        cfg.dim % cfg.heads == 0 and (cfg.dim // cfg.heads) % 2 == 0,
        "heads",
        f"such that --dim {cfg.dim} / heads is even",
    )
    need(cfg.dim % 4 == 0, "dim", "a multiple of 4")
    try:
        task_class(cfg.task).check_config(cfg)
    except ValueError as err:
        raise UsageError(str(err)) from None
    resolve_device(cfg.device, check_only=True)


def resolve_device(name: str, check_only: bool = False) -> torch.device:
    """``auto`` -> cuda if available else cpu; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device: {name!r} is not a torch device (try auto, cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "a CPU-only build"
                if torch.version.cuda is None
                else f"built for CUDA {torch.version.cuda}, but no GPU is visible"
            )
            raise UsageError(
                f"--device {name}: this torch ({torch.__version__}) is {build}; use --device cpu "
                "(or auto), or install a CUDA build of torch"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available in this torch")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: only cpu, cuda and mps are supported")
    if check_only:
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


_DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, read before any run changes it


def busy_cores(reads: int = 5, interval: float = 0.05) -> float:
    """Threads of other processes running right now: the median of a few reads of the kernel's
    count of runnable threads (/proc/loadavg's 4th field, less this process); 0 where unreadable.

    Not the load average: it lags by minutes, so a run started just after another
    job (or after ``pip install``) would take cores that are free again."""
    counts = []
    try:
        for _ in range(reads):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
            time.sleep(interval)
    except (OSError, ValueError, IndexError):
        return 0.0
    return float(np.median(counts))


def auto_threads() -> int:
    """torch CPU threads for ``--threads 0``: the cores that other processes are not using at the start.

    A torch thread that shares its core with another process stalls every parallel
    op of the step (`python -m benchmarks.trainer_threads` measures it).
    """
    return max(1, min(_DEFAULT_THREADS, int(_DEFAULT_THREADS - busy_cores() + 0.5)))


def launched_world_size() -> int:
    """Processes torchrun started for this run (its WORLD_SIZE); 1 outside torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (nccl on GPU, gloo on CPU)."""
    world = launched_world_size()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@contextlib.contextmanager
def process_group_released():
    """Destroys, on the way out, a process group joined inside the block (torchrun's ranks).

    A rank that exits with its gloo group alive can abort (SIGABRT, "terminate called
    without an active exception"): gloo's worker threads still hold finished work when
    the interpreter finalises. A group that existed before the block is the caller's and
    is left alone.
    """
    owned_before = dist.is_initialized()
    try:
        yield
    finally:
        if not owned_before and dist.is_initialized():
            dist.destroy_process_group()


class Run:
    """One configuration's task (data, grammar, reward, evaluation) and devices, shared by every stage.

    Under torchrun each rank draws its own images (and samples their N
    sequences itself); only rank 0 writes files.
    """

    def __init__(self, cfg: Config, out_dir: str | None = None):
        check_config(cfg)
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.rank, self.world = init_distributed(self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or auto_threads())
        self.task: Task = task_class(cfg.task)(cfg, out_dir if self.is_main else None)
        self.train, self.heldout = self.task.train, self.task.heldout
        self.grammar = self.task.grammar.to(self.device)
        self.eval_subset = self.heldout.subset(np.arange(min(cfg.eval_images, len(self.heldout))))

    def new_model(self) -> Seq2Seq:
        torch.manual_seed(self.cfg.seed)
        c = self.cfg
        model = Seq2Seq(
            ModelConfig(
                c.image_size,
                c.patch_size,
                c.dim,
                c.heads,
                c.encoder_layers,
                c.decoder_layers,
                self.task.vocab_size,
                self.grammar.length,
                *self.task.coord_tokens,
                self.task.grid_positions,
            )
        )
        for name, module in self.task.model_extras(
            c.dim
        ).items():  # created after the rest: same seeds, same init
            model.add_module(name, module)
        return model.to(self.device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def parallel(self, model):
        """The model wrapped for data parallelism when there are several ranks."""
        # find_unused_parameters: MLE never touches task extras such as the confidence head.
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

    def mle_loss(self, model, rng: np.random.Generator):
        batch = self.task.batch(rng, self.cfg.batch_size)
        return sequence.mle_loss(model, self.grammar, batch.images, *self.task.mle_targets(batch, rng))

    def evaluate(self, model, data=None):
        """(metrics, per-image rewards) on the held-out split (or ``data``)."""
        return self.task.evaluate(model, self.heldout if data is None else data)


# ------------------------------------------------------------------ checkpoints

CHECKPOINT_KEYS = {"model", "optimizer", "step", "stage", "config"}


def save_checkpoint(
    path: str, model, optimizer, step: int, stage: str, cfg: Config, extra: dict | None = None
) -> None:
    """Tensors, numbers, strings, lists and dicts only: loadable with ``torch.load(weights_only=True)``."""
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    tmp = path + ".tmp"
    torch.save(
        {
            "model": unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "stage": stage,
            "config": asdict(cfg),
            **(extra or {}),
        },
        tmp,
    )
    os.replace(tmp, path)  # never leave a half-written checkpoint behind a kill


def load_checkpoint(path: str, device: torch.device | str = "cpu", cfg: Config | None = None) -> dict:
    """A checkpoint written by ``save_checkpoint``, loaded without unpickling code (weights_only).

    Raises UsageError naming the file when it is missing, not ours, corrupted,
    or (with ``cfg``) written for another task or model shape.
    """
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        reason = str(err).splitlines()[-1] if str(err) else type(err).__name__
        if "Unsupported global" in str(err) or "weights_only" in str(err).lower():
            reason = (
                "it holds Python objects other than tensors and plain data, so it was not loaded (unsafe)"
            )
        raise UsageError(f"{path} is not a reference_training checkpoint or is corrupted: {reason}") from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
        raise UsageError(
            f"{path} is not a reference_training checkpoint (expected the keys {sorted(CHECKPOINT_KEYS)})"
        )
    if cfg is not None:
        saved = state["config"]
        if saved.get("task") != cfg.task:
            raise UsageError(f"{path} was trained for --task {saved.get('task')}, not {cfg.task}")
        shape = (
            "image_size",
            "patch_size",
            "dim",
            "heads",
            "encoder_layers",
            "decoder_layers",
            "max_objects",
            "n_bins",
            "cell_size",
        )
        differ = [
            f"--{k.replace('_', '-')} {saved.get(k)} (not {getattr(cfg, k)})"
            for k in shape
            if k in saved and saved[k] != getattr(cfg, k)
        ]
        if differ:
            raise UsageError(
                f"{path} holds a model of another shape: it was trained with {', '.join(differ)}; "
                f"pass the same --preset/flags"
            )
    return state


def load_model(path: str, run: Run) -> Seq2Seq:
    model = run.new_model()
    state = load_checkpoint(path, run.device, run.cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise UsageError(f"{path} does not fit this model: {str(err).splitlines()[0]}") from None
    return model


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


def _loop(
    run: Run,
    stage: str,
    model,
    optimizer,
    step_fn,
    n_steps: int,
    state_path: str | None,
    resume: bool,
    log: MetricsLog,
    *,
    interrupt_at: int | None = None,
    on_eval=None,
    seconds: float | None = None,
    first_step: int = 0,
    lr_at=None,
) -> dict:
    """Optimizer steps with checkpoints; returns the stage's history.

    ``step_fn(rng, generator) -> (loss, logged value)``. ``lr_at(step)`` sets the
    learning rate of each step (a pure function of the step, so resuming needs
    no scheduler state).
    """
    start, history = first_step, {"step": [], "headline": [], "reward": []}
    if resume and state_path and os.path.exists(state_path):
        state = load_checkpoint(state_path, run.device, run.cfg)
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


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch has it (one kernel for all parameters:
    the per-tensor loop cost ~5% of a CPU step), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # torch < 2.4 on CPU, or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def mle_lr(cfg: Config, step: int) -> float:
    """Linear warmup, then cosine decay to 10% at the end of pretraining (and 10% after it)."""
    warmup = max(1, min(100, cfg.pretrain_steps // 10))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, cfg.pretrain_steps - warmup))
    return float(
        cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress)))
    )  # float: checkpoints hold no numpy


# ------------------------------------------------------------------ stages


def pretrain(run: Run, out_dir: str | None, resume: bool = False, log=None, interrupt_at=None) -> Seq2Seq:
    """Stage 1: MLE with teacher forcing on the task's target sequences."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(run.new_model())
    opt = adamw(model.parameters(), lr=run.cfg.lr, weight_decay=0.01)

    def step_fn(rng, gen):
        return run.mle_loss(model, rng), 0.0

    state = os.path.join(out_dir, "pretrain_state.pt") if out_dir else None
    _loop(
        run,
        "pretrain",
        model,
        opt,
        step_fn,
        run.cfg.pretrain_steps,
        state,
        resume,
        log,
        interrupt_at=interrupt_at,
        lr_at=lambda step: mle_lr(run.cfg, step),
    )
    if out_dir:
        save_checkpoint(
            os.path.join(out_dir, "mle.pt"), model, opt, run.cfg.pretrain_steps, "pretrain", run.cfg
        )
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model)


def reinforce_step(run: Run, model, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """One REINFORCE step on a batch of B images: returns (loss, mean reward).

    sample N sequences per image -> task.reward() (one batch call) ->
    advantage = reward - mean reward of the image's other N - 1 samples ->
    loss = -advantage * log p(sequence) (+ the task's auxiliary loss).
    All N samples of an image stay in this process, so the baseline needs no
    communication under data parallelism.
    """
    task, c = run.task, run.cfg
    images = torch.from_numpy(batch.images)
    model.eval()
    tokens, probs = sequence.generate(
        model, run.grammar, images, c.samples, c.temperature, generator=generator
    )
    model.train()
    rewards, info = task.reward(tokens, probs, batch, c.samples)  # (B * N,) numpy
    tokens = sequence.trim(run.grammar, tokens)
    out = model(
        images.to(tokens.device),
        sequence.teacher_inputs(tokens, unwrap(model).bos),
        head=task.train_head(tokens),
    )
    logits, head_out = out if isinstance(out, tuple) else (out, None)
    seq_logp = sequence.sequence_logprob(run.grammar, logits, tokens)
    loss = sequence.policy_gradient_loss(seq_logp, rewards, c.samples)  # leave-one-out advantage inside
    loss = loss + task.auxiliary_loss(tokens, head_out, info)
    return loss, float(rewards.mean())


def tune(run: Run, init: str, out_dir: str | None, resume: bool = False, log=None, interrupt_at=None):
    """Stage 2: REINFORCE on the task reward from the MLE checkpoint; returns (model, history)."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(load_model(init, run))
    opt = adamw(
        run.task.tune_param_groups(unwrap(model), run.cfg.tune_lr), lr=run.cfg.tune_lr, weight_decay=0.0
    )
    c = run.cfg

    def step_fn(rng, gen):
        return reinforce_step(run, model, run.task.batch(rng, c.tune_batch), gen)

    state = os.path.join(out_dir, "tune_state.pt") if out_dir else None
    history = _loop(
        run,
        "tune",
        model,
        opt,
        step_fn,
        c.tune_steps,
        state,
        resume,
        log,
        interrupt_at=interrupt_at,
        on_eval=True,
    )
    if out_dir:
        save_checkpoint(os.path.join(out_dir, "tuned.pt"), model, opt, c.tune_steps, "tune", run.cfg)
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model), history


def continue_mle(run: Run, init: str, seconds: float, out_dir: str | None, log=None) -> Seq2Seq:
    """The control: plain MLE from the same checkpoint for the same wall-clock time as tuning."""
    log = log or MetricsLog(out_dir, run.is_main)
    model = run.parallel(load_model(init, run))
    opt = adamw(model.parameters(), lr=run.cfg.lr, weight_decay=0.01)
    opt.load_state_dict(load_checkpoint(init, run.device, run.cfg)["optimizer"])

    def step_fn(rng, gen):
        return run.mle_loss(model, rng), 0.0

    history = _loop(
        run,
        "mle_continued",
        model,
        opt,
        step_fn,
        10**9,
        None,
        False,
        log,
        seconds=seconds,
        first_step=run.cfg.pretrain_steps,
        lr_at=lambda step: mle_lr(run.cfg, step),
    )
    if out_dir:
        save_checkpoint(
            os.path.join(out_dir, "mle_continued.pt"), model, opt, history["steps"], "mle_continued", run.cfg
        )
    run.barrier()  # the file exists for every rank before anyone reads it
    return unwrap(model)
