"""The contract every reward of the library keeps, checked once for all of them.

For each reward (single-example function, batch function, example generator):
  * the batch function equals the single function on each example;
  * lists, numpy arrays, torch tensors and jax arrays of the same numbers give the same value;
  * inputs are never modified;
  * a bad example inside a batch raises an error that names the batch argument and its index
    (e.g. ``preds[2]``).

Public APIs only. Adding a reward to the library means adding one ``Reward`` row here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from rewards import captioning, colorization, detection, panoptic

N_EXAMPLES = 5
BAD_INDEX = 2


# ------------------------------------------------------------------ examples


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 80, (n, 2)).round(1)
    return np.concatenate([xy, xy + rng.uniform(2, 40, (n, 2)).round(1)], 1)


def _detection_example(rng: np.random.Generator) -> tuple[dict, dict]:
    m = int(rng.integers(0, 5))
    gt_boxes = _boxes(rng, m)
    labels = rng.integers(0, 3, m)
    found = gt_boxes[rng.random(m) < 0.7]
    moved = found + np.tile(rng.normal(0, 3, (len(found), 2)).round(1), 2)
    boxes = np.concatenate([moved, found[:1], _boxes(rng, int(rng.integers(0, 3)))])
    n = len(boxes)
    pred = {"boxes": boxes, "scores": rng.random(n).round(3), "labels": rng.integers(0, 3, n)}
    gt = {"boxes": gt_boxes, "labels": labels, "iscrowd": rng.random(m) < 0.2}
    return pred, gt


def _nan_box(example: dict) -> dict:
    boxes = np.array(example["boxes"], np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        boxes = np.zeros((1, 4))
        example = {
            **example,
            **{k: np.zeros(1, np.asarray(example[k]).dtype) for k in example if k != "boxes"},
        }
    boxes[0, 0] = np.nan
    return {**example, "boxes": boxes}


PANOPTIC_THINGS, PANOPTIC_STUFFS = [1, 2], [0, 5]


def _panoptic_example(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = int(rng.integers(4, 9)), int(rng.integers(4, 9))
    gt = np.zeros((h, w, 2), np.int64)
    gt[..., 0] = rng.choice([0, 1, 2, 5, -1], (h, w), p=[0.3, 0.3, 0.2, 0.1, 0.1])
    gt[..., 1] = rng.integers(0, 3, (h, w))
    pred = gt.copy()
    noise = rng.random((h, w)) < 0.3
    pred[noise, 0] = rng.choice([0, 1, 2, 5], int(noise.sum()))
    pred[noise, 1] = rng.integers(0, 3, int(noise.sum()))
    return pred, gt


def _unknown_category(image: np.ndarray) -> np.ndarray:
    bad = np.array(image, copy=True)
    bad[0, 0, 0] = 7  # neither a thing nor a stuff
    return bad


CAPTION_WORDS = "a the cat dog man on in with red bus street table sitting two".split()
CAPTION_REFS = [
    ["a cat on a table", "a cat sitting on the table"],
    ["a red bus on the street", "a bus in the street"],
    ["two dogs with a man", "a man with two dogs"],
]
CAPTION_DF = captioning.document_frequencies(CAPTION_REFS)


def _caption_example(rng: np.random.Generator) -> tuple[str, list[str]]:
    refs = CAPTION_REFS[int(rng.integers(0, len(CAPTION_REFS)))]
    words = rng.choice(CAPTION_WORDS, int(rng.integers(0, 8)))
    return " ".join(words), list(refs)


def _image_example(rng: np.random.Generator) -> tuple[np.ndarray]:
    image = rng.random((6, 5, 3))
    image[rng.random((6, 5)) < 0.3] = 0.5  # some gray pixels
    return (image,)


def _out_of_range_image(image: np.ndarray) -> np.ndarray:
    bad = np.array(image, dtype=np.float64, copy=True)
    bad[0, 0, 0] = 1.5
    return bad


# --------------------------------------------------------------------- table


@dataclass(frozen=True)
class Reward:
    name: str
    single: Callable[..., Any]
    batch: Callable[..., Any]
    make: Callable[[np.random.Generator], tuple]  # one example: the positional args of `single`
    arg_names: tuple[str, ...]  # names of the batch's positional arguments (in errors)
    corrupt: dict[int, Callable[[Any], Any]]  # positional index -> makes that part of an example invalid
    kwargs: dict = field(default_factory=dict)
    stack: bool = False  # the batch takes one stacked array rather than a list of examples


def _both_detection(single, batch, **kwargs) -> dict:
    return dict(
        single=single,
        batch=batch,
        make=_detection_example,
        arg_names=("preds", "gts"),
        corrupt={0: _nan_box, 1: _nan_box},
        kwargs=kwargs,
    )


REWARDS = [
    Reward("map_reward", **_both_detection(detection.map_reward, detection.map_reward_batch)),
    Reward("recall_reward", **_both_detection(detection.recall_reward, detection.recall_reward_batch)),
    Reward(
        "recall_reward_normalized",
        **_both_detection(
            detection.recall_reward,
            detection.recall_reward_batch,
            normalize=True,
            class_weights=[1.0, 2.0, 0.5],
        ),
    ),
    Reward("match_iou", **_both_detection(detection.match_iou, detection.match_iou_batch, iou_threshold=0.3)),
    Reward(
        "pq_reward",
        panoptic.pq_reward,
        panoptic.pq_reward_batch,
        _panoptic_example,
        ("preds", "gts"),
        {0: _unknown_category},
        dict(things=PANOPTIC_THINGS, stuffs=PANOPTIC_STUFFS),
    ),
    Reward(
        "cider_reward",
        captioning.cider_reward,
        captioning.cider_reward_batch,
        _caption_example,
        ("candidates", "references_list"),
        {0: lambda c: 42, 1: lambda refs: []},
        dict(doc_freq=CAPTION_DF),
    ),
    Reward(
        "colorfulness",
        colorization.colorfulness,
        colorization.colorfulness_batch,
        _image_example,
        ("images",),
        {0: _out_of_range_image},
        stack=True,
    ),
    Reward(
        "colorfulness_reward",
        colorization.colorfulness_reward,
        colorization.colorfulness_reward_batch,
        _image_example,
        ("images",),
        {0: _out_of_range_image},
        stack=True,
    ),
]


def examples(reward: Reward, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [reward.make(rng) for _ in range(N_EXAMPLES)]


def batch_args(reward: Reward, exs: list[tuple]) -> list:
    columns = [[ex[i] for ex in exs] for i in range(len(reward.arg_names))]
    if not reward.stack:
        return columns
    shape = np.shape(reward.make(np.random.default_rng(0))[0])
    return [np.stack(c) if c else np.zeros((0, *shape)) for c in columns]


def as_float_list(value: Any) -> list:
    """A reward's value (float, array, or list of arrays) as nested lists of floats, for exact comparison."""
    if isinstance(value, (list, tuple)):
        return [as_float_list(v) for v in value]
    return np.asarray(value, np.float64).tolist()


def convert(value: Any, to: Callable[[np.ndarray], Any]) -> Any:
    """Every array leaf of an example passed through ``to`` (strings and scalars kept)."""
    if isinstance(value, np.ndarray):
        return to(value)
    if isinstance(value, dict):
        return {k: convert(v, to) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(convert(v, to) for v in value)
    return value


def back_to_numpy(value: Any) -> Any:
    """The numbers a converted example really holds (e.g. jax's float32), as numpy arrays."""
    if isinstance(value, dict):
        return {k: back_to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not all(isinstance(v, str) for v in value):
        return type(value)(back_to_numpy(v) for v in value)
    if hasattr(value, "shape") and not isinstance(value, np.ndarray):
        return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    return value


def _to_list(a: np.ndarray) -> Any:
    return a.tolist()


def _to_torch(a: np.ndarray) -> Any:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(np.array(a, copy=True))


def _to_jax(a: np.ndarray) -> Any:
    jnp = pytest.importorskip("jax.numpy")
    return jnp.asarray(a)


CONVERTERS = {"list": _to_list, "torch": _to_torch, "jax": _to_jax}
ids = [r.name for r in REWARDS]


# --------------------------------------------------------------------- tests


@pytest.mark.parametrize("reward", REWARDS, ids=ids)
def test_batch_equals_single(reward: Reward):
    exs = examples(reward)
    singles = [as_float_list(reward.single(*ex, **reward.kwargs)) for ex in exs]
    batched = as_float_list(reward.batch(*batch_args(reward, exs), **reward.kwargs))
    assert batched == singles
    # Each example's value does not depend on the rest of the batch.
    assert as_float_list(reward.batch(*batch_args(reward, exs[::-1]), **reward.kwargs)) == singles[::-1]
    assert as_float_list(reward.batch(*batch_args(reward, exs[:0]), **reward.kwargs)) == []


@pytest.mark.parametrize("framework", list(CONVERTERS))
@pytest.mark.parametrize("reward", REWARDS, ids=ids)
def test_frameworks_agree_with_numpy(reward: Reward, framework: str):
    to = CONVERTERS[framework]
    exs = examples(reward, seed=1)
    converted = [convert(ex, to) for ex in exs]
    # Same numbers as numpy: jax holds float32/int32 unless x64 is on, so compare with numpy
    # on exactly the numbers the converted input holds.
    reference = [back_to_numpy(ex) for ex in converted]
    for ex, ref in zip(converted, reference):
        assert as_float_list(reward.single(*ex, **reward.kwargs)) == as_float_list(
            reward.single(*ref, **reward.kwargs)
        )
    if framework != "jax":  # float64 and int64 survive lists and torch: same values as the originals
        assert [as_float_list(reward.single(*ex, **reward.kwargs)) for ex in converted] == [
            as_float_list(reward.single(*ex, **reward.kwargs)) for ex in exs
        ]
    got = reward.batch(*(convert(a, to) for a in batch_args(reward, reference)), **reward.kwargs)
    want = reward.batch(*batch_args(reward, reference), **reward.kwargs)
    assert as_float_list(got) == as_float_list(want)


def _snapshot(value: Any) -> Any:
    return copy.deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=True)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("as_lists", [False, True], ids=["numpy", "lists"])
@pytest.mark.parametrize("reward", REWARDS, ids=ids)
def test_inputs_not_mutated(reward: Reward, as_lists: bool):
    exs = examples(reward, seed=2)
    if as_lists:
        exs = [convert(ex, _to_list) for ex in exs]
    before = _snapshot(exs)
    for ex in exs:
        reward.single(*ex, **reward.kwargs)
    args = batch_args(reward, exs) if not (reward.stack and as_lists) else [list(c) for c in zip(*exs)]
    args_before = _snapshot(args)
    reward.batch(*args, **reward.kwargs)
    assert _same(exs, before)
    assert _same(args, args_before)


@pytest.mark.parametrize(
    "reward,position",
    [(r, p) for r in REWARDS for p in r.corrupt],
    ids=[f"{r.name}-{r.arg_names[p]}" for r in REWARDS for p in r.corrupt],
)
def test_bad_example_in_batch_is_named(reward: Reward, position: int):
    exs = [list(ex) for ex in examples(reward, seed=3)]
    exs[BAD_INDEX][position] = reward.corrupt[position](exs[BAD_INDEX][position])
    name = f"{reward.arg_names[position]}[{BAD_INDEX}]"
    with pytest.raises((TypeError, ValueError), match=re.escape(name)):
        reward.batch(*batch_args(reward, [tuple(ex) for ex in exs]), **reward.kwargs)
