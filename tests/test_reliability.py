"""Rewards where users run them: forked and spawned workers, DataLoader workers, threads,
read-only installs, a chosen kernel cache, and inputs whose values (not sizes) are huge.

Everything that touches process state (fork, start methods, threading layers, the
kernel cache, user ids, memory limits) runs in a fresh interpreter, so a failure
here is a failed assertion, never a hung or killed test process.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One workload per reward family, deterministic; exec'd in this process (expected values)
# and at the top of every child script (observed values).
WORKLOAD = textwrap.dedent("""
    import json, os, sys, warnings
    import numpy as np

    def _detection_batch(seed):
        rng = np.random.default_rng(seed)
        preds, gts = [], []
        for _ in range(6):
            m = int(rng.integers(1, 6))
            xy = rng.uniform(0, 60, (m, 2))
            gt_boxes = np.concatenate([xy, xy + rng.uniform(4, 30, (m, 2))], 1)
            labels = rng.integers(0, 3, m)
            keep = rng.random(m) < 0.8
            jitter = gt_boxes[keep] + np.tile(rng.normal(0, 2, (int(keep.sum()), 2)), 2)
            extra = rng.uniform(0, 80, (2, 4)); extra[:, 2:] = extra[:, :2] + 10
            boxes = np.concatenate([jitter, extra])
            preds.append({"boxes": boxes, "scores": rng.random(len(boxes)),
                          "labels": np.concatenate([labels[keep], rng.integers(0, 3, 2)])})
            gts.append({"boxes": gt_boxes, "labels": labels})
        return preds, gts

    def _panoptic_batch(seed):
        rng = np.random.default_rng(seed)
        gt = np.zeros((3, 12, 12, 2), np.int64)
        gt[:, :, 6:, 0] = 1; gt[:, :6, 6:, 1] = 1; gt[:, 6:, 6:, 1] = 2
        pred = gt.copy()
        pred[:, :4, :, 0] = rng.integers(0, 3, (3, 4, 12))
        return pred, gt

    def compute(seed=0):
        from rewards import captioning, colorization, detection, panoptic
        preds, gts = _detection_batch(seed)
        out = list(detection.map_reward_batch(preds, gts))
        out += list(detection.recall_reward_batch(preds, gts))
        pred_px, gt_px = _panoptic_batch(seed)
        out += list(panoptic.pq_reward_batch(pred_px, gt_px, things=[1, 2], stuffs=[0]))
        refs = [["a cat on a mat", "a cat sitting on a mat"], ["two dogs in the snow", "dogs play"]]
        df = captioning.document_frequencies(refs)
        out += list(captioning.cider_reward_batch(["a cat on the mat", "a dog in snow"], refs, df))
        images = np.random.default_rng(seed).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
        out += list(colorization.colorfulness_batch(images))
        out += list(colorization.colorfulness_reward_batch(images))
        out += list(captioning.bleu_batch(["a cat on the mat", "a dog in snow"], refs))
        out += list(captioning.rouge_l_batch(["a cat on the mat", "a dog in snow"], refs))
        from rewards import masks
        square = masks.from_polygons([[2, 2, 14, 2, 14, 14, 2, 14]], 20, 20)
        shifted = masks.from_polygons([[4, 3, 16, 3, 16, 15, 4, 15]], 20, 20)
        out += masks.iou([square, shifted], [square], [0]).ravel().tolist()
        seg_pred = {"masks": [shifted], "scores": [0.9], "labels": [1]}
        seg_gt = {"masks": [square], "labels": [1]}
        out += list(detection.map_reward_batch([seg_pred], [seg_gt], iou_type="segm"))
        return [float(v) for v in out]

    def colorfulness_only():
        from rewards import colorization
        images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
        return [float(v) for v in colorization.colorfulness_batch(images)]

    def report(**values):
        print("RESULT " + json.dumps(values), flush=True)
""")

_namespace: dict = {}
exec(WORKLOAD, _namespace)


@pytest.fixture(scope="module")
def expected() -> list[float]:
    values = _namespace["compute"]()
    assert values == _namespace["compute"]()  # deterministic, so children must match exactly
    return values


def run_child(
    body: str,
    *,
    env: dict | None = None,
    cwd: Path | str | None = None,
    preexec_fn=None,
    timeout: float = 120,
    workdir: Path | None = None,
) -> dict:
    """Runs WORKLOAD + body as a script in a fresh interpreter; returns what it report()-ed."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="rewards-child-"))
    script = folder / "child.py"
    script.write_text(WORKLOAD + textwrap.dedent(body))
    script.chmod(0o644)
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, **(env or {})},
            cwd=cwd or REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"child hung for {timeout} s; stderr:\n{err.stderr}")
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (
        f"child exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


# ------------------------------------------------------------------ processes


def test_fork_child_after_parent_use(expected):
    got = run_child("""
        before = compute()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, json.dumps(compute()).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        _, status = os.waitpid(pid, 0)
        report(before=before, child=json.loads(data or b"null"), status=status)
    """)
    assert got["status"] == 0, f"forked child died (wait status {got['status']})"
    assert got["before"] == expected
    assert got["child"] == expected


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_after_parent_use(expected, method):
    got = run_child(f"""
        import multiprocessing as mp

        def work(seed):
            return compute(seed)

        if __name__ == "__main__":
            before = compute()
            with mp.get_context({method!r}).Pool(2) as pool:
                results = pool.map(work, [0, 0, 0])
            report(before=before, results=results)
    """)
    assert got["before"] == expected
    assert got["results"] == [expected] * 3


def test_dataloader_workers_after_parent_use(expected):
    pytest.importorskip("torch")
    got = run_child("""
        import torch
        from torch.utils.data import DataLoader, Dataset

        class Rewards(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.tensor(compute(), dtype=torch.float64)

        if __name__ == "__main__":
            before = compute()
            loader = DataLoader(Rewards(), batch_size=None, num_workers=2)
            report(before=before, results=[t.tolist() for t in loader])
    """)
    assert got["before"] == expected
    assert got["results"] == [expected] * 4


# -------------------------------------------------------------------- threads

THREADS = """
    from concurrent.futures import ThreadPoolExecutor
    import numba

    serial = [compute(s) for s in range(3)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(compute, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]))
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region ever ran: the kernels are serial
        layer = None
    report(serial=serial, threaded=threaded, layer=layer)
"""


@pytest.mark.parametrize("threading_layer", [None, "workqueue"])
def test_four_threads_equal_serial(expected, threading_layer):
    env = {"NUMBA_THREADING_LAYER": threading_layer} if threading_layer else {}
    got = run_child(THREADS, env=env)
    assert got["serial"][0] == expected
    assert got["threaded"] == got["serial"] * 4
    # No kernel launches numba's thread pool, so no layer (OpenMP, TBB, workqueue) is ever loaded.
    assert got["layer"] is None


# ---------------------------------------------------------------- kernel cache


def _dispatcher_report() -> str:
    return """
        import importlib, pkgutil, time
        t = time.perf_counter()
        import rewards
        import_s = time.perf_counter() - t
        numba_after_bare_import = "numba" in sys.modules
        import rewards.adapters
        from numba.core.registry import CPUDispatcher
        names = ["captioning", "colorization", "detection", "panoptic"]
        names += [m.name for m in pkgutil.iter_modules(rewards.__path__) if m.name.startswith("_")]
        modules = [importlib.import_module("rewards." + n) for n in names]
        dispatchers = {f"{m.__name__}.{k}": v for m in modules for k, v in vars(m).items()
                       if isinstance(v, CPUDispatcher)}
        compiled = sorted(k for k, d in dispatchers.items() if d.signatures)
        report(numba_after_bare_import=numba_after_bare_import, n=len(dispatchers), compiled=compiled)
    """


def test_import_compiles_nothing():
    got = run_child(_dispatcher_report())
    assert not got["numba_after_bare_import"], "`import rewards` alone should not even load numba"
    assert got["n"] >= 10, "kernel discovery found too few dispatchers: the check would be vacuous"
    assert got["compiled"] == [], f"kernels compiled or loaded at import: {got['compiled']}"


def test_numba_cache_dir_is_honoured():
    cache = Path(tempfile.mkdtemp(prefix="rewards-numba-cache-"))
    try:
        got = run_child(
            """
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values = colorfulness_only()
            report(values=values, warnings=[str(w.message) for w in caught])
        """,
            env={"NUMBA_CACHE_DIR": str(cache)},
        )
        assert got["values"] == _namespace["colorfulness_only"]()
        assert got["warnings"] == []
        index_files = list(cache.rglob("*colorization*.nbi"))
        assert index_files, f"nothing cached under NUMBA_CACHE_DIR; found {list(cache.rglob('*'))}"
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _can_run_as_nobody() -> bool:
    try:
        done = subprocess.run(
            [sys.executable, "-c", "pass"], preexec_fn=_as_nobody, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def _without_file_capabilities() -> None:
    """Root that obeys file permission bits: drop the DAC-override capabilities before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.fixture(scope="module")
def unprivileged():
    """A preexec_fn under which the read-only tree below really is read-only."""
    if os.geteuid() != 0:
        return None
    if _can_run_as_nobody():
        return _as_nobody
    # The interpreter lives where `nobody` cannot read it (e.g. /root/.pyenv): stay root but
    # without the capabilities that let root ignore permission bits.
    try:
        done = subprocess.run(
            [sys.executable, "-c", "pass"],
            preexec_fn=_without_file_capabilities,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot drop root's file capabilities here: {err}")
    if done.returncode != 0:
        pytest.skip("cannot drop root's file capabilities here")
    return _without_file_capabilities


@pytest.fixture
def read_only_install():
    """A copy of the package in a read-only tree, a read-only HOME and a private TMPDIR."""
    root = Path(tempfile.mkdtemp(prefix="rewards-readonly-"))
    try:
        site = root / "site"
        ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc")
        shutil.copytree(REPO / "rewards", site / "rewards", ignore=ignore)
        if (REPO / "adapters").is_dir():  # the repository keeps them beside the package
            shutil.copytree(REPO / "adapters", site / "rewards" / "adapters", ignore=ignore)
        home, tmp, work = root / "home", root / "tmp", root / "work"
        for d in (home, tmp, work):
            d.mkdir()
        for path in [*site.rglob("*"), site, home]:
            mode = 0o555 if path.is_dir() else 0o444
            path.chmod(mode)
        tmp.chmod(0o777)
        work.chmod(0o777)
        root.chmod(0o755)
        env = {
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(site),
            "XDG_CACHE_HOME": str(home / ".cache"),
            # empty = unset for numba; run_child merges os.environ, so a caller's value must be overridden
            "NUMBA_CACHE_DIR": "",
        }
        yield {"root": root, "site": site, "tmp": tmp, "work": work, "env": env}
    finally:
        for path in root.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(stat.S_IRWXU)
        shutil.rmtree(root, ignore_errors=True)


READ_ONLY_CHILD = """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import rewards
        from rewards import captioning, colorization, detection, panoptic  # every kernel module
        import rewards.adapters.box_tokens
        values = colorfulness_only()
    report(file=rewards.__file__, values=values,
           warnings=[(w.category.__name__, str(w.message)) for w in caught])
"""


def _run_read_only(install, unprivileged) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(install["env"])
    # cwd is the read-only tree's sibling so that '' on sys.path cannot find the checkout.
    return run_child(
        READ_ONLY_CHILD, env=env, cwd=install["work"], preexec_fn=unprivileged, workdir=install["work"]
    )


def test_read_only_install_falls_back_to_temp_cache(read_only_install, unprivileged):
    got = _run_read_only(read_only_install, unprivileged)
    assert got["file"].startswith(str(read_only_install["site"])), got["file"]
    assert got["values"] == _namespace["colorfulness_only"]()
    warned = [m for c, m in got["warnings"] if c == "KernelCacheWarning"]
    assert len(warned) == 1, got["warnings"]
    uid = 65534 if unprivileged is _as_nobody else os.geteuid()
    fallback = read_only_install["tmp"] / f"task-rewards-numba-{uid}"
    assert str(fallback) in warned[0]
    assert list(fallback.rglob("*.nbi")), "the fallback directory holds no cached kernel"
    assert not list(read_only_install["site"].rglob("*.nbi"))


def test_fallback_cache_owned_by_another_user_is_not_trusted(read_only_install, unprivileged):
    # In a shared temporary directory another user could pre-create our folder and plant
    # cache files (pickles numba would load): such a folder must never be used.
    if os.geteuid() != 0:
        pytest.skip("planting a folder owned by another user needs root")
    uid = 65534 if unprivileged is _as_nobody else os.geteuid()
    planted = read_only_install["tmp"] / f"task-rewards-numba-{uid}"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, 12345, 12345)
    got = _run_read_only(read_only_install, unprivileged)
    assert got["values"] == _namespace["colorfulness_only"]()
    warned = [m for c, m in got["warnings"] if c == "KernelCacheWarning"]
    assert len(warned) == 1 and "memory" in warned[0], got["warnings"]
    assert not list(planted.rglob("*"))


def test_read_only_install_without_any_writable_cache(read_only_install, unprivileged):
    uid = 65534 if unprivileged is _as_nobody else os.geteuid()
    blocked = read_only_install["tmp"] / f"task-rewards-numba-{uid}"
    blocked.mkdir()
    blocked.chmod(0o555)  # owned by root: the child cannot create the cache there
    got = _run_read_only(read_only_install, unprivileged)
    assert got["values"] == _namespace["colorfulness_only"]()
    warned = [m for c, m in got["warnings"] if c == "KernelCacheWarning"]
    assert len(warned) == 1, got["warnings"]
    assert "memory" in warned[0]
    assert not list(blocked.rglob("*"))


# --------------------------------------------------------------------- memory

MEMORY_CAP = """
    import resource

    def vm_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    def cap_memory(headroom):
        limit = vm_bytes() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
"""


def test_detection_memory_bounded_by_input_size():
    got = run_child(
        textwrap.dedent(MEMORY_CAP)
        + textwrap.dedent("""
        from rewards import detection
        boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 60]]
        pred = {"boxes": boxes + [[0, 0, 10, 10]], "scores": [0.9, 0.8, 0.7, 0.6], "labels": [1, 2, 2, 1]}
        gt = {"boxes": boxes, "labels": [1, 2, 1]}

        def relabel(example, mapping):
            return {**example, "labels": [mapping[v] for v in example["labels"]]}

        small = (detection.recall_reward(pred, gt), detection.map_reward(pred, gt),
                 detection.recall_reward_batch([pred], [gt])[0], detection.map_reward_batch([pred], [gt])[0])
        cap_memory(256 * 2**20)  # a dense table indexed by label would need GBs (1e8) or TiBs (2**40)
        out = {}
        for big in (10**8, 2**40):
            mapping = {1: big, 2: big + 7}
            p, g = relabel(pred, mapping), relabel(gt, mapping)
            out[str(big)] = (detection.recall_reward(p, g), detection.map_reward(p, g),
                             detection.recall_reward_batch([p], [g])[0], detection.map_reward_batch([p], [g])[0])
        report(small=small, big=out)
    """)
    )
    for big, values in got["big"].items():
        assert values == pytest.approx(got["small"], abs=1e-12), big


def test_panoptic_memory_bounded_by_category_values():
    got = run_child(
        textwrap.dedent(MEMORY_CAP)
        + textwrap.dedent("""
        from rewards import panoptic
        gt = np.zeros((4, 4, 2), np.int64); gt[:, 2:, 0] = 1; gt[:, 2:, 1] = 3
        pred = gt.copy(); pred[0, 0] = (1, 5)
        small = panoptic.pq_reward(pred, gt, things=[1], stuffs=[0])
        small_batch = panoptic.pq_reward_batch([pred], [gt], things=[1], stuffs=[0]).tolist()
        big_value = 2**40
        gt_big, pred_big = gt.copy(), pred.copy()
        gt_big[..., 0][gt[..., 0] == 1] = big_value
        pred_big[..., 0][pred[..., 0] == 1] = big_value
        cap_memory(256 * 2**20)  # a dense lookup indexed by category would need 8 TiB
        big = panoptic.pq_reward(pred_big, gt_big, things=[big_value], stuffs=[0])
        big_batch = panoptic.pq_reward_batch([pred_big], [gt_big], things={big_value}, stuffs=[0]).tolist()
        report(small=[small, *small_batch], big=[big, *big_batch])
    """)
    )
    assert got["big"] == pytest.approx(got["small"], abs=1e-12)


def test_panoptic_memory_linear_in_pixels_not_segment_pairs():
    got = run_child(
        textwrap.dedent(MEMORY_CAP)
        + textwrap.dedent("""
        from rewards import panoptic
        warm = np.ones((2, 2, 2), np.int64)
        panoptic.pq_reward(warm, warm, things=[1], stuffs=[])
        # 1000 x 1000, one predicted instance per pixel (noisy early training), 400 GT segments
        # (50 x 50 tiles of one thing class); the prediction gets tile 0 exactly right.
        side, tile = 1000, 50
        yy, xx = np.mgrid[:side, :side]
        gt_map = np.stack([np.ones((side, side), np.int64), (yy // tile) * (side // tile) + xx // tile + 1], -1)
        pred_map = np.stack([np.ones((side, side), np.int64), yy * side + xx + 1], -1)
        pred_map[:tile, :tile, 1] = 0
        del yy, xx
        cap_memory(768 * 2**20)  # a table of 10**6 x 400 segment pairs alone would take GBs
        report(crowded=panoptic.pq_reward(pred_map, gt_map, things=[1], stuffs=[]))
    """),
        timeout=180,
    )
    # One TP of IoU 1, the other 399 GT tiles missed, every other pixel its own FP segment.
    tp, fn, fp = 1, 399, 1000 * 1000 - 50 * 50
    assert got["crowded"] == pytest.approx(1.0 / (tp + 0.5 * fp + 0.5 * fn), rel=1e-12)
