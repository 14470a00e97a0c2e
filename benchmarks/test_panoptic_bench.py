"""Panoptic: pq_eval / pq_reward_batch vs the numpy panopticapi recipe and torchmetrics; PNG decoding; the CLI.

Workloads of issues 3 and 14: 640x480 int32 maps with ~20 segments each;
pq_eval over 500 images (50 distinct scenes, each 10 times: the list holds
references, so memory stays ~250 MB); the CLI end to end from PNG folders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest

from rewards import _png, panoptic

THINGS, STUFFS = set(range(1, 9)), set(range(20, 26))
OFFSET = 256 * 256 * 256


def scene(rng, h=480, w=640, n_segments=20):
    gt = np.zeros((h, w, 2), np.int32)
    gt[..., 0] = 20
    yy, xx = np.mgrid[:h, :w]
    for k in range(n_segments):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(20, 120, size=2)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        if k < 5:
            gt[mask] = (rng.choice(sorted(STUFFS)), 0)
        else:
            gt[mask] = (rng.choice(sorted(THINGS)), k)
    pred = gt.copy()
    pred[:, :-3] = gt[:, 3:]  # shifted prediction
    for _ in range(5):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        pred[cy : cy + 60, cx : cx + 60] = (rng.choice(sorted(THINGS)), 99)
    return pred, gt


def segment_ids(img, things, cats):
    """(H, W, 2) -> panopticapi id map: category * 4096 + instance (0 for stuff) + 1; 0 = VOID."""
    lut = np.zeros(max(cats) + 1, np.int64)  # 0: VOID, 1: stuff, 2: thing (small ids in this workload)
    lut[list(cats)] = 1
    lut[list(things)] = 2
    cat = img[..., 0].astype(np.int64)
    kind = lut[cat]
    return np.where(kind > 0, cat * 4096 + np.where(kind == 2, img[..., 1], 0) + 1, 0)


def numpy_recipe_stats(pred, gt, things, stuffs, stat):
    """panopticapi's pq_compute_single_core on arrays, lean: one np.unique over gt * OFFSET + pred
    (areas follow from the pair counts), then its rules."""
    g, p = segment_ids(gt, things, things | stuffs), segment_ids(pred, things, things | stuffs)
    pairs, counts = np.unique(g.astype(np.uint64) * OFFSET + p.astype(np.uint64), return_counts=True)
    gp = {(int(a // OFFSET), int(a % OFFSET)): int(n) for a, n in zip(pairs, counts)}
    g_area, p_area = defaultdict(int), defaultdict(int)
    for (a, b), n in gp.items():
        g_area[a] += n
        p_area[b] += n
    gm, pm = set(), set()
    for (a, b), n in gp.items():
        if a == 0 or b == 0 or (a - 1) // 4096 != (b - 1) // 4096:
            continue
        iou = n / (p_area[b] + g_area[a] - n - gp.get((0, b), 0))
        if iou > 0.5:
            s = stat[(a - 1) // 4096]
            s[0] += 1
            s[3] += iou
            gm.add(a)
            pm.add(b)
    for a in g_area:
        if a and a not in gm:
            stat[(a - 1) // 4096][2] += 1
    for b in p_area:
        if b and b not in pm and gp.get((0, b), 0) / p_area[b] <= 0.5:
            stat[(b - 1) // 4096][1] += 1


def numpy_recipe_eval(preds, gts, things, stuffs):
    stat = defaultdict(lambda: [0, 0, 0, 0.0])
    for p, g in zip(preds, gts):
        numpy_recipe_stats(p, g, things, stuffs, stat)
    pqs = [s[3] / (s[0] + 0.5 * s[1] + 0.5 * s[2]) for s in stat.values() if s[0] + s[1] + s[2]]
    return float(np.mean(pqs))


rng = np.random.default_rng(0)
SCENES = [scene(rng) for _ in range(50)]
PREDS = [SCENES[i % 50][0] for i in range(500)]
GTS = [SCENES[i % 50][1] for i in range(500)]
STACKED_P = np.stack(PREDS[:64])
STACKED_G = np.stack(GTS[:64])


def test_numpy_recipe_agrees_with_ours():
    ours = panoptic.pq_eval(PREDS[:6], GTS[:6], things=THINGS, stuffs=STUFFS).all.pq
    assert ours == pytest.approx(numpy_recipe_eval(PREDS[:6], GTS[:6], THINGS, STUFFS), abs=1e-12)


def test_pq_eval_ours_500(benchmark, recorder):
    panoptic.pq_eval(PREDS[:1], GTS[:1], things=THINGS, stuffs=STUFFS)
    benchmark.pedantic(
        panoptic.pq_eval, args=(PREDS, GTS), kwargs=dict(things=THINGS, stuffs=STUFFS), rounds=5, iterations=1
    )
    recorder(benchmark, "pq_eval 500 images 640x480", "ours pq_eval", len(PREDS))


def test_pq_eval_numpy_recipe(benchmark, recorder):
    benchmark.pedantic(numpy_recipe_eval, args=(PREDS[:25], GTS[:25], THINGS, STUFFS), rounds=3, iterations=1)
    recorder(benchmark, "pq_eval 500 images 640x480", "numpy panopticapi recipe", 25)


def test_pq_eval_torchmetrics(benchmark, recorder):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.detection")
    p, g = torch.as_tensor(np.stack(PREDS[:2])), torch.as_tensor(np.stack(GTS[:2]))

    def run():
        metric = tm.PanopticQuality(things=THINGS, stuffs=STUFFS)
        metric.update(p, g)
        return metric.compute()

    benchmark.pedantic(run, rounds=1, iterations=1)
    recorder(benchmark, "pq_eval 500 images 640x480", "torchmetrics PanopticQuality", 2)


def test_pq_reward_batch_ours(benchmark, recorder):
    panoptic.pq_reward_batch(STACKED_P[:1], STACKED_G[:1], things=THINGS, stuffs=STUFFS)
    benchmark(panoptic.pq_reward_batch, STACKED_P, STACKED_G, things=THINGS, stuffs=STUFFS)
    recorder(benchmark, "pq_reward_batch 64 x 640x480", "ours pq_reward_batch", len(STACKED_P))


def test_pq_reward_numpy_recipe(benchmark, recorder):
    def run():
        for p, g in zip(PREDS[:16], GTS[:16]):
            numpy_recipe_eval([p], [g], THINGS, STUFFS)

    benchmark.pedantic(run, rounds=3, iterations=1)
    recorder(benchmark, "pq_reward_batch 64 x 640x480", "numpy panopticapi recipe", 16)


# ---------------------------------------------------------------- COCO files: PNG decoding and the CLI


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory):
    """50 GT + 50 prediction PNGs (640x480) with their jsons, from the scenes above."""
    root = tmp_path_factory.mktemp("coco_panoptic")
    categories = [{"id": c, "name": str(c), "isthing": int(c in THINGS)} for c in sorted(THINGS | STUFFS)]
    for name, images in (("gt", GTS[:50]), ("pred", PREDS[:50])):
        (root / name).mkdir()
        annotations = []
        for i, img in enumerate(images):
            ids = img[..., 0].astype(np.int64) * 256 + np.where(
                np.isin(img[..., 0], list(THINGS)), img[..., 1], 0
            )
            uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
            seg = inverse.reshape(ids.shape) + 1
            _png.write_rgb(root / name / f"{i}.png", _png.ids_to_rgb(seg))
            info = [
                {"id": k + 1, "category_id": int(u // 256), "iscrowd": 0, "area": int(n)}
                for k, (u, n) in enumerate(zip(uniq, counts))
            ]
            annotations.append({"image_id": i, "file_name": f"{i}.png", "segments_info": info})
        (root / f"{name}.json").write_text(json.dumps({"annotations": annotations, "categories": categories}))
    return root


def test_png_decode_ours(benchmark, recorder, coco_folder):
    files = sorted((coco_folder / "gt").glob("*.png"))
    _png.read_ids(files[0])
    benchmark.pedantic(lambda: [_png.read_ids(f) for f in files], rounds=3, iterations=1)
    recorder(benchmark, "PNG decode 640x480 to ids", "ours _png.read_ids", len(files))


def test_png_decode_pillow(benchmark, recorder, coco_folder):
    image = pytest.importorskip("PIL.Image")
    files = sorted((coco_folder / "gt").glob("*.png"))

    def read(f):  # panopticapi: np.array(Image.open(f), dtype=np.uint32), then rgb2id
        rgb = np.array(image.open(f), dtype=np.uint32)
        return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]

    benchmark.pedantic(lambda: [read(f) for f in files], rounds=3, iterations=1)
    recorder(benchmark, "PNG decode 640x480 to ids", "Pillow + rgb2id (panopticapi)", len(files))


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_end_to_end(benchmark, recorder, coco_folder, workers):
    """``python -m rewards.panoptic`` as a process on 50 PNG pairs; prints the breakdown."""
    args = [
        sys.executable,
        "-m",
        "rewards.panoptic",
        "--gt-json",
        coco_folder / "gt.json",
        "--pred-json",
        coco_folder / "pred.json",
        "--workers",
        str(workers),
    ]
    subprocess.run(args, check=True, capture_output=True)  # warm numba's cache
    last = {}

    def run():
        t = time.perf_counter()
        out = subprocess.run(args, check=True, capture_output=True, text=True)
        last["wall"] = time.perf_counter() - t
        last["stdout"] = out.stdout

    benchmark.pedantic(run, rounds=3, iterations=1)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import rewards.panoptic"], check=True)
    startup = time.perf_counter() - t
    m = re.search(
        r"Time elapsed: ([\d.]+) seconds \(kernel load ([\d.]+) s; PNG decoding ([\d.]+) s, scoring ([\d.]+) s",
        last["stdout"],
    )
    in_process, load, decode, score = map(float, m.groups())
    benchmark.extra_info.update(
        wall_s=last["wall"],
        startup_s=startup,
        in_process_s=in_process,
        kernel_load_s=load,
        png_decoding_s=decode,
        scoring_s=score,
        workers=workers,
    )
    print(
        f"\nCLI 50 PNG pairs, {workers} worker(s): wall {last['wall']:.2f} s = start-up+imports {startup:.2f} s "
        f"+ evaluation {in_process:.2f} s (kernel cache load {load:.2f} s; PNG decoding {decode:.2f} s, "
        f"scoring {score:.2f} s summed over workers)"
    )
    recorder(benchmark, "CLI 50 PNG pairs 640x480", f"ours CLI workers={workers}", 50)
    assert os.path.exists(coco_folder / "gt.json")
