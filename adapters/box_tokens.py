"""Box token codec of the paper (pix2seq style, as in big_vision's detection reward).

Each box is 6 tokens: ymin, xmin, ymax, xmax (quantized to ``n_bins``
levels over [0, 1]), class, confidence. The vocabulary is laid out as
big_vision's ``seq2box`` expects:

    0                                   PAD (also ends a sequence)
    1 .. n_confidence                   confidence levels (1 = low ... n = high)
    coord_offset .. + n_bins - 1        coordinate bins
    class_offset .. + n_classes - 1     classes

Sequences are padded (B, L) int arrays; decoding returns padded arrays that
go straight into ``rewards.detection.*_padded`` without Python dicts.

Inputs may be numpy arrays, lists, torch tensors or jax arrays. What is
rejected, with a ``ValueError`` naming the argument and the box (padding, where
``valid`` is False, is never read):

- coordinates that are NaN, infinite or outside [0, 1] (pixel coordinates:
  divide by the image height and width first; nothing is clipped), and boxes
  with ymax < ymin or xmax < xmin (a decoder drops such boxes, so a model
  trained on them would learn to emit boxes that score nothing);
- labels and confidence levels that are not whole numbers in range (floats
  with an integral value such as 2.0 are accepted);
- tokens given as floats with a fractional part (integral floats are read as
  ids), bools, or anything but numbers.

Example:
    >>> import numpy as np
    >>> codec = BoxTokenizer(n_classes=3, n_bins=11)
    >>> boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 0, 0]]])       # yxyx in [0, 1]
    >>> tokens = codec.encode(boxes, np.array([[2, 0]]), np.array([[True, False]]))
    >>> tokens.tolist()
    [[4, 5, 8, 9, 16, 2, 0, 0, 0, 0, 0, 0]]
    >>> out = codec.decode(tokens)
    >>> out["boxes"][0, 0].round(2).tolist(), out["labels"][0].tolist(), out["valid"][0].tolist()
    ([0.1, 0.2, 0.5, 0.6], [2, 0], [True, False])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rewards._inputs import int_option, to_numpy

TOKENS_PER_BOX = 6
PAD = 0


@dataclass(frozen=True)
class BoxTokenizer:
    """Encodes boxes to tokens and back. Coordinates are yxyx, normalised to [0, 1]."""

    n_classes: int
    n_bins: int = 1000
    n_confidence: int = 2

    def __post_init__(self) -> None:
        # frozen dataclass: store the validated ints (2.0 -> 2) through object.__setattr__
        object.__setattr__(self, "n_classes", int_option(self.n_classes, "n_classes", low=1))
        object.__setattr__(self, "n_bins", int_option(self.n_bins, "n_bins", low=2))
        object.__setattr__(self, "n_confidence", int_option(self.n_confidence, "n_confidence", low=1))

    @property
    def coord_offset(self) -> int:
        return 1 + self.n_confidence

    @property
    def class_offset(self) -> int:
        return self.coord_offset + self.n_bins

    @property
    def vocab_size(self) -> int:
        return self.class_offset + self.n_classes

    @property
    def high_confidence(self) -> int:
        return self.n_confidence

    def quantize(self, coords: Any) -> np.ndarray:
        """Coordinates in [0, 1] -> coordinate tokens (nearest bin).

        Example:
            >>> BoxTokenizer(n_classes=1, n_bins=11).quantize([0.0, 0.5, 1.0]).tolist()
            [3, 8, 13]
        """
        coords = _coordinates(coords, "coords")
        return np.rint(coords * (self.n_bins - 1)).astype(np.int64) + self.coord_offset

    def dequantize(self, tokens: Any) -> np.ndarray:
        """Coordinate tokens -> coordinates in [0, 1]."""
        return (_token_ids(tokens, "tokens") - self.coord_offset) / (self.n_bins - 1)

    def encode(
        self,
        boxes: Any,
        labels: Any,
        valid: Any,
        confidence: Any = None,
    ) -> np.ndarray:
        """Padded boxes (B, K, 4) yxyx in [0, 1], labels (B, K), valid (B, K) -> tokens (B, 6K).

        Valid boxes must come first in each row (the first PAD ends a
        sequence). ``confidence``: tokens 1..n_confidence per box (an int or
        a (B, K) array), default high. Entries where ``valid`` is False are
        never read and encode as PAD.

        Example:
            >>> codec = BoxTokenizer(n_classes=2, n_bins=11)
            >>> codec.encode([[[0.0, 0.0, 1.0, 1.0]]], [[1]], [[True]]).tolist()
            [[3, 3, 13, 13, 15, 2]]
            >>> codec.encode([[[0, 0, 480, 640]]], [[1]], [[True]])
            Traceback (most recent call last):
            ...
            ValueError: `boxes[0, 0]` = [0.0, 0.0, 480.0, 640.0] has coordinates outside [0, 1]: BoxTokenizer takes yxyx coordinates normalised by the image size (divide by its height and width)
        """
        boxes = to_numpy(boxes, "boxes")
        if boxes.dtype.kind not in "fiu":
            raise ValueError(f"`boxes` must hold real coordinates, got dtype {boxes.dtype}")
        boxes = boxes.astype(np.float64)
        valid = to_numpy(valid, "valid")
        if valid.dtype.kind not in "biuf":
            raise ValueError(f"`valid` must be bool, got dtype {valid.dtype}")
        valid = valid != 0
        if boxes.ndim != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"`boxes` must have shape (B, K, 4), got {boxes.shape}")
        if valid.shape != boxes.shape[:2]:
            raise ValueError(f"`valid` must have shape {boxes.shape[:2]}, got {valid.shape}")
        labels = _whole_numbers(labels, "labels", boxes.shape[:2], valid)
        if (np.diff(valid.astype(np.int8), axis=1) > 0).any():
            raise ValueError("`valid` boxes must come first in each row (padding at the end)")
        _check_boxes(boxes, valid)
        _check_range(labels, valid, "labels", 0, self.n_classes - 1)
        conf = self.high_confidence if confidence is None else confidence
        conf = np.broadcast_to(_whole_numbers(conf, "confidence", None, None), valid.shape)
        _check_range(conf, valid, "confidence", 1, self.n_confidence)
        coords = np.where(valid[..., None], boxes, 0.0)
        tokens = np.concatenate(
            [self.quantize(coords), (labels + self.class_offset)[..., None], conf[..., None]],
            axis=-1,
        )
        tokens[~valid] = PAD
        return tokens.reshape(boxes.shape[0], -1)

    def decode(self, tokens: Any) -> dict[str, np.ndarray]:
        """Tokens (B, L) -> padded {"boxes" (B, K, 4) yxyx, "labels", "confidence", "valid"} with K = L // 6.

        A box is well-formed when its four coordinate slots hold coordinate
        tokens, its class slot a class token and its confidence slot a
        confidence token; the first malformed box (PAD included) ends the
        sequence. A well-formed box with ymax < ymin or xmax < xmin is not
        valid but does not end the sequence. Tokens must be integers (floats
        with integral values are read as ids; a fractional float raises).

        Example:
            >>> BoxTokenizer(n_classes=2, n_bins=11).decode([[3, 3, 13, 13, 15, 2, 0, 0, 0, 0, 0, 0]])["valid"].tolist()
            [[True, False]]
        """
        tokens = _token_ids(tokens, "tokens")
        if tokens.ndim != 2:
            raise ValueError(f"`tokens` must have shape (B, L), got {tokens.shape}")
        k = tokens.shape[1] // TOKENS_PER_BOX
        t = tokens[:, : k * TOKENS_PER_BOX].reshape(tokens.shape[0], k, TOKENS_PER_BOX)
        coords, cls, conf = t[..., :4], t[..., 4], t[..., 5]
        is_coord = (coords >= self.coord_offset) & (coords < self.class_offset)
        well_formed = (
            is_coord.all(-1)
            & (cls >= self.class_offset)
            & (cls < self.vocab_size)
            & (conf >= 1)
            & (conf <= self.n_confidence)
        )
        in_sequence = np.cumprod(well_formed, axis=1).astype(bool)
        boxes = np.where(is_coord, (coords - self.coord_offset) / (self.n_bins - 1), 0.0)
        ordered = (boxes[..., 2] >= boxes[..., 0]) & (boxes[..., 3] >= boxes[..., 1])
        valid = in_sequence & ordered
        return {
            "boxes": np.where(valid[..., None], boxes, 0.0),
            "labels": np.where(valid, cls - self.class_offset, 0),
            "confidence": np.where(valid, conf, 0),
            "valid": valid,
        }


def _where(index: tuple) -> str:
    return ", ".join(str(int(i)) for i in index)


def _coordinates(coords: Any, name: str) -> np.ndarray:
    """Finite float64 coordinates in [0, 1]; a ValueError naming the first bad entry."""
    a = to_numpy(coords, name)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must hold real coordinates, got dtype {a.dtype}")
    a = a.astype(np.float64)
    bad = ~((a >= 0) & (a <= 1))
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad.reshape(-1))), a.shape)
        raise ValueError(
            f"`{name}[{_where(where)}]` = {a[where]} is not a coordinate in [0, 1]: BoxTokenizer takes "
            "coordinates normalised by the image size (divide by its height and width)"
        )
    return a


def _check_boxes(boxes: np.ndarray, valid: np.ndarray) -> None:
    """Valid boxes: finite yxyx coordinates in [0, 1] with ymin <= ymax and xmin <= xmax."""
    finite = np.isfinite(boxes).all(-1)
    inside = ((boxes >= 0) & (boxes <= 1)).all(-1)
    ordered = (boxes[..., 2] >= boxes[..., 0]) & (boxes[..., 3] >= boxes[..., 1])
    problems = (
        (valid & ~finite, "contains NaN or infinite coordinates"),
        (
            valid & finite & ~inside,
            "has coordinates outside [0, 1]: BoxTokenizer takes yxyx coordinates "
            "normalised by the image size (divide by its height and width)",
        ),
        (valid & inside & ~ordered, "has ymax < ymin or xmax < xmin (yxyx order expected)"),
    )
    for bad, problem in problems:
        if bad.any():
            i, k = np.unravel_index(int(np.argmax(bad.reshape(-1))), bad.shape)
            raise ValueError(f"`boxes[{i}, {k}]` = {boxes[i, k].tolist()} {problem}")


def _whole_numbers(x: Any, name: str, shape: tuple | None, valid: np.ndarray | None) -> np.ndarray:
    """int64 whole numbers (integral floats accepted); only entries where ``valid`` are checked."""
    a = to_numpy(x, name)
    if shape is not None and a.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {a.shape}")
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind != "f":
        raise ValueError(f"`{name}` must hold integers, got dtype {a.dtype}")
    read = np.ones(a.shape, bool) if valid is None else valid
    bad = read & ~(np.isfinite(a) & (a == np.round(a)))
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad.reshape(-1))), a.shape)
        raise ValueError(f"`{name}[{_where(where)}]` = {a[where]} is not a whole number")
    return np.where(read, a, 0).astype(np.int64)


def _check_range(a: np.ndarray, valid: np.ndarray, name: str, low: int, high: int) -> None:
    bad = valid & ((a < low) | (a > high))
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad.reshape(-1))), a.shape)
        raise ValueError(
            f"`{name}[{_where(where)}]` = {a[where]} must lie in [{low}, {high}] for valid boxes"
        )


def _token_ids(tokens: Any, name: str) -> np.ndarray:
    """Integer token ids as int64; floats must hold whole numbers."""
    a = to_numpy(tokens, name)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        return _whole_numbers(a, name, None, None)
    raise ValueError(f"`{name}` must hold integer token ids, got dtype {a.dtype}")
