"""Panoptic: pq_reward_batch vs the plain numpy np.unique recipe and torchmetrics.

Workload of issue 3: 64 images of 640x480 with ~20 segments each.
"""

from __future__ import annotations

import numpy as np
import pytest

from rewards import panoptic

THINGS, STUFFS = set(range(1, 9)), set(range(20, 26))


def scene(rng, h=480, w=640, n_segments=20):
    gt = np.zeros((h, w, 2), np.int64)
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


def numpy_pq_recipe(pred, gt, things, stuffs):
    """The straightforward numpy recipe: segment ids, np.unique over gt * K + pred, then the rules."""
    cats = things | stuffs

    def ids(img):
        cat, inst = img[..., 0], img[..., 1]
        inst = np.where(np.isin(cat, list(things)), inst, 0)
        seg = np.where(np.isin(cat, list(cats)), cat * (1 << 24) + inst + 1, 0)
        return seg

    g, p = ids(gt), ids(pred)
    K = int(p.max()) + 1
    pairs, counts = np.unique(g * K + p, return_counts=True)
    gi, pi = pairs // K, pairs % K
    g_area, p_area = {}, {}
    for a, b, n in zip(gi.tolist(), pi.tolist(), counts.tolist()):
        g_area[a] = g_area.get(a, 0) + n
        p_area[b] = p_area.get(b, 0) + n
    void_inter = {b: n for a, b, n in zip(gi.tolist(), pi.tolist(), counts.tolist()) if a == 0}
    stat = {}
    gm, pm = set(), set()
    for a, b, n in zip(gi.tolist(), pi.tolist(), counts.tolist()):
        if a == 0 or b == 0 or a >> 24 != b >> 24:
            continue
        iou = n / (p_area[b] + g_area[a] - n - void_inter.get(b, 0))
        if iou > 0.5:
            s = stat.setdefault(a >> 24, [0, 0, 0, 0.0])
            s[0] += 1
            s[3] += iou
            gm.add(a)
            pm.add(b)
    for a in g_area:
        if a and a not in gm:
            stat.setdefault(a >> 24, [0, 0, 0, 0.0])[2] += 1
    for b in p_area:
        if b and b not in pm and void_inter.get(b, 0) / p_area[b] <= 0.5:
            stat.setdefault(b >> 24, [0, 0, 0, 0.0])[1] += 1
    pqs = [s[3] / (s[0] + 0.5 * s[1] + 0.5 * s[2]) for s in stat.values()]
    return float(np.mean(pqs)) if pqs else 1.0


rng = np.random.default_rng(0)
SCENES = [scene(rng) for _ in range(64)]
PREDS = np.stack([s[0] for s in SCENES])
GTS = np.stack([s[1] for s in SCENES])


def test_numpy_recipe_agrees_with_ours():
    ours = panoptic.pq_reward_batch(PREDS[:4], GTS[:4], things=THINGS, stuffs=STUFFS)
    ref = [numpy_pq_recipe(p, g, THINGS, STUFFS) for p, g in zip(PREDS[:4], GTS[:4])]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_pq_reward_batch_ours(benchmark, recorder):
    panoptic.pq_reward_batch(PREDS[:1], GTS[:1], things=THINGS, stuffs=STUFFS)
    benchmark(panoptic.pq_reward_batch, PREDS, GTS, things=THINGS, stuffs=STUFFS)
    recorder(benchmark, "pq 64 images 640x480", "ours pq_reward_batch", len(PREDS))


def test_pq_numpy_recipe(benchmark, recorder):
    benchmark.pedantic(
        lambda: [numpy_pq_recipe(p, g, THINGS, STUFFS) for p, g in zip(PREDS[:16], GTS[:16])],
        rounds=3, iterations=1,
    )
    recorder(benchmark, "pq 64 images 640x480", "numpy np.unique recipe", 16)


def test_pq_torchmetrics(benchmark, recorder):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.functional.detection")
    p, g = torch.as_tensor(PREDS[:2]), torch.as_tensor(GTS[:2])
    benchmark.pedantic(
        lambda: [tm.panoptic_quality(p[i : i + 1], g[i : i + 1], things=THINGS, stuffs=STUFFS) for i in range(2)],
        rounds=1, iterations=1,
    )
    recorder(benchmark, "pq 64 images 640x480", "torchmetrics panoptic_quality", 2)
