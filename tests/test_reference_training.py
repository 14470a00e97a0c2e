"""The reference trainer: built-in data, grammars, every task's smoke demo (the task contract), exact resume, DDP."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference_training import __main__ as cli  # noqa: E402
from reference_training import sequence, train  # noqa: E402
from reference_training.data import make_scenes, make_splits  # noqa: E402
from reference_training.tasks import TASKS, task_class  # noqa: E402
from reference_training.tasks import detection as det  # noqa: E402


def test_data_is_deterministic_and_boxes_are_exact():
    a_train, a_held = make_splits(20, 5, seed=3, size=48, max_objects=6)
    b_train, _ = make_splits(20, 5, seed=3, size=48, max_objects=6)
    np.testing.assert_array_equal(a_train.images, b_train.images)
    np.testing.assert_array_equal(a_train.boxes, b_train.boxes)
    assert not np.array_equal(a_train.images[:5], a_held.images)
    scenes = make_scenes(30, seed=1, size=40, max_objects=8)
    assert scenes.valid.any(1).all() and (scenes.valid.sum(1) <= 8).all()
    # each box lies on the pixel grid and inside the image
    b = scenes.boxes[scenes.valid]
    np.testing.assert_allclose(b * 40, np.round(b * 40), atol=1e-9)
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all() and (b >= 0).all() and (b <= 1).all()


@pytest.mark.parametrize("order", ["random", "area", "raster"])
def test_object_orders_permute_each_images_boxes_and_keep_padding_last(order):
    from reference_training.data import order_objects, shuffle_objects

    scenes = make_scenes(40, seed=3, size=48, max_objects=6)
    out = order_objects(shuffle_objects(scenes, np.random.default_rng(0)), order)  # as sample_batch
    np.testing.assert_array_equal(out.valid, scenes.valid)  # valid boxes were first and stay first
    np.testing.assert_array_equal(out.images, scenes.images)
    for i in range(len(scenes)):
        n = scenes.valid[i].sum()
        before = sorted(zip(map(tuple, scenes.boxes[i, :n]), scenes.labels[i, :n], scenes.colours[i, :n]))
        after = list(zip(map(tuple, out.boxes[i, :n]), out.labels[i, :n], out.colours[i, :n]))
        assert sorted(after) == before  # a permutation, each box with its label and colour
        b = out.boxes[i, :n]
        if order == "area":
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            assert np.all(np.diff(area) <= 0)
        if order == "raster":
            row = np.floor(b[:, 0] * 16)
            assert np.all((np.diff(row) > 0) | ((np.diff(row) == 0) & (np.diff(b[:, 1]) >= 0)))
    with pytest.raises(ValueError, match="object order"):
        order_objects(scenes, "size")


def test_detection_mle_targets_follow_the_object_order():
    from reference_training.data import order_objects

    cfg = train.config_from("smoke", task="detection", object_order="area")
    task = task_class("detection")(cfg)
    scenes = task.batch(np.random.default_rng(0), 16)
    tokens, mask = task.mle_targets(scenes, np.random.default_rng(1))
    expected, _ = task.grammar.targets(order_objects(scenes, "area"))
    unordered, same_mask = task.grammar.targets(scenes)
    torch.testing.assert_close(tokens, expected, rtol=0, atol=0)
    torch.testing.assert_close(mask, same_mask, rtol=0, atol=0)
    assert not torch.equal(tokens, unordered)
    with pytest.raises(train.UsageError, match="--object-order must be one of"):
        train.check_config(train.config_from("smoke", task="detection", object_order="size"))


def test_sampled_sequences_are_always_well_formed():
    run = train.Run(train.PRESETS["smoke"])
    model = run.new_model()
    tokens, probs = sequence.generate(
        model,
        run.grammar,
        torch.from_numpy(run.train.images[:8]),
        samples=3,
        generator=torch.Generator().manual_seed(0),
    )
    decoded = run.task.codec.decode(tokens.numpy())
    n_boxes = (run.grammar.end_positions(tokens) // 6).numpy()
    in_sequence = np.arange(decoded["valid"].shape[1])[None] < n_boxes[:, None]
    assert (decoded["valid"] <= in_sequence).all()  # only the geometry check can drop a box
    assert ((probs > 0) | ~run.grammar.mask(tokens)).all()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_confidence_while_decoding_equals_the_teacher_forced_confidence(temperature):
    """The head is trained on teacher-forced inputs and read while decoding: both must agree."""
    run = train.Run(train.PRESETS["smoke"])
    model = run.new_model().eval()
    torch.nn.init.normal_(model.confidence[2].weight)  # untrained heads say 0.5 everywhere
    images = torch.from_numpy(run.train.images[:8])
    tokens, probs = sequence.generate(
        model,
        run.grammar,
        images,
        samples=3,
        temperature=temperature,
        generator=torch.Generator().manual_seed(1),
    )
    with torch.no_grad():
        _, confidence = model(
            images, sequence.teacher_inputs(tokens, model.bos), head=run.task.train_head(tokens)
        )
    n_boxes = run.grammar.end_positions(tokens) // 6
    in_sequence = torch.arange(confidence.shape[1])[None] < n_boxes[:, None]
    assert in_sequence.any()
    decoded = probs[:, 5 : 6 * confidence.shape[1] : 6]
    torch.testing.assert_close(
        decoded[in_sequence], torch.sigmoid(confidence)[in_sequence], rtol=1e-4, atol=1e-5
    )
    assert decoded[in_sequence].std() > 0.01  # the features vary between boxes


def test_trimming_after_the_ends_changes_no_loss():
    """MLE and REINFORCE leave out positions after every sequence's end: same log-probs, same
    confidence, same MLE loss as on the full-length sequences."""
    run = train.Run(train.PRESETS["smoke"])
    model = run.new_model().eval()
    torch.nn.init.normal_(model.confidence[2].weight)
    few = np.flatnonzero(run.train.valid.sum(1) < run.cfg.max_objects)[:6]  # ends before the last box
    scenes = run.train.subset(few)
    tokens, mask = run.task.mle_targets(scenes, np.random.default_rng(0))
    trimmed = sequence.trim(run.grammar, tokens)
    assert trimmed.shape[1] < tokens.shape[1]
    images = torch.from_numpy(scenes.images)
    head = run.task.train_head
    with torch.no_grad():
        full_logits, full_conf = model(images, sequence.teacher_inputs(tokens, model.bos), head=head(tokens))
        cut_logits, cut_conf = model(images, sequence.teacher_inputs(trimmed, model.bos), head=head(trimmed))
        in_sequence = (
            torch.arange(full_conf.shape[1])[None] < (run.grammar.end_positions(tokens) // 6)[:, None]
        )
        torch.testing.assert_close(
            sequence.sequence_logprob(run.grammar, cut_logits, trimmed),
            sequence.sequence_logprob(run.grammar, full_logits, tokens),
        )
        assert cut_conf.shape == full_conf.shape
        torch.testing.assert_close(cut_conf[in_sequence], full_conf[in_sequence])
        logp = run.grammar.log_probs(full_logits).gather(-1, tokens[..., None])[..., 0]
        full_mle = -torch.where(mask, logp, 0.0).sum() / mask.sum()
        torch.testing.assert_close(
            sequence.mle_loss(model, run.grammar, scenes.images, tokens, mask), full_mle
        )


def test_samples_of_one_image_share_its_memory_exactly():
    run = train.Run(train.PRESETS["smoke"])
    model = run.new_model().eval()
    images = torch.from_numpy(run.train.images[:4])
    tokens = torch.randint(1, run.task.vocab_size - 1, (12, 10))
    with torch.no_grad():
        memory = model.encode(images)
        stacked = model.decode(tokens, memory)  # 3 sequences per image
        repeated = model.decode(
            tokens, [(k.repeat_interleave(3, 0), v.repeat_interleave(3, 0)) for k, v in memory]
        )
    torch.testing.assert_close(stacked, repeated, rtol=1e-5, atol=1e-5)


def test_token_certainty_reads_the_spread_of_coordinate_distributions():
    grammar = train.Run(train.PRESETS["smoke"]).grammar
    codec, v = grammar.codec, grammar.allowed.shape[1]
    sharp, flat = torch.full((v,), -50.0), torch.zeros(v)
    sharp[codec.coord_offset + 5] = 0.0
    flat[: codec.coord_offset] = flat[codec.class_offset :] = -50.0
    logp = torch.log_softmax(torch.stack([sharp, flat]), -1)
    token = torch.tensor([codec.coord_offset + 5] * 2)
    out = grammar.token_certainty(logp, token, torch.tensor([1, 1]))
    assert out[0, 1] == pytest.approx(0.0, abs=1e-6) and out[1, 1] > 1.0  # spread: sharp vs flat
    assert out[0, 0] == pytest.approx(0.0, abs=1e-6) and out[1, 0] == pytest.approx(
        -np.log(codec.n_bins), abs=1e-4
    )
    assert (out[:, 2] == 0).all()  # not a box start
    start = grammar.token_certainty(logp, token, torch.tensor([0, 0]))
    assert start[0, 2] == pytest.approx(0.0, abs=1e-5)  # log p(not ending): PAD is impossible here


def test_with_confidence_of_swaps_only_the_head_of_a_copy():
    run = train.Run(train.PRESETS["smoke"])
    model, donor = run.new_model(), run.new_model()
    torch.nn.init.normal_(donor.confidence[2].weight)
    torch.nn.init.normal_(donor.head.weight)
    mixed = det.with_confidence_of(model, donor)
    for name, p in mixed.state_dict().items():
        expected = (donor if name.startswith("confidence.") else model).state_dict()[name]
        torch.testing.assert_close(p, expected, rtol=0, atol=0)
    assert (model.confidence[2].weight == 0).all()  # the original keeps its own head


def _read(path):
    return [json.loads(line) for line in open(path)]


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_runs_its_smoke_demo_end_to_end(tmp_path, capsys, task):
    """The task contract: pretrain -> tune -> equal-time control -> evaluate -> summary, log, checkpoints, pictures."""
    cls = task_class(task)
    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--preset", "smoke", "--task", task, "--out", out]) == 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["task"] == task
    for model in ("mle", "tuned", "mle_continued"):
        assert set(cls.metrics) <= set(summary[model])
        for key in cls.metrics:
            assert np.isfinite(summary[model][key])
    head = cls.headline
    assert summary[f"gain_{head}_vs_mle"] == pytest.approx(summary["tuned"][head] - summary["mle"][head])
    assert summary["tune_steps"] == summary["config"]["tune_steps"] and summary["seconds"]["total"] > 0
    stages = {r["stage"] for r in _read(os.path.join(out, "metrics.jsonl"))}
    assert {"pretrain", "tune", "tune_eval", "mle_continued"} <= stages
    for name in (
        "mle.pt",
        "tuned.pt",
        "mle_continued.pt",
        "tuning_curve.png",
        "reward_distribution.png",
        "predictions.png",
    ):
        assert os.path.getsize(os.path.join(out, name)) > 0
    for name in ("mle.pt", "tuned.pt", "mle_continued.pt", "tune_state.pt"):  # safe to load
        assert set(torch.load(os.path.join(out, name), weights_only=True)) >= train.CHECKPOINT_KEYS
    assert f"held-out {head} gain" in capsys.readouterr().out
    if task == "captioning":
        assert os.path.exists(os.path.join(out, "doc_freq_train.npz"))  # computed once, cached
    if task == "detection":
        assert set(summary["ablations"]) == {
            "mle_boxes_tuned_confidence_map",
            "tuned_boxes_untrained_confidence_map",
        }
        assert all(0 <= v <= 1 for v in summary["ablations"].values())
    if task == "panoptic":
        assert set(summary["mle"]) == {"pq", "pq_things", "pq_stuff", "sq", "rq", "pq_reward"}
        assert 0 < summary["ablations"]["ceiling_pq"] < 1
    # A second run into the same directory is refused unless asked, and then starts a new metrics file.
    assert cli.main(["demo", "--preset", "smoke", "--task", task, "--out", out, "--tune-steps", "3"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    if task == "detection":
        assert (
            cli.main(
                [
                    "demo",
                    "--preset",
                    "smoke",
                    "--task",
                    task,
                    "--out",
                    out,
                    "--tune-steps",
                    "3",
                    "--overwrite",
                ]
            )
            == 0
        )
        records = _read(os.path.join(out, "metrics.jsonl"))
        assert [r["step"] for r in records if r["stage"] == "tune"] == [1, 2, 3]


def _params(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize(
    "stage, task", [("pretrain", "detection"), ("tune", "detection"), ("tune", "panoptic")]
)
def test_a_killed_run_resumes_to_the_same_result(tmp_path, stage, task):
    base = ["--preset", "smoke", "--pretrain-steps", "6", "--tune-steps", "5", "--task", task]
    init = str(tmp_path / "init")
    assert cli.main(["pretrain", "--out", init, *base]) == 0
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    extra = ["--init", os.path.join(init, "mle.pt")] if stage == "tune" else []
    assert cli.main([stage, "--out", whole, *base, *extra]) == 0
    assert cli.main([stage, "--out", parts, *base, *extra, "--interrupt-at", "3"]) == 130
    assert cli.main([stage, "--out", parts, *base, *extra, "--resume"]) == 0
    final = "tuned.pt" if stage == "tune" else "mle.pt"
    a, b = _params(os.path.join(whole, final)), _params(os.path.join(parts, final))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.parametrize("command", ["pretrain", "interrupted pretrain", "bad config"])
def test_the_cli_releases_the_process_group_it_joined(tmp_path, monkeypatch, command):
    """A rank that exits with its gloo group alive can abort at interpreter exit (SIGABRT)."""
    import torch.distributed as dist

    def join_one_rank_group(device):
        store = dist.FileStore(str(tmp_path / "store"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        return 0, 1

    monkeypatch.setattr(train, "init_distributed", join_one_rank_group)
    args = ["pretrain", "--out", str(tmp_path / "out"), "--preset", "smoke", "--pretrain-steps", "2"]
    expected = {"pretrain": 0, "interrupted pretrain": 130, "bad config": 2}[command]
    if command == "interrupted pretrain":
        args += ["--interrupt-at", "1"]
    if command == "bad config":
        monkeypatch.setattr(cli, "check_args", _raise_usage_error_after(join_one_rank_group))
    try:
        assert cli.main(args) == expected
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _raise_usage_error_after(join):
    def check_args(args):
        join(None)
        raise train.UsageError("bad")

    return check_args


def test_a_process_group_the_caller_owns_is_left_alone(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        with train.process_group_released():
            pass
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def _torchrun_two_ranks(args: list[str], timeout: float):
    """``torchrun --nproc_per_node=2 ARGS`` on a free loopback port; the finished process."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += ["--master_addr=127.0.0.1", f"--master_port={port}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


RANK_LEAVING_GLOO_WORK_BEHIND = """
import sys, time, torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from reference_training import __main__ as cli, train

with train.process_group_released():
    dist.init_process_group("gloo")
    DistributedDataParallel(torch.nn.Linear(2, 2))  # keeps the group alive past its destruction
    if dist.get_rank() == 0:
        time.sleep(1.0)  # rank 1 is exiting when the data arrives
    tensor = torch.ones(1 << 16)
    dist.broadcast(tensor, 0, async_op=True)
    del tensor  # gloo's worker thread now holds the last reference
cli.exit_process(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_a_torchrun_rank_exits_cleanly_while_gloo_still_holds_tensors(tmp_path, code):
    """A collective that completes while a rank exits aborts it (SIGABRT) unless it skips finalisation."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_LEAVING_GLOO_WORK_BEHIND)
    result = _torchrun_two_ranks([str(script), str(code)], timeout=120)
    assert "terminate called" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == (1 if code else 0), result.stderr[-3000:]
    assert ("exitcode  : 3" in result.stderr) == bool(code)


@pytest.mark.parametrize("task", ["detection", "panoptic"])
def test_torchrun_two_processes_keep_identical_parameters(tmp_path, task):
    """2 ranks on CPU (gloo): each tunes on its own images; DDP keeps the replicas identical."""
    base = ["--preset", "smoke", "--pretrain-steps", "4", "--tune-steps", "3", "--task", task]
    init = str(tmp_path / "init")
    assert cli.main(["pretrain", "--out", init, *base]) == 0
    out = str(tmp_path / "ddp")
    args = ["-m", "reference_training", "tune", "--out", out, *base]
    args += ["--init", os.path.join(init, "mle.pt"), "--threads", "1", "--check-replicas"]
    result = _torchrun_two_ranks(args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas identical across 2 ranks" in result.stdout
    records = _read(os.path.join(out, "metrics.jsonl"))
    assert [r["step"] for r in records if r["stage"] == "tune"] == [1, 2, 3]  # one writer
    assert os.path.exists(os.path.join(out, "tuned.pt"))


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (0.6, 3), (1.4, 3), (2.6, 1), (9.0, 1)])
def test_auto_threads_leave_busy_cores_alone(monkeypatch, load, expected):
    assert 0 <= train.busy_cores() < 10_000  # readable here (Linux), or 0
    monkeypatch.setattr(train, "_DEFAULT_THREADS", 4)
    monkeypatch.setattr(train, "busy_cores", lambda: load)
    assert train.auto_threads() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="the check would run the whole GPU workload")
@pytest.mark.parametrize("python", ["ours", "without the package"])
def test_gpu_check_script_fails_loudly_where_it_cannot_run(tmp_path, python):
    """benchmarks/gpu_check.sh exits non-zero, saying why, without CUDA or without the package."""
    import subprocess
    import sys

    exe = sys.executable
    if python != "ours":
        exe = str(tmp_path / "python")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(exe, 0o755)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        ["bash", os.path.join(root, "benchmarks", "gpu_check.sh")],
        env={**os.environ, "PYTHON": exe, "OUT": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    expected = "sees no CUDA device" if python == "ours" else "cannot import rewards.adapters"
    assert expected in done.stderr
