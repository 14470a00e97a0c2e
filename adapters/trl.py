"""Reward functions for TRL's ``GRPOTrainer`` and ``RLOOTrainer``: boxes and captions read from text.

Vision-language models write their boxes as text and without scores, e.g. Qwen2.5-VL's
``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]``. ``detection_reward`` and
``captioning_reward`` build callables in TRL's reward-function shape,
``fn(prompts, completions, **dataset_columns) -> list[float]``: they parse every completion
of the batch, score them all with one call of the library's batch function
(``rewards.detection.recall_reward_batch`` by default) and never raise on model output.
An unparseable completion gets ``default`` and is counted in ``fn.stats``; a misconfigured
dataset column raises a ``ValueError`` that names the column, example and box.

This module does not import TRL: the functions are plain callables that TRL (or anything
else) calls. Install TRL with ``pip install task-rewards[trl]``.

Example:
    >>> from rewards.adapters.trl import detection_reward
    >>> reward = detection_reward(categories=["cat", "dog"])
    >>> completions = [
    ...     '```json\\n[{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]\\n```',   # found
    ...     '[{"bbox_2d": [10, 10, 50, 50], "label": "dog"}]',                  # wrong class
    ...     '[{"bbox_2d": [10, 10, 50',                                         # truncated
    ... ]
    >>> reward(prompts=["p"] * 3, completions=completions,
    ...        gt_boxes=[[[10, 10, 50, 50]]] * 3, gt_labels=[["cat"]] * 3)
    [1.0, 0.0, 0.0]
    >>> reward.__name__, reward.stats.parse_failures, reward.stats.matches
    ('detection_recall', 1, 1)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numba import prange

from rewards import captioning, detection
from rewards._boxes import box_iou, to_xywh_inplace
from rewards._inputs import int_option, real_option, to_numpy
from rewards._numba import kernel

__all__ = [
    "QWEN_VL_BOX_PATTERN",
    "CaptioningReward",
    "CaptioningStats",
    "DetectionReward",
    "DetectionStats",
    "ParsedBoxes",
    "BoxParser",
    "captioning_reward",
    "completion_text",
    "detection_reward",
]

Kind = Literal["recall", "map", "f1", "mean_iou"]
Coords = Literal["pixel", "unit", "1000"]
TextFormat = Literal["auto", "json", "regex"]
KINDS = ("recall", "map", "f1", "mean_iou")
COORDS = ("pixel", "unit", "1000")
TEXT_FORMATS = ("auto", "json", "regex")

#: Qwen-VL (v1) grounding tokens, ``<ref>cat</ref><box>(x1,y1),(x2,y2)</box>`` (0..1000 space).
#: A custom pattern names its groups the same way: ``x1``, ``y1``, ``x2``, ``y2`` (required),
#: ``label`` and ``score`` (optional).
QWEN_VL_BOX_PATTERN = (
    r"(?:<ref>(?P<label>[^<]*)</ref>\s*)?<box>\s*\(\s*(?P<x1>[-+]?\d+(?:\.\d*)?)\s*,\s*(?P<y1>[-+]?\d+(?:\.\d*)?)\s*\)"
    r"\s*,?\s*\(\s*(?P<x2>[-+]?\d+(?:\.\d*)?)\s*,\s*(?P<y2>[-+]?\d+(?:\.\d*)?)\s*\)\s*</box>"
)

_DECODER = json.JSONDecoder()
_NUMBER_TYPES = (int, float)
# Per-axis factor that takes a coordinate space to unit [0, 1]; None: pixels (needs the image size).
_TO_UNIT = {"unit": 1.0, "1000": 1e-3, "pixel": None}


# ------------------------------------------------------------------ completions


def completion_text(completion: Any) -> str | None:
    """The text of one TRL completion, or None when it holds no text.

    TRL passes a string for standard datasets and a list of messages
    (``[{"role": "assistant", "content": ...}]``) for conversational ones; content may
    be a string or a list of parts (``{"type": "text", "text": ...}``). The last message
    is the model's answer.

    Example:
        >>> completion_text([{"role": "assistant", "content": "[]"}])
        '[]'
        >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a cat"}]}])
        'a cat'
        >>> completion_text(None) is None
        True
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion:
        message = completion[-1]
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            return content
        if isinstance(content, (list, tuple)):
            parts = [
                p.get("text")
                for p in content
                if isinstance(p, Mapping)
                and p.get("type", "text") == "text"
                and isinstance(p.get("text"), str)
            ]
            return "".join(parts) if parts else None
    return None


# ---------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedBoxes:
    """Boxes read from one completion, in the order written.

    ``boxes`` (N, 4) float64 xyxy in the completion's coordinate space; ``labels`` (N,)
    int64 category ids (``len(categories)`` for a label outside them, 0 when
    class-agnostic); ``scores`` (N,) float64 (1.0 where the text gives none); ``dropped``:
    entries of the list that were not valid boxes; ``unknown_labels``: kept boxes whose
    label is not a category.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    dropped: int
    unknown_labels: int


class BoxParser:
    """Reads box lists from model text: JSON (Qwen2.5-VL style or plain box lists) or a regex.

    JSON: the answer is the first JSON value that starts at the first ``[`` or ``{`` of the
    text, or of the first fenced block (```` ```json ... ``` ````) when there is one; prose
    before and after it is allowed. It must be a complete list (or one object with a box
    key): a truncated list is a parse failure, never salvaged. Each entry is an object with
    a box under one of ``box_keys`` (label under ``label_keys``, score under
    ``score_keys``), or a bare list of 4 numbers (no label). ``[]`` is a valid empty answer.
    Inside a parsed list, an entry that is not exactly 4 real numbers, has NaN/inf, ends
    before it starts (x2 < x1 or y2 < y1), has an overflowing area or a non-numeric score
    is dropped, and the rest still counts.

    Regex (``text_format="regex"``, or ``"auto"`` when the text holds no complete JSON value): every
    match of ``box_pattern`` is a box (named groups ``x1``, ``y1``, ``x2``, ``y2``, optional
    ``label`` and ``score``); a text without a match is a parse failure.

    Labels are matched to ``categories`` exactly, then after stripping white space and
    lower-casing; integers are 0-based indices. Any other label is "unknown": id
    ``len(categories)``, a class no ground truth has. ``categories=None``: class-agnostic,
    every box is class 0. ``box_format="yxyx"`` reads JSON boxes as [y1, x1, y2, x2].

    Example:
        >>> parser = BoxParser(categories=["cat", "dog"])
        >>> p = parser.parse('Found: [{"bbox_2d": [1, 2, 3, 4], "label": "Dog"}, {"bbox_2d": [5, 6]}]')
        >>> p.boxes.tolist(), p.labels.tolist(), p.dropped
        ([[1.0, 2.0, 3.0, 4.0]], [1], 1)
        >>> parser.parse("<ref>cat</ref><box>(10,20),(30,40)</box>").labels.tolist()
        [0]
        >>> parser.parse('[{"bbox_2d": [1, 2,') is None   # truncated: a parse failure
        True
    """

    def __init__(
        self,
        categories: Sequence[str] | None = None,
        *,
        text_format: TextFormat = "auto",
        box_pattern: str | re.Pattern | None = None,
        box_keys: Sequence[str] = ("bbox_2d", "bbox", "box"),
        label_keys: Sequence[str] = ("label", "category", "class", "name"),
        score_keys: Sequence[str] = ("score", "confidence"),
        box_format: Literal["xyxy", "yxyx"] = "xyxy",
    ) -> None:
        if text_format not in TEXT_FORMATS:
            raise ValueError(f"`text_format` must be one of {TEXT_FORMATS}, got {text_format!r}")
        if box_format not in ("xyxy", "yxyx"):
            raise ValueError(f"`box_format` must be 'xyxy' or 'yxyx', got {box_format!r}")
        for name, keys in (("box_keys", box_keys), ("label_keys", label_keys), ("score_keys", score_keys)):
            if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
                raise TypeError(f"`{name}` must be a sequence of str keys, got {keys!r}")
        self.text_format = text_format
        self.box_keys = tuple(box_keys)
        self.label_keys = tuple(label_keys)
        self.score_keys = tuple(score_keys)
        self.yxyx = box_format == "yxyx"
        pattern = QWEN_VL_BOX_PATTERN if box_pattern is None else box_pattern
        try:
            self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        except re.error as err:
            raise ValueError(f"`box_pattern` is not a valid regular expression: {err}") from None
        if not isinstance(self.pattern, re.Pattern):
            raise TypeError(f"`box_pattern` must be a str or compiled regex, got {type(pattern).__name__}")
        missing = {"x1", "y1", "x2", "y2"} - set(self.pattern.groupindex)
        if missing:
            raise ValueError(f"`box_pattern` lacks the named groups {sorted(missing)}")
        self.categories = _categories(categories)
        self.class_agnostic = self.categories is None
        n = 0 if self.categories is None else len(self.categories)
        self.unknown_id = n
        ids: dict[str, int] = {}
        for i, c in enumerate(self.categories or ()):
            ids.setdefault(c.strip().lower(), i)
        for i, c in enumerate(self.categories or ()):
            ids[c] = i
        self._ids = ids

    # The per-completion Python work of the batch: kept lean (no per-box numpy).
    def _label(self, value: Any) -> int:
        if self.class_agnostic:
            return 0
        if type(value) is str:
            i = self._ids.get(value)
            if i is None:
                i = self._ids.get(value.strip().lower(), self.unknown_id)
            return i
        if type(value) is int and 0 <= value < self.unknown_id:
            return value
        return self.unknown_id

    def parse_into(self, text: Any, flat: list, labels: list, scores: list | None) -> tuple[int, int, int]:
        """Appends one completion's boxes (4 numbers each) to ``flat``, and labels/scores.

        Returns (boxes appended, entries dropped, unknown labels), or (-1, 0, 0) on a
        parse failure (nothing appended). Validity of the numbers (finite, ordered) is
        checked later over the whole batch at once.
        """
        if type(text) is not str:
            return -1, 0, 0
        mode = self.text_format
        start = -1
        if mode != "regex":
            body_start = text.find("```")
            if body_start >= 0:  # a fenced block: the answer starts after its language tag
                body_start += 3
                while body_start < len(text) and text[body_start].isalpha():
                    body_start += 1
            else:
                body_start = 0
            a = text.find("[", body_start)
            b = text.find("{", body_start)
            start = a if b < 0 or (0 <= a < b) else b
            if start < 0 and mode == "json":
                return -1, 0, 0
        if start >= 0:
            result = self._parse_json(text, start, flat, labels, scores)
            if result[0] >= 0 or mode == "json":
                return result
        # "auto" falls back to the tokens when there is no complete JSON value (a pattern
        # for <box> tokens never matches JSON text, so a truncated list is not salvaged)
        return self._parse_regex(text, flat, labels, scores)

    def _parse_json(self, text: str, start: int, flat: list, labels: list, scores: list | None):
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            return -1, 0, 0
        if type(value) is dict:
            if not any(k in value for k in self.box_keys):
                return -1, 0, 0
            value = [value]
        elif type(value) is not list:
            return -1, 0, 0
        kept = dropped = unknown = 0
        for item in value:
            score: Any = 1.0
            if type(item) is dict:
                box = None
                for k in self.box_keys:
                    box = item.get(k)
                    if box is not None:
                        break
                label = None
                for k in self.label_keys:
                    label = item.get(k)
                    if label is not None:
                        break
                if scores is not None:
                    for k in self.score_keys:
                        s = item.get(k)
                        if s is not None:
                            score = s
                            break
                    if type(score) not in _NUMBER_TYPES:
                        dropped += 1
                        continue
            elif type(item) is list:
                box, label = item, None
            else:
                dropped += 1
                continue
            if type(box) is not list or len(box) != 4:
                dropped += 1
                continue
            x1, y1, x2, y2 = box
            if not (
                type(x1) in _NUMBER_TYPES
                and type(y1) in _NUMBER_TYPES
                and type(x2) in _NUMBER_TYPES
                and type(y2) in _NUMBER_TYPES
            ):
                dropped += 1
                continue
            if self.yxyx:
                flat += (y1, x1, y2, x2)
            else:
                flat += box
            lab = self._label(label)
            unknown += lab == self.unknown_id and not self.class_agnostic
            labels.append(lab)
            if scores is not None:
                scores.append(score)
            kept += 1
        return kept, dropped, unknown

    def _parse_regex(self, text: str, flat: list, labels: list, scores: list | None):
        kept = dropped = unknown = matched = 0
        has_label = "label" in self.pattern.groupindex
        has_score = "score" in self.pattern.groupindex
        for m in self.pattern.finditer(text):
            matched += 1
            try:
                box = [float(m.group("x1")), float(m.group("y1")), float(m.group("x2")), float(m.group("y2"))]
                score = float(m.group("score")) if has_score and m.group("score") is not None else 1.0
            except (TypeError, ValueError):
                dropped += 1
                continue
            flat += box
            lab = self._label(
                m.group("label").strip() if has_label and m.group("label") is not None else None
            )
            unknown += lab == self.unknown_id and not self.class_agnostic
            labels.append(lab)
            if scores is not None:
                scores.append(score)
            kept += 1
        if matched == 0:
            return -1, 0, 0
        return kept, dropped, unknown

    def parse(self, text: str, *, with_scores: bool = True) -> ParsedBoxes | None:
        """One completion's valid boxes, or None when it is not a box list (see the class)."""
        flat: list = []
        labels: list = []
        scores: list | None = [] if with_scores else None
        kept, dropped, unknown = self.parse_into(text, flat, labels, scores)
        if kept < 0:
            return None
        boxes = _float_array(flat).reshape(-1, 4)
        score_array = _float_array(scores) if scores is not None else np.ones(kept)
        keep = _valid_boxes(boxes, score_array)
        n_bad = int((~keep).sum())
        unknown -= (
            int((np.asarray(labels, np.int64)[~keep] == self.unknown_id).sum())
            if n_bad and not self.class_agnostic
            else 0
        )
        return ParsedBoxes(
            boxes[keep],
            np.asarray(labels, np.int64).reshape(-1)[keep],
            score_array[keep],
            dropped + n_bad,
            unknown,
        )


def _categories(categories: Any) -> tuple[str, ...] | None:
    if categories is None:
        return None
    if isinstance(categories, str) or not isinstance(categories, Sequence):
        raise TypeError(f"`categories` must be a list of category names, got {type(categories).__name__}")
    names = tuple(categories)
    if not names:
        raise ValueError("`categories` is empty; pass None for class-agnostic boxes")
    for i, c in enumerate(names):
        if not isinstance(c, str):
            raise TypeError(f"`categories[{i}]` must be a str, got {type(c).__name__} {c!r}")
    seen: dict[str, int] = {}
    for i, c in enumerate(names):
        if c in seen:
            raise ValueError(f"`categories[{i}]` repeats `categories[{seen[c]}]` ({c!r})")
        seen[c] = i
    return names


def _float_array(values: list) -> np.ndarray:
    """float64 array of Python numbers; ints beyond float range become inf (and are dropped)."""
    try:
        return np.array(values, np.float64)
    except OverflowError:
        return np.array([_float_or_inf(v) for v in values], np.float64)


def _float_or_inf(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def _valid_boxes(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Boxes that are finite, ordered (x2 >= x1, y2 >= y1), with a finite area and score."""
    with np.errstate(over="ignore", invalid="ignore"):
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        return (w >= 0) & (h >= 0) & np.isfinite(w * h) & np.isfinite(boxes).all(axis=1) & np.isfinite(scores)


# ------------------------------------------------------------- matching kernel


@kernel
def _match_batch(
    boxes, labels, offsets, gt_boxes, gt_labels, gt_offsets, threshold, found, duplicates, iou_sum
):
    """The recall reward's one-to-one matching, counted, for every example of a batch.

    Parameters
    ----------
    boxes : float64 (P, 4)
        Predicted boxes of all examples, COCO xywh, concatenated.
    labels : int64 (P,)
        Their category ids.
    offsets : int64 (B + 1,)
        Example ``b`` owns predictions ``offsets[b]:offsets[b + 1]``.
    gt_boxes, gt_labels, gt_offsets : float64 (G, 4), int64 (G,), int64 (B + 1,)
        Ground truth, laid out the same way.
    threshold : float
        IoU above which (strictly) a match counts as found.
    found, duplicates : int64 (B,), written
        Per example: ground-truth boxes whose match has IoU > ``threshold``; predictions
        with IoU > ``threshold`` against their best ground truth that are not its match.
    iou_sum : float64 (B,), written
        Per example: the sum over ground-truth boxes of their match's IoU (0 if none).

    Notes
    -----
    The matching of ``rewards.detection.recall_reward`` (big_vision's released reward):
    each prediction keeps its best same-class ground truth (first on ties), and each
    ground truth takes its best prediction among those (first on ties). It does not depend
    on the threshold, so one pass gives every count.
    """
    for b in prange(offsets.size - 1):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        n = p1 - p0
        m = g1 - g0
        found[b] = 0
        duplicates[b] = 0
        iou_sum[b] = 0.0
        if n == 0 or m == 0:
            continue
        best_gt = np.zeros(n, np.int64)
        best_iou = np.zeros(n)
        for p in range(n):
            for g in range(m):
                if labels[p0 + p] == gt_labels[g0 + g]:
                    v = box_iou(boxes, p0 + p, gt_boxes, g0 + g, False)
                    if v > best_iou[p]:
                        best_iou[p] = v
                        best_gt[p] = g
        top = np.zeros(m)
        match = np.full(m, -1, np.int64)
        for p in range(n):
            g = best_gt[p]
            if best_iou[p] > top[g]:
                top[g] = best_iou[p]
                match[g] = p
        for g in range(m):
            iou_sum[b] += top[g]
            if top[g] > threshold:
                found[b] += 1
        for p in range(n):
            if best_iou[p] > threshold and match[best_gt[p]] != p:
                duplicates[b] += 1


# ----------------------------------------------------------------------- stats


@dataclass
class DetectionStats:
    """Counts over the completions a detection reward scored (one batch, or a running total).

    ``matches``: ground-truth boxes found (IoU > ``iou_threshold``, the one-to-one matching
    of the recall reward); ``duplicates``: extra predictions on an already found object;
    ``dropped_boxes``: invalid entries inside parsed lists; ``unknown_labels``: kept boxes
    whose label is not a category.

    Example:
        >>> s = DetectionStats(completions=4, parse_failures=1, boxes=6, gt_boxes=8, matches=5)
        >>> s.as_dict()["parse_failure_rate"], s.as_dict()["recall"]
        (0.25, 0.625)
    """

    completions: int = 0
    parse_failures: int = 0
    boxes: int = 0
    dropped_boxes: int = 0
    unknown_labels: int = 0
    gt_boxes: int = 0
    matches: int = 0
    duplicates: int = 0

    def __iadd__(self, other: DetectionStats) -> DetectionStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, float]:
        """Rates to log (per completion, or per ground-truth box for ``recall``)."""
        n = max(self.completions, 1)
        return {
            "parse_failure_rate": self.parse_failures / n,
            "boxes_per_completion": self.boxes / n,
            "dropped_boxes_per_completion": self.dropped_boxes / n,
            "unknown_labels_per_completion": self.unknown_labels / n,
            "matches_per_completion": self.matches / n,
            "duplicates_per_completion": self.duplicates / n,
            "recall": self.matches / self.gt_boxes if self.gt_boxes else 0.0,
        }


@dataclass
class CaptioningStats:
    """Counts over the completions a captioning reward scored.

    Example:
        >>> CaptioningStats(completions=2, parse_failures=1).as_dict()["parse_failure_rate"]
        0.5
    """

    completions: int = 0
    parse_failures: int = 0
    empty_captions: int = 0
    words: int = 0

    def __iadd__(self, other: CaptioningStats) -> CaptioningStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, float]:
        """Rates to log, per completion."""
        n = max(self.completions, 1)
        return {
            "parse_failure_rate": self.parse_failures / n,
            "empty_caption_rate": self.empty_captions / n,
            "words_per_caption": self.words / n,
        }


# -------------------------------------------------------------------- columns


def _column(columns: Mapping[str, Any], name: str, n: int, option: str) -> Sequence[Any]:
    if name not in columns:
        available = sorted(k for k in columns if k not in _TRL_KEYWORDS)
        raise ValueError(
            f"dataset column {name!r} not found (set `{option}=`); the batch has columns {available}"
        )
    values = columns[name]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != n:
        got = len(values) if hasattr(values, "__len__") else type(values).__name__
        raise ValueError(f"dataset column {name!r} must hold one entry per completion ({n}), got {got}")
    return values


# What TRL passes besides the dataset's columns.
_TRL_KEYWORDS = frozenset({"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})


def _image_scale(value: Any, i: int, column: str) -> tuple[float, float]:
    """(width, height) of example ``i``: a pair, or anything with a ``.size`` pair (a PIL image)."""
    size = getattr(value, "size", value)
    if isinstance(size, np.ndarray):
        size = size.tolist()
    if callable(size) or isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"`{column}[{i}]` must be (width, height) or a PIL image, got {value!r}")
    w, h = (real_option(v, f"{column}[{i}]", low=0, low_inclusive=False) for v in size)
    return w, h


# ------------------------------------------------------------------ detection


class DetectionReward:
    """A detection / grounding reward in TRL's shape; build it with ``detection_reward``.

    Call ``fn(prompts, completions, **columns) -> list[float]``. After each call,
    ``fn.stats`` holds that batch's ``DetectionStats`` and ``fn.totals`` the running sum
    (``fn.reset()`` clears it). When TRL passes its ``log_metric`` callback (TRL >= 1.0),
    the rates of ``stats.as_dict()`` are logged as ``"<name>/<rate>"``.
    """

    def __init__(
        self,
        kind: Kind,
        parser: BoxParser,
        coords: Coords,
        gt_coords: Coords,
        gt_boxes_column: str,
        gt_labels_column: str,
        image_size_column: str,
        default: float,
        score_options: dict[str, Any],
        iou_threshold: float,
        name: str,
        log_metrics: bool,
    ) -> None:
        self.kind = kind
        self.parser = parser
        self.coords = coords
        self.gt_coords = gt_coords
        self.gt_boxes_column = gt_boxes_column
        self.gt_labels_column = gt_labels_column
        self.image_size_column = image_size_column
        self.default = default
        self.score_options = score_options
        self.iou_threshold = iou_threshold
        self.__name__ = name
        self.log_metrics = log_metrics
        self.stats = DetectionStats()
        self.totals = DetectionStats()

    def __repr__(self) -> str:
        return f"DetectionReward(name={self.__name__!r}, kind={self.kind!r}, coords={self.coords!r})"

    def reset(self) -> None:
        """Clears ``totals``."""
        self.totals = DetectionStats()

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, **columns: Any
    ) -> list[float]:
        if (
            completions is None
            or isinstance(completions, (str, bytes))
            or not hasattr(completions, "__len__")
        ):
            raise TypeError("`completions` must be the list of completions TRL passes")
        n = len(completions)
        gt = self._ground_truth(columns, n)
        flat: list = []
        labels: list = []
        scores: list | None = [] if self.kind == "map" else None
        counts = np.zeros(n, np.int64)
        failed = np.zeros(n, bool)
        dropped = unknown = 0
        parse_into = self.parser.parse_into
        for i, completion in enumerate(completions):
            n_flat, n_labels = len(flat), len(labels)
            try:
                kept, d, u = parse_into(completion_text(completion), flat, labels, scores)
            except Exception:  # never raise on model output: undo this completion's appends
                kept, d, u = -1, 0, 0
                del flat[n_flat:], labels[n_labels:]
                if scores is not None:
                    del scores[n_labels:]
            if kept < 0:
                failed[i] = True
            else:
                counts[i] = kept
                dropped += d
                unknown += u
        boxes = _float_array(flat).reshape(-1, 4)
        label_array = np.array(labels, np.int64)
        score_array = _float_array(scores) if scores is not None else np.ones(label_array.size)
        example = np.repeat(np.arange(n), counts)
        if self.coords != self.gt_coords:
            boxes = boxes * self._scale(columns, n)[example]
        keep = _valid_boxes(boxes, score_array)
        if not keep.all():
            bad = ~keep
            dropped += int(bad.sum())
            if not self.parser.class_agnostic:
                unknown -= int((label_array[bad] == self.parser.unknown_id).sum())
            boxes, label_array, score_array = boxes[keep], label_array[keep], score_array[keep]
            counts = np.bincount(example[keep], minlength=n)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        values, found, duplicates = self._score(boxes, label_array, score_array, offsets, gt)
        values[failed] = self.default

        stats = DetectionStats(
            completions=n,
            parse_failures=int(failed.sum()),
            boxes=int(offsets[-1]),
            dropped_boxes=dropped,
            unknown_labels=unknown,
            gt_boxes=int(gt.offsets[-1]),
            matches=int(found.sum()),
            duplicates=int(duplicates.sum()),
        )
        self.stats = stats
        self.totals += stats
        log_metric = columns.get("log_metric")
        if self.log_metrics and callable(log_metric):
            for key, value in stats.as_dict().items():
                log_metric(f"{self.__name__}/{key}", value)
        return values.tolist()

    def _scale(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        """(n, 4) factors that take predicted coordinates to the ground truth's space."""
        src, dst = _TO_UNIT[self.coords], _TO_UNIT[self.gt_coords]
        if src is not None and dst is not None:
            return np.full((n, 4), src / dst)
        sizes = _column(columns, self.image_size_column, n, "image_size_column")
        wh = np.array([_image_scale(s, i, self.image_size_column) for i, s in enumerate(sizes)]).reshape(n, 2)
        to_unit = 1.0 / wh if src is None else src
        per_axis = to_unit * wh if dst is None else to_unit / dst
        return np.tile(per_axis, 2)

    def _ground_truth(self, columns: Mapping[str, Any], n: int) -> _GroundTruth:
        box_col = _column(columns, self.gt_boxes_column, n, "gt_boxes_column")
        label_col = None
        if not self.parser.class_agnostic:
            label_col = _column(columns, self.gt_labels_column, n, "gt_labels_column")
        return _GroundTruth.build(
            box_col, label_col, self.gt_boxes_column, self.gt_labels_column, self.parser
        )

    def _score(
        self, boxes, labels, scores, offsets, gt: _GroundTruth
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rewards (B,), and per example the objects found and the duplicates (for the stats)."""
        n = offsets.size - 1
        xywh = to_xywh_inplace(boxes.copy(), "xyxy")
        found = np.empty(n, np.int64)
        duplicates = np.empty(n, np.int64)
        iou_sum = np.empty(n)
        _match_batch(
            xywh,
            labels,
            offsets,
            gt.xywh,
            gt.labels,
            gt.offsets,
            self.iou_threshold,
            found,
            duplicates,
            iou_sum,
        )
        n_pred = np.diff(offsets)
        n_gt = np.diff(gt.offsets)
        if self.kind == "mean_iou":
            denominator = np.maximum(n_pred, n_gt)
            return np.where(denominator > 0, iou_sum / np.maximum(denominator, 1), 1.0), found, duplicates
        preds = [
            {"boxes": boxes[a:b], "scores": scores[a:b], "labels": labels[a:b]}
            for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())
        ]
        if self.kind != "map":
            # The library's recall kernel reads past its arrays for boxes against an image without
            # ground truth (reported); the recall reward there is 0 with or without the boxes.
            for i in np.flatnonzero((n_gt == 0) & (n_pred > 0)).tolist():
                preds[i] = {"boxes": boxes[:0], "scores": scores[:0], "labels": labels[:0]}
        if self.kind == "recall":
            return detection.recall_reward_batch(preds, gt.dicts, **self.score_options), found, duplicates
        if self.kind == "map":
            return detection.map_reward_batch(preds, gt.dicts, **self.score_options), found, duplicates
        # f1: true positives are the found objects of the recall reward at one threshold.
        tp = detection.recall_reward_batch(
            preds, gt.dicts, iou_thresholds=[self.iou_threshold], duplicate_weight=0.0
        )
        total = n_pred + n_gt
        return np.where(total > 0, 2.0 * tp / np.maximum(total, 1), 1.0), found, duplicates


class _GroundTruth:
    """The batch's ground truth: per-example dicts for the library and flat xywh arrays."""

    dicts: list
    xywh: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, box_col, label_col, box_name: str, label_name: str, parser: BoxParser) -> _GroundTruth:
        self = cls()
        dicts: list = []
        previous: tuple | None = None
        for i in range(len(box_col)):
            raw_boxes = box_col[i]
            raw_labels = None if label_col is None else label_col[i]
            # GRPO repeats each prompt's columns for its generations: reuse equal neighbours.
            if previous is not None and _same(raw_boxes, previous[0]) and _same(raw_labels, previous[1]):
                dicts.append(dicts[-1])
                continue
            dicts.append(_gt_example(raw_boxes, raw_labels, i, box_name, label_name, parser))
            previous = (raw_boxes, raw_labels)
        self.dicts = dicts
        lengths = np.fromiter((d["labels"].size for d in dicts), np.int64, len(dicts))
        self.offsets = np.zeros(len(dicts) + 1, np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        if dicts:
            self.xywh = to_xywh_inplace(np.concatenate([d["boxes"] for d in dicts]).reshape(-1, 4), "xyxy")
            self.labels = np.concatenate([d["labels"] for d in dicts])
        else:
            self.xywh, self.labels = np.zeros((0, 4)), np.zeros(0, np.int64)
        return self


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is list and type(b) is list:
        try:
            return bool(a == b)
        except Exception:  # elements whose == is not a bool (arrays)
            return False
    return False


def _gt_example(raw_boxes, raw_labels, i: int, box_name: str, label_name: str, parser: BoxParser) -> dict:
    where = f"{box_name}[{i}]"
    boxes = to_numpy(raw_boxes, where)
    if boxes.size == 0:
        boxes = np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype.kind not in "fiu":
        raise ValueError(f"`{where}` must be a list of [x1, y1, x2, y2] boxes, got {raw_boxes!r:.200}")
    boxes = boxes.astype(np.float64)
    bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`{where}[{k}]` is not a box with x1 <= x2, y1 <= y2 and finite values: {boxes[k].tolist()}"
        )
    m = boxes.shape[0]
    if raw_labels is None:
        return {"boxes": boxes, "labels": np.zeros(m, np.int64)}
    lwhere = f"{label_name}[{i}]"
    items = raw_labels.tolist() if hasattr(raw_labels, "tolist") else raw_labels
    if isinstance(items, (str, bytes)) or not hasattr(items, "__len__") or len(items) != m:
        got = len(items) if hasattr(items, "__len__") and not isinstance(items, (str, bytes)) else repr(items)
        raise ValueError(f"`{lwhere}` must hold one label per box of `{where}` ({m}), got {got}")
    labels = np.empty(m, np.int64)
    for k, value in enumerate(items):
        if isinstance(value, str):
            j = parser._ids.get(value)
            if j is None:
                raise ValueError(f"`{lwhere}[{k}]` is {value!r}, which is not one of `categories`")
        elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            j = int(value)
            if not 0 <= j < parser.unknown_id:
                raise ValueError(
                    f"`{lwhere}[{k}]` is {j}: an index into `categories` must lie in [0, {parser.unknown_id})"
                )
        else:
            raise ValueError(f"`{lwhere}[{k}]` must be a category name or index, got {value!r}")
        labels[k] = j
    return {"boxes": boxes, "labels": labels}


def detection_reward(
    kind: Kind = "recall",
    *,
    categories: Sequence[str] | None = None,
    coords: Coords = "pixel",
    gt_coords: Coords | None = None,
    gt_boxes_column: str = "gt_boxes",
    gt_labels_column: str = "gt_labels",
    image_size_column: str = "image_size",
    default: float = 0.0,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    iou_thresholds: Sequence[float] | None = None,
    normalize: bool = False,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
    iou_threshold: float = 0.5,
    text_format: TextFormat = "auto",
    box_pattern: str | re.Pattern | None = None,
    box_format: Literal["xyxy", "yxyx"] = "xyxy",
    box_keys: Sequence[str] = ("bbox_2d", "bbox", "box"),
    label_keys: Sequence[str] = ("label", "category", "class", "name"),
    score_keys: Sequence[str] = ("score", "confidence"),
    name: str | None = None,
    log_metrics: bool = True,
) -> DetectionReward:
    """A reward function for TRL's GRPO/RLOO trainers that scores boxes written as text.

    Each completion is parsed (``BoxParser``: Qwen2.5-VL JSON, fenced or not, plain JSON
    box lists, or ``box_pattern`` regex tokens); its ground truth is read from the batch's
    dataset columns ``gt_boxes_column`` (per example a list of [x1, y1, x2, y2] in
    ``gt_coords``) and ``gt_labels_column`` (category names or 0-based indices into
    ``categories``; not read when ``categories`` is None, the class-agnostic case).

    kind:
      * ``"recall"`` (default): the paper's reward, ``rewards.detection.recall_reward``, with
        ``class_weights`` (aligned with ``categories``), ``duplicate_weight``,
        ``iou_thresholds`` and ``normalize`` under the library's names and defaults.
      * ``"map"``: COCO AP@[.5:.95] of the image, ``rewards.detection.map_reward`` (scores
        from the text's ``score``/``confidence`` when present, else 1.0: equal scores keep
        the written order), with ``iou_thresholds``, ``max_dets``, ``penalize_absent_classes``.
      * ``"f1"``: 2 TP / (predictions + ground truth), TP = objects found at IoU >
        ``iou_threshold`` by the recall reward's one-to-one matching; 1.0 when both are empty.
      * ``"mean_iou"``: sum of the IoUs of that matching (any IoU > 0) divided by
        max(predictions, ground truth), so both misses and extra boxes cost; one box against
        one box is their IoU. 1.0 when both are empty.

    Coordinates: ``coords`` is the space the model writes, ``gt_coords`` (default: the same)
    the space of ``gt_boxes``: ``"pixel"`` (absolute), ``"unit"`` ([0, 1]) or ``"1000"``
    ([0, 1000], Qwen2-VL / Qwen-VL). When they differ and one is ``"pixel"``, the image size
    comes from ``image_size_column``: per example (width, height), or a PIL image. Boxes are
    not clipped to the image. Every score is the library's on the parsed boxes mapped to
    ``gt_coords``.

    Model output never raises: a completion that is not a complete box list (prose only,
    truncated JSON, no regex match, not text at all) gets ``default`` and counts as a parse
    failure; ``[]`` is a valid answer with no boxes. A misconfigured column raises a
    ``ValueError`` naming it. The reward's ``__name__`` (TRL's log key) is ``name`` or
    ``"detection_<kind>"``.

    Example:
        >>> fn = detection_reward("f1", categories=["cat"], coords="1000", gt_coords="pixel")
        >>> fn(None, ['[{"bbox_2d": [0, 0, 500, 500], "label": "cat"}]', "no idea"],
        ...    gt_boxes=[[[0, 0, 320, 240]]] * 2, gt_labels=[[0]] * 2, image_size=[(640, 480)] * 2)
        [1.0, 0.0]
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    if coords not in COORDS:
        raise ValueError(f"`coords` must be one of {COORDS}, got {coords!r}")
    gt_coords = coords if gt_coords is None else gt_coords
    if gt_coords not in COORDS:
        raise ValueError(f"`gt_coords` must be one of {COORDS}, got {gt_coords!r}")
    for option, value in (
        ("gt_boxes_column", gt_boxes_column),
        ("gt_labels_column", gt_labels_column),
        ("image_size_column", image_size_column),
    ):
        if not isinstance(value, str):
            raise TypeError(f"`{option}` must be a column name (str), got {type(value).__name__}")
    parser = BoxParser(
        categories,
        text_format=text_format,
        box_pattern=box_pattern,
        box_keys=box_keys,
        label_keys=label_keys,
        score_keys=score_keys,
        box_format=box_format,
    )
    default = real_option(default, "default")
    iou_threshold = real_option(iou_threshold, "iou_threshold", low=0.0, high=1.0)
    options: dict[str, Any] = {}
    if kind == "recall":
        options["duplicate_weight"] = real_option(duplicate_weight, "duplicate_weight")
        options["normalize"] = bool(normalize)
        if class_weights is not None:
            if parser.categories is None:
                raise ValueError("`class_weights` need `categories` (they are aligned with it)")
            w = np.asarray(to_numpy(class_weights, "class_weights"), np.float64)
            if w.shape != (len(parser.categories),) or not np.isfinite(w).all():
                raise ValueError(
                    f"`class_weights` must hold {len(parser.categories)} finite numbers, one per category, "
                    f"got shape {w.shape}"
                )
            # The unknown-label id never matches: its weight is never read, 0 keeps it inert.
            options["class_weights"] = np.append(w, 0.0)
    elif class_weights is not None:
        raise ValueError(f"`class_weights` apply to kind='recall' only, not {kind!r}")
    if kind in ("f1", "mean_iou") and iou_thresholds is not None:
        raise ValueError(f"kind={kind!r} scores at one `iou_threshold`, not `iou_thresholds`")
    if kind in ("recall", "map") and iou_thresholds is not None:
        options["iou_thresholds"] = iou_thresholds
        detection.recall_reward_batch(
            [], [], iou_thresholds=iou_thresholds
        )  # validates now, not mid-training
    if kind == "map":
        options["max_dets"] = int_option(max_dets, "max_dets", low=1)
        options["penalize_absent_classes"] = bool(penalize_absent_classes)
    if name is None:
        name = f"detection_{kind}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")
    return DetectionReward(
        kind,
        parser,
        coords,
        gt_coords,
        gt_boxes_column,
        gt_labels_column,
        image_size_column,
        default,
        options,
        iou_threshold,
        name,
        bool(log_metrics),
    )


# ------------------------------------------------------------------ captioning


class CaptioningReward:
    """A CIDEr-D reward in TRL's shape; build it with ``captioning_reward``.

    ``fn.stats`` / ``fn.totals`` hold ``CaptioningStats`` as for ``DetectionReward``.
    """

    _CACHE_LIMIT = 200_000  # tokenized reference strings kept between batches

    def __init__(
        self,
        doc_freq: captioning.DocumentFrequencies,
        references_column: str,
        default: float,
        sigma: float,
        name: str,
        log_metrics: bool,
    ) -> None:
        self.doc_freq = doc_freq
        self.references_column = references_column
        self.default = default
        self.sigma = sigma
        self.__name__ = name
        self.log_metrics = log_metrics
        self.stats = CaptioningStats()
        self.totals = CaptioningStats()
        self._tokens: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"CaptioningReward(name={self.__name__!r}, {self.doc_freq!r})"

    def reset(self) -> None:
        """Clears ``totals``."""
        self.totals = CaptioningStats()

    def _tokenized(self, text: str) -> list[str]:
        tokens = self._tokens.get(text)
        if tokens is None:
            if len(self._tokens) >= self._CACHE_LIMIT:
                self._tokens.clear()
            tokens = self._tokens[text] = captioning.tokenize(text)
        return tokens

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, **columns: Any
    ) -> list[float]:
        if (
            completions is None
            or isinstance(completions, (str, bytes))
            or not hasattr(completions, "__len__")
        ):
            raise TypeError("`completions` must be the list of completions TRL passes")
        n = len(completions)
        column = _column(columns, self.references_column, n, "references_column")
        references: list = []
        previous: Any = None
        for i, refs in enumerate(column):
            if previous is not None and _same(refs, previous):
                references.append(references[-1])
                continue
            where = f"{self.references_column}[{i}]"
            items = refs.tolist() if isinstance(refs, np.ndarray) else refs
            if isinstance(items, str) or not isinstance(items, (list, tuple)) or not items:
                raise ValueError(
                    f"`{where}` must be a non-empty list of reference captions, got {refs!r:.200}"
                )
            for k, r in enumerate(items):
                if not isinstance(r, str):
                    raise ValueError(f"`{where}[{k}]` must be a str caption, got {type(r).__name__}")
            references.append([self._tokenized(r) for r in items])
            previous = refs
        candidates: list = []
        failed = np.zeros(n, bool)
        for i, completion in enumerate(completions):
            text = completion_text(completion)
            if text is None:
                failed[i] = True
                candidates.append([])
            else:
                candidates.append(captioning.tokenize(text))
        values = captioning.cider_reward_batch(candidates, references, self.doc_freq, sigma=self.sigma)
        values[failed] = self.default
        words = sum(len(c) for c in candidates)
        stats = CaptioningStats(
            completions=n,
            parse_failures=int(failed.sum()),
            empty_captions=sum(1 for c, f in zip(candidates, failed) if not c and not f),
            words=words,
        )
        self.stats = stats
        self.totals += stats
        log_metric = columns.get("log_metric")
        if self.log_metrics and callable(log_metric):
            for key, value in stats.as_dict().items():
                log_metric(f"{self.__name__}/{key}", value)
        return values.tolist()


def captioning_reward(
    document_frequencies: captioning.DocumentFrequencies,
    references_column: str = "references",
    default: float = 0.0,
    *,
    sigma: float = 6.0,
    name: str = "cider_d",
    log_metrics: bool = True,
) -> CaptioningReward:
    """A CIDEr-D reward function for TRL's GRPO/RLOO trainers (0..10 scale, as COCO reports).

    Completions and each example's references (column ``references_column``: a list of
    raw caption strings) go through the library's PTB tokenizer, as COCO does;
    ``document_frequencies`` come from the training references, computed once with
    ``rewards.captioning.document_frequencies`` on tokenized text. Scores are
    ``rewards.captioning.cider_reward_batch`` of the whole batch in one call. A completion
    without text gets ``default``; an empty caption scores 0.

    Example:
        >>> from rewards import captioning
        >>> corpus = [["A red bus.", "A bus on a street."], ["A cat on a bed."]]
        >>> df = captioning.document_frequencies(
        ...     [[" ".join(captioning.tokenize(r)) for r in refs] for refs in corpus])
        >>> fn = captioning_reward(df)
        >>> [round(v, 3) for v in fn(None, ["a red bus", "A cat."], references=[corpus[0], corpus[1]])]
        [4.341, 2.834]
    """
    if not isinstance(document_frequencies, captioning.DocumentFrequencies):
        raise TypeError(
            "`document_frequencies` must be a rewards.captioning.DocumentFrequencies "
            f"(from document_frequencies(...)), got {type(document_frequencies).__name__}"
        )
    if not isinstance(references_column, str):
        raise TypeError(
            f"`references_column` must be a column name (str), got {type(references_column).__name__}"
        )
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")
    return CaptioningReward(
        document_frequencies,
        references_column,
        real_option(default, "default"),
        real_option(sigma, "sigma", low=0.0, low_inclusive=False),
        name,
        bool(log_metrics),
    )
