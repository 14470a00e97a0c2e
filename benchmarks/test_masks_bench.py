"""Instance masks: rewards.masks vs pycocotools.mask and faster-coco-eval's mask API.

Workloads (issue 18): mask IoU of ~20 GT x 100 detections per 640x480 image
(compressed RLE dicts, as COCO results hold them, 10% crowd GT); and COCO
polygon -> RLE conversion (annToRLE: rasterise, merge the parts).

First-call compile time of the kernels (a fresh process, empty numba cache):
``python benchmarks/test_masks_bench.py``. Ratios robust to a busy machine (ours and the
references in turn, best of 30 each): ``python benchmarks/test_masks_bench.py --ratios``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rewards import masks

H, W = 480, 640
N_IMAGES = 8
N_GT, N_DT = 20, 100


def polygon(rng, cx, cy, rx, ry, k=20):
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = rng.uniform(0.7, 1.0, k)
    return np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1).ravel().tolist()


def coco_like_image(rng):
    """~20 GT polygon objects (some in two parts) and 100 detections around them."""
    gts = []
    for _ in range(N_GT):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        rx, ry = rng.uniform(8, 120, 2)
        parts = [polygon(rng, cx, cy, rx, ry)]
        if rng.random() < 0.15:
            parts.append(polygon(rng, cx + rx, cy, rx / 2, ry / 2))
        gts.append(parts)
    dts = []
    for _ in range(N_DT):
        g = gts[rng.integers(N_GT)][0]
        xy = (
            np.asarray(g).reshape(-1, 2) * rng.uniform(0.8, 1.2)
            + rng.normal(0, 6, 2)
            + rng.normal(0, 2, (len(g) // 2, 2))
        )
        dts.append([xy.ravel().tolist()])
    gt_rles = [masks.from_polygons(p, H, W) for p in gts]
    dt_rles = [masks.from_polygons(p, H, W) for p in dts]
    crowd = (rng.random(N_GT) < 0.1).astype(np.uint8).tolist()
    return gts, gt_rles, dt_rles, crowd


rng = np.random.default_rng(0)
IMAGES = [coco_like_image(rng) for _ in range(N_IMAGES)]
POLYGON_OBJECTS = [parts for image in IMAGES for parts in image[0]]  # 160 objects


def _ours_iou():
    return [masks.iou(dt, gt, crowd) for _, gt, dt, crowd in IMAGES]


def _ours_iou_packed(packed):
    return [masks._iou_blocks(d, g, *index) for d, g, index in packed]


def _pycocotools_iou():
    from pycocotools import mask as M

    return [M.iou(dt, gt, crowd) for _, gt, dt, crowd in IMAGES]


def _faster_iou():
    from faster_coco_eval.core import mask as F

    return [F.iou(dt, gt, crowd) for _, gt, dt, crowd in IMAGES]


def test_references_agree_with_ours():
    from faster_coco_eval.core import mask as F
    from pycocotools import mask as M

    ours = _ours_iou()
    for o, r, f in zip(ours, _pycocotools_iou(), _faster_iou()):
        np.testing.assert_array_equal(o, r)
        np.testing.assert_array_equal(o, np.asarray(f))
    for parts in POLYGON_OBJECTS[:20]:
        ref = M.merge(M.frPyObjects(parts, H, W))
        assert masks.from_polygons(parts, H, W)["counts"] == ref["counts"]
        assert masks.from_polygons(parts, H, W)["counts"] == F.merge(F.frPyObjects(parts, H, W))["counts"]


WORKLOAD_IOU = f"mask iou {N_GT} gt x {N_DT} dt 640x480"


def test_iou_ours(benchmark, recorder):
    _ours_iou()
    benchmark(_ours_iou)
    recorder(benchmark, WORKLOAD_IOU, "ours masks.iou (RLE dicts)", N_IMAGES)


def test_iou_ours_packed(benchmark, recorder):
    """The evaluation's path: masks packed once, then only the IoU kernel per image."""
    packed = []
    for _, gt, dt, crowd in IMAGES:
        d = masks._pack(dt, str)
        g = masks._pack(gt, str)
        one = np.zeros(1, np.int64)
        index = (
            np.arange(N_DT),
            one,
            one + N_DT,
            np.arange(N_GT),
            one,
            one + N_GT,
            np.array(crowd, np.uint8),
        )
        packed.append((d, g, index))
    _ours_iou_packed(packed)
    benchmark(_ours_iou_packed, packed)
    recorder(benchmark, WORKLOAD_IOU, "ours _iou_blocks (packed once)", N_IMAGES)


def test_iou_pycocotools(benchmark, recorder):
    pytest.importorskip("pycocotools")
    benchmark(_pycocotools_iou)
    recorder(benchmark, WORKLOAD_IOU, "pycocotools.mask.iou", N_IMAGES)


def test_iou_faster_coco_eval(benchmark, recorder):
    pytest.importorskip("faster_coco_eval")
    benchmark(_faster_iou)
    recorder(benchmark, WORKLOAD_IOU, "faster-coco-eval mask.iou", N_IMAGES)


WORKLOAD_POLY = "polygon -> RLE (annToRLE), 640x480"


def test_polygons_ours_batch(benchmark, recorder):
    """All objects in one kernel call (how a COCO file is loaded)."""
    n = len(POLYGON_OBJECTS)

    def run():
        return masks._to_rles(masks._pack(POLYGON_OBJECTS, str, [H] * n, [W] * n))

    run()
    benchmark(run)
    recorder(benchmark, WORKLOAD_POLY, "ours _pack + _to_rles (batch)", n)


def test_polygons_ours_per_object(benchmark, recorder):
    run = lambda: [masks.from_polygons(p, H, W) for p in POLYGON_OBJECTS]  # noqa: E731
    run()
    benchmark(run)
    recorder(benchmark, WORKLOAD_POLY, "ours from_polygons (per object)", len(POLYGON_OBJECTS))


def test_polygons_pycocotools(benchmark, recorder):
    M = pytest.importorskip("pycocotools.mask")
    benchmark(lambda: [M.merge(M.frPyObjects(p, H, W)) for p in POLYGON_OBJECTS])
    recorder(benchmark, WORKLOAD_POLY, "pycocotools frPyObjects+merge", len(POLYGON_OBJECTS))


def test_polygons_faster_coco_eval(benchmark, recorder):
    pytest.importorskip("faster_coco_eval")
    from faster_coco_eval.core import mask as F

    benchmark(lambda: [F.merge(F.frPyObjects(p, H, W)) for p in POLYGON_OBJECTS])
    recorder(benchmark, WORKLOAD_POLY, "faster-coco-eval frPyObjects+merge", len(POLYGON_OBJECTS))


# First-call cost: each entry point in a fresh interpreter with an empty numba cache (cold), then
# with the cache it left (warm). Import time excluded; numba's own one-off start-up in a process
# (~0.3 s, paid by any first kernel call) is paid in the setup by a kernel of another family.
_WARM_NUMBA = "from rewards import _mask_kernels as K; import numpy as np; K._first_ending_after(np.zeros(1, np.uint32), 0, 1, 0); "
COMPILE_FAMILIES = {
    "masks iou (compressed RLE)": _WARM_NUMBA
    + "from rewards import masks; r={'size': [4, 4], 'counts': b'01400000'}; f=lambda: masks.iou([r], [r], [0])",
    "masks from_polygons": _WARM_NUMBA
    + "from rewards import masks; f=lambda: masks.from_polygons([[0, 0, 3, 0, 3, 3]], 4, 4)",
    "masks COCO batch (_pack polygons)": _WARM_NUMBA
    + "from rewards import masks; f=lambda: masks._pack([[[0, 0, 3, 0, 3, 3]]], str, [4], [4])",
    "masks encode+decode (dense)": _WARM_NUMBA
    + "from rewards import masks; f=lambda: masks.decode(masks.encode(np.eye(4, dtype=bool)))",
}
_SNIPPET = (
    "{setup}\nimport time\nt = time.perf_counter(); c = time.process_time(); f()\n"
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def _first_call(setup: str, cache: str) -> tuple[float, float]:
    """Wall and CPU seconds of the first call (CPU time is what a busy machine does not inflate)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, "-c", _SNIPPET.format(setup=setup)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def interleaved_ratios(repeats: int = 30) -> None:
    """Ours and the references timed in turn, best of ``repeats`` each: ratios that hold on a busy
    machine (pytest-benchmark's medians swing with other processes' load)."""
    import time

    from faster_coco_eval.core import mask as F
    from pycocotools import mask as M

    n = len(POLYGON_OBJECTS)
    packed = [
        (masks._pack(dt, str), masks._pack(gt, str), np.array(crowd, np.uint8)) for _, gt, dt, crowd in IMAGES
    ]
    one = np.zeros(1, np.int64)
    blocks = (np.arange(N_DT), one, one + N_DT, np.arange(N_GT), one, one + N_GT)
    cases = {
        WORKLOAD_IOU: {
            "ours _iou_blocks (packed once)": lambda: [
                masks._iou_blocks(d, g, *blocks, c) for d, g, c in packed
            ],
            "ours masks.iou (RLE dicts)": _ours_iou,
            "pycocotools.mask.iou": _pycocotools_iou,
            "faster-coco-eval mask.iou": _faster_iou,
        },
        WORKLOAD_POLY: {
            "ours _pack + _to_rles (batch)": lambda: masks._to_rles(
                masks._pack(POLYGON_OBJECTS, str, [H] * n, [W] * n)
            ),
            "ours from_polygons (per object)": lambda: [
                masks.from_polygons(p, H, W) for p in POLYGON_OBJECTS
            ],
            "pycocotools frPyObjects+merge": lambda: [
                M.merge(M.frPyObjects(p, H, W)) for p in POLYGON_OBJECTS
            ],
            "faster-coco-eval frPyObjects+merge": lambda: [
                F.merge(F.frPyObjects(p, H, W)) for p in POLYGON_OBJECTS
            ],
        },
    }
    items = {WORKLOAD_IOU: N_IMAGES, WORKLOAD_POLY: n}
    for workload, fns in cases.items():
        best = dict.fromkeys(fns, float("inf"))
        for f in fns.values():
            f()
        for _ in range(repeats):
            for name, f in fns.items():
                t = time.perf_counter()
                f()
                best[name] = min(best[name], time.perf_counter() - t)
        for name, t in best.items():
            print(f"{workload:36s} {name:36s} {t / items[workload] * 1e6:10.1f} us/item")
        for o in (k for k in fns if k.startswith("ours")):
            for r in (k for k in fns if not k.startswith("ours")):
                print(f"{workload:36s} {o} vs {r}: {best[r] / best[o]:.1f}x")


if __name__ == "__main__":
    if "--ratios" in sys.argv:
        interleaved_ratios()
        sys.exit()
    print(f"{'kernel family':32s} {'cold compile wall/cpu (s)':>26s} {'cache load wall/cpu (s)':>24s}")
    for name, setup in COMPILE_FAMILIES.items():
        with tempfile.TemporaryDirectory() as cache:
            cold = _first_call(setup, cache)
            warm = _first_call(setup, cache)
        print(f"{name:32s} {cold[0]:13.2f} / {cold[1]:5.2f} {warm[0]:15.3f} / {warm[1]:5.3f}")
