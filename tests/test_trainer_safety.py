"""The reference trainer where users run it: untrusted or broken checkpoints, bad arguments, no torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from reference_training import __main__ as cli  # noqa: E402
from reference_training import train  # noqa: E402
from reference_training.tasks import TASKS  # noqa: E402

SMOKE = ["--preset", "smoke", "--pretrain-steps", "2", "--tune-steps", "1"]


@pytest.fixture(scope="module")
def mle_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("mle")
    assert cli.main(["pretrain", "--out", str(out), *SMOKE]) == 0
    return str(out / "mle.pt")


def _fails(capsys, argv, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m reference_training: error:") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


class Payload:
    """Unpickling this runs ``open(marker, "w")``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("command", ["evaluate", "tune"])
def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, capsys, command):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    torch.save(
        {
            "model": {},
            "optimizer": {},
            "step": 0,
            "stage": "pretrain",
            "config": {},
            "x": Payload(str(marker)),
        },
        evil,
    )
    flag = "--checkpoint" if command == "evaluate" else "--init"
    _fails(capsys, [command, "--out", str(tmp_path / "run"), *SMOKE, flag, str(evil)], str(evil), "unsafe")
    assert not marker.exists()
    with pytest.raises(train.UsageError):
        train.load_checkpoint(str(evil))
    assert not marker.exists()


def test_corrupted_foreign_and_mismatched_checkpoints_get_clear_errors(tmp_path, capsys, mle_checkpoint):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(open(mle_checkpoint, "rb").read()[:1000])
    _fails(capsys, ["evaluate", "--out", str(tmp_path), *SMOKE, "--checkpoint", str(truncated)], "corrupted")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    _fails(
        capsys,
        ["evaluate", "--out", str(tmp_path), *SMOKE, "--checkpoint", str(foreign)],
        "not a reference_training checkpoint",
    )
    _fails(
        capsys,
        ["evaluate", "--out", str(tmp_path), *SMOKE, "--checkpoint", str(tmp_path / "missing.pt")],
        "does not exist",
    )
    _fails(
        capsys,
        ["tune", "--out", str(tmp_path / "t"), *SMOKE, "--task", "captioning", "--init", mle_checkpoint],
        "trained for --task detection, not captioning",
    )
    _fails(
        capsys,
        ["tune", "--out", str(tmp_path / "t"), *SMOKE, "--image-size", "64", "--init", mle_checkpoint],
        "--image-size 32 (not 64)",
    )
    assert not os.path.exists(tmp_path / "t")  # refused before anything was made


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--pretrain-steps", "-5"], "--pretrain-steps must be a positive integer"),
        (["--tune-steps", "0"], "--tune-steps must be a positive integer"),
        (["--samples", "1"], "--samples must be >= 2"),
        (["--temperature", "0"], "--temperature must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--batch-size", "0"], "--batch-size"),
        (["--reward", "f1"], "--reward must be 'recall' or 'map'"),
        (["--image-size", "36"], "--patch-size must be even and divide --image-size 36"),
        (["--threads", "-1"], "--threads"),
        (["--task", "panoptic", "--cell-size", "5"], "--cell-size 5 must divide --image-size 32"),
        (["--task", "segmentation"], "unknown task 'segmentation'; choose one of: " + ", ".join(TASKS)),
        (["--device", "cuda"], "--device cuda"),
        (["--device", "tpu9"], "--device"),
        (["--resume", "--overwrite"], "pass one"),
    ],
)
def test_every_argument_is_checked_before_the_first_step(tmp_path, capsys, flags, needle):
    if flags == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    _fails(capsys, ["demo", "--out", str(out), *SMOKE, *flags], needle)
    assert not out.exists()


def test_a_cpu_only_torch_says_so_for_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    err = _fails(capsys, ["demo", "--out", str(tmp_path / "r"), *SMOKE, "--device", "cuda:0"])
    assert "CPU-only build" in err and "--device cpu" in err


def test_an_existing_run_is_not_overwritten_unless_asked(tmp_path, capsys, mle_checkpoint):
    out = os.path.dirname(mle_checkpoint)
    before = os.path.getmtime(mle_checkpoint)
    _fails(
        capsys, ["pretrain", "--out", out, *SMOKE], "already holds a run (mle.pt", "--overwrite", "--resume"
    )
    assert os.path.getmtime(mle_checkpoint) == before
    # tune writes other files: a tuning run beside its own MLE checkpoint is fine
    assert cli.main(["tune", "--out", out, *SMOKE]) == 0
    _fails(capsys, ["tune", "--out", out, *SMOKE], "tuned.pt")
    assert cli.main(["tune", "--out", out, *SMOKE, "--overwrite"]) == 0


BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
try:
    import reference_training
except ImportError as err:
    print("ImportError:", err)
    sys.exit(0)
sys.exit("imported without torch")
"""


def test_importing_without_torch_names_the_train_extra():
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[train]" in result.stdout and "torch" in result.stdout
