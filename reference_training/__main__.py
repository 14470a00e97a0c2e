"""python -m reference_training {demo,pretrain,tune,evaluate}: the whole recipe, end to end.

demo: MLE pretraining, then reward tuning from that checkpoint, and the fair
control (plain MLE continued from the same checkpoint for the same
wall-clock time as the tuning); writes summary.json, metrics.jsonl,
checkpoints and plots under --out, and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, fields
from typing import NoReturn

from reference_training import train
from reference_training.data import OBJECT_ORDERS
from reference_training.tasks import TASKS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m reference_training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=["demo", "pretrain", "tune", "evaluate"], help="what to run")
    p.add_argument("--task", help=f"one of: {', '.join(TASKS)} (default detection)")
    p.add_argument(
        "--preset",
        default="default",
        choices=sorted(train.PRESETS),
        help="configuration preset (flags override it)",
    )
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--init", help="tune: MLE checkpoint to start from (default OUT/mle.pt)")
    p.add_argument("--checkpoint", help="evaluate: checkpoint to evaluate (default OUT/tuned.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (refused otherwise)"
    )
    p.add_argument("--reward", help="tuning reward: the paper's recall reward or per-example mAP")
    p.add_argument(
        "--samples", type=int, help="samples per image in tuning (leave-one-out baseline over them)"
    )
    p.add_argument("--temperature", type=float, help="sampling temperature in tuning")
    p.add_argument("--pretrain-steps", type=int, help="MLE optimizer steps")
    p.add_argument("--tune-steps", type=int, help="reward-tuning optimizer steps")
    p.add_argument("--batch-size", type=int, help="images per MLE step")
    p.add_argument("--tune-batch", type=int, help="images per tuning step (x samples sequences)")
    p.add_argument("--lr", type=float, help="MLE learning rate")
    p.add_argument("--tune-lr", type=float, help="tuning learning rate")
    p.add_argument(
        "--confidence-weight", type=float, help="weight of the IoU supervision of the confidence head"
    )
    p.add_argument("--confidence-lr", type=float, help="learning rate of the confidence head in tuning")
    p.add_argument(
        "--object-order",
        choices=OBJECT_ORDERS,
        help="detection: box order of MLE targets (random: Pix2seq's; area: largest first; raster: rows)",
    )
    p.add_argument("--duplicate-weight", type=float, help="recall reward: penalty weight of duplicate boxes")
    p.add_argument("--cell-size", type=int, help="panoptic: pixels per side of a token cell")
    p.add_argument("--image-size", type=int, help="side of the generated images in pixels")
    p.add_argument("--max-objects", type=int, help="shapes per generated image at most")
    p.add_argument("--n-train", type=int, help="generated training images")
    p.add_argument("--n-heldout", type=int, help="generated held-out images (evaluation)")
    p.add_argument("--eval-every", type=int, help="tuning steps between evaluations (tuning curve)")
    p.add_argument("--eval-images", type=int, help="held-out images of the tuning curve's evaluations")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (--resume restarts there)")
    p.add_argument("--seed", type=int, help="seed for data, init and sampling")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (0: the cores not busy when the run starts)"
    )
    p.add_argument(
        "--device", help="torch device: auto (cuda when available, else cpu; the default), cpu, cuda, cuda:1"
    )
    p.add_argument(
        "--check-replicas",
        action="store_true",
        help="after training, verify the parameters agree across ranks",
    )
    p.add_argument("--interrupt-at", type=int, help=argparse.SUPPRESS)  # tests: simulate a kill
    return p.parse_args(argv)


# Files each command writes into --out: a second run into the same directory must be asked for.
OUTPUTS = {
    "demo": ("mle.pt", "tuned.pt", "mle_continued.pt", "summary.json", "pretrain_state.pt", "tune_state.pt"),
    "pretrain": ("mle.pt", "pretrain_state.pt"),
    "tune": ("tuned.pt", "tune_state.pt"),
    "evaluate": (),
}


def config(args) -> train.Config:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(train.Config)}
    return train.config_from(args.preset, **overrides)


def check_args(args) -> train.Config:
    """Every argument and input file checked before any data is made or any step runs."""
    cfg = config(args)
    train.check_config(cfg)
    if args.resume and args.overwrite:
        raise train.UsageError("--resume continues the run in --out and --overwrite replaces it: pass one")
    existing = [name for name in OUTPUTS[args.command] if os.path.exists(os.path.join(args.out, name))]
    if existing and not (args.resume or args.overwrite):
        raise train.UsageError(
            f"--out {args.out} already holds a run ({', '.join(existing)}); pass --overwrite to "
            "replace it, --resume to continue it, or another --out"
        )
    if args.command == "tune" and not (args.resume and os.path.exists(os.path.join(args.out, "tuned.pt"))):
        train.load_checkpoint(args.init or os.path.join(args.out, "mle.pt"), cfg=cfg)
    if args.command == "evaluate":
        train.load_checkpoint(args.checkpoint or os.path.join(args.out, "tuned.pt"), cfg=cfg)
    if args.interrupt_at is not None and args.interrupt_at < 1:
        raise train.UsageError("--interrupt-at must be >= 1")
    return cfg


def print_table(results: dict, metrics: tuple) -> None:
    print("\n" + "model".ljust(16) + "".join(m.rjust(18) for m in metrics))
    for name, values in results.items():
        print(name.ljust(16) + "".join(f"{values[m]:18.4f}" for m in metrics))


def demo(args, cfg: train.Config) -> dict:
    os.makedirs(args.out, exist_ok=True)
    run = train.Run(cfg, args.out)
    task = run.task
    log = train.MetricsLog(args.out, run.is_main, fresh=not args.resume)
    seconds = {}
    t0 = time.perf_counter()
    mle_path = os.path.join(args.out, "mle.pt")
    if not (args.resume and os.path.exists(mle_path)):
        train.pretrain(run, args.out, resume=args.resume, log=log, interrupt_at=args.interrupt_at)
    seconds["pretrain"] = time.perf_counter() - t0
    mle_model = train.load_model(mle_path, run)
    mle, mle_rewards = run.evaluate(mle_model)

    t1 = time.perf_counter()
    tuned_model, history = train.tune(run, mle_path, args.out, resume=args.resume, log=log)
    seconds["tune"] = time.perf_counter() - t1
    tuned, tuned_rewards = run.evaluate(tuned_model)

    t2 = time.perf_counter()
    control_model = train.continue_mle(run, mle_path, history["seconds"], args.out, log=log)
    seconds["mle_continued"] = time.perf_counter() - t2
    control, control_rewards = run.evaluate(control_model)
    models = {"MLE": mle_model, "MLE continued": control_model, "tuned": tuned_model}
    ablations = task.ablations(lambda model: run.evaluate(model)[0], models)
    seconds["total"] = time.perf_counter() - t0

    if not run.is_main:
        return {}
    import torch

    from reference_training import plots

    head = task.headline
    plots.tuning_curve(
        history,
        {
            "MLE checkpoint": (mle[head], mle_rewards.mean()),
            "MLE continued (same time)": (control[head], control_rewards.mean()),
        },
        head,
        task.reward_name,
        os.path.join(args.out, "tuning_curve.png"),
    )
    plots.reward_distributions(
        {"MLE": mle_rewards, "MLE continued": control_rewards, "tuned": tuned_rewards},
        task.reward_name,
        os.path.join(args.out, "reward_distribution.png"),
    )
    task.picture(models, run.heldout, os.path.join(args.out, "predictions.png"))

    summary = {
        "task": cfg.task,
        "mle": mle,
        "tuned": tuned,
        "mle_continued": control,
        f"gain_{head}_vs_mle": tuned[head] - mle[head],
        f"gain_{head}_vs_mle_continued": tuned[head] - control[head],
        "ablations": ablations,
        "pretrain_steps": cfg.pretrain_steps,
        "tune_steps": history["steps"],
        "mle_continued_steps": control_steps(args.out),
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "config": asdict(cfg),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_table({"MLE": mle, "MLE continued": control, "tuned": tuned}, task.metrics)
    scale, unit = task.headline_scale
    print(
        f"\nheld-out {head} gain: {scale * summary[f'gain_{head}_vs_mle']:+.2f}{unit} vs MLE, "
        f"{scale * summary[f'gain_{head}_vs_mle_continued']:+.2f}{unit} vs MLE continued; "
        f"{seconds['total']:.0f} s in all ({summary['threads']} torch threads). Outputs in {args.out}/"
    )
    for name, value in ablations.items():
        print(f"ablation {name}: {value:.4f}")
    return summary


def check_replicas(run, model) -> None:
    """Raises unless every rank holds exactly rank 0's parameters."""
    import torch
    import torch.distributed as dist

    if run.world == 1:
        return
    for name, p in model.state_dict().items():
        ref = p.detach().clone()
        dist.broadcast(ref, 0)
        if not torch.equal(ref, p):
            raise RuntimeError(f"rank {run.rank}: parameter {name} differs from rank 0")
    if run.is_main:
        print(f"replicas identical across {run.world} ranks")


def control_steps(out_dir: str) -> int:
    return int(train.load_checkpoint(os.path.join(out_dir, "mle_continued.pt"))["step"])


def run_command(args) -> None:
    """One parsed command: demo, pretrain, tune or evaluate."""
    cfg = check_args(args)
    if args.command == "demo":
        demo(args, cfg)
    elif args.command == "pretrain":
        os.makedirs(args.out, exist_ok=True)
        run = train.Run(cfg, args.out)
        model = train.pretrain(run, args.out, resume=args.resume, interrupt_at=args.interrupt_at)
        if run.is_main:
            print_table({"MLE": run.evaluate(model)[0]}, run.task.metrics)
    elif args.command == "tune":
        os.makedirs(args.out, exist_ok=True)
        run = train.Run(cfg, args.out)
        init = args.init or os.path.join(args.out, "mle.pt")
        model, _ = train.tune(run, init, args.out, resume=args.resume, interrupt_at=args.interrupt_at)
        if args.check_replicas:
            check_replicas(run, model)
        if run.is_main:
            print_table({"tuned": run.evaluate(model)[0]}, run.task.metrics)
    else:
        run = train.Run(cfg, args.out)
        path = args.checkpoint or os.path.join(args.out, "tuned.pt")
        metrics, _ = run.evaluate(train.load_model(path, run))
        print_table({os.path.basename(path): metrics}, run.task.metrics)
        print(json.dumps(metrics, indent=2))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with train.process_group_released():  # under torchrun: no rank exits holding its group
            run_command(args)
    except train.UsageError as err:
        print(f"python -m reference_training: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"\nstopped: {err}. Rerun with --resume to continue.", file=sys.stderr)
        return 130
    return 0


def exit_process(code: int) -> NoReturn:
    """Ends the process with ``code``; a torchrun rank skips the interpreter's finalisation.

    DDP keeps a gloo process group alive past ``destroy_process_group()`` (torch 2.13
    holds references to it), so gloo's worker threads can still be releasing a finished
    collective's tensors while the interpreter finalises. Taking the GIL then ends the
    thread inside a noexcept destructor and the rank aborts (SIGABRT, "terminate called
    without an active exception"), failing a run whose work was all done. By this point
    every collective has been waited for and every file closed: nothing is lost.
    """
    if train.launched_world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
