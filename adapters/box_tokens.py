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

import numpy as np

TOKENS_PER_BOX = 6
PAD = 0


@dataclass(frozen=True)
class BoxTokenizer:
    """Encodes boxes to tokens and back. Coordinates are yxyx, normalised to [0, 1]."""

    n_classes: int
    n_bins: int = 1000
    n_confidence: int = 2

    def __post_init__(self):
        if self.n_classes < 1 or self.n_bins < 2 or self.n_confidence < 1:
            raise ValueError(
                f"need n_classes >= 1, n_bins >= 2, n_confidence >= 1; got {self.n_classes}, "
                f"{self.n_bins}, {self.n_confidence}"
            )

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

    def quantize(self, coords: np.ndarray) -> np.ndarray:
        """Coordinates in [0, 1] -> coordinate tokens."""
        levels = np.clip(np.rint(np.asarray(coords, np.float64) * (self.n_bins - 1)), 0, self.n_bins - 1)
        return levels.astype(np.int64) + self.coord_offset

    def dequantize(self, tokens: np.ndarray) -> np.ndarray:
        """Coordinate tokens -> coordinates in [0, 1]."""
        return (np.asarray(tokens) - self.coord_offset) / (self.n_bins - 1)

    def encode(
        self,
        boxes: np.ndarray,
        labels: np.ndarray,
        valid: np.ndarray,
        confidence: np.ndarray | int | None = None,
    ) -> np.ndarray:
        """Padded boxes (B, K, 4) yxyx in [0, 1], labels (B, K), valid (B, K) -> tokens (B, 6K).

        Valid boxes must come first in each row (the first PAD ends a
        sequence). ``confidence``: tokens 1..n_confidence per box, default high.
        """
        boxes = np.asarray(boxes, np.float64)
        labels = np.asarray(labels)
        valid = np.asarray(valid, bool)
        if boxes.ndim != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"`boxes` must have shape (B, K, 4), got {boxes.shape}")
        if labels.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
            raise ValueError(
                f"`labels` {labels.shape} and `valid` {valid.shape} must have shape {boxes.shape[:2]}"
            )
        if (np.diff(valid.astype(np.int8), axis=1) > 0).any():
            raise ValueError("`valid` boxes must come first in each row (padding at the end)")
        if valid.any() and (labels[valid].min() < 0 or labels[valid].max() >= self.n_classes):
            raise ValueError(f"`labels` must lie in [0, {self.n_classes}) for valid boxes")
        conf = self.high_confidence if confidence is None else confidence
        conf = np.broadcast_to(np.asarray(conf, np.int64), valid.shape)
        if valid.any() and (conf[valid].min() < 1 or conf[valid].max() > self.n_confidence):
            raise ValueError(f"`confidence` tokens must lie in [1, {self.n_confidence}]")
        tokens = np.concatenate(
            [self.quantize(boxes), (labels.astype(np.int64) + self.class_offset)[..., None], conf[..., None]],
            axis=-1,
        )
        tokens[~valid] = PAD
        return tokens.reshape(boxes.shape[0], -1)

    def decode(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Tokens (B, L) -> padded {"boxes" (B, K, 4) yxyx, "labels", "confidence", "valid"} with K = L // 6.

        A box is well-formed when its four coordinate slots hold coordinate
        tokens, its class slot a class token and its confidence slot a
        confidence token; the first malformed box (PAD included) ends the
        sequence. A well-formed box with ymax < ymin or xmax < xmin is not
        valid but does not end the sequence.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"`tokens` must have shape (B, L), got {tokens.shape}")
        k = tokens.shape[1] // TOKENS_PER_BOX
        t = tokens[:, : k * TOKENS_PER_BOX].reshape(tokens.shape[0], k, TOKENS_PER_BOX).astype(np.int64)
        coords, cls, conf = t[..., :4], t[..., 4], t[..., 5]
        is_coord = (coords >= self.coord_offset) & (coords < self.class_offset)
        well_formed = (
            is_coord.all(-1)
            & (cls >= self.class_offset) & (cls < self.vocab_size)
            & (conf >= 1) & (conf <= self.n_confidence)
        )
        in_sequence = np.cumprod(well_formed, axis=1).astype(bool)
        boxes = np.where(is_coord, self.dequantize(coords), 0.0)
        ordered = (boxes[..., 2] >= boxes[..., 0]) & (boxes[..., 3] >= boxes[..., 1])
        valid = in_sequence & ordered
        return {
            "boxes": np.where(valid[..., None], boxes, 0.0),
            "labels": np.where(valid, cls - self.class_offset, 0),
            "confidence": np.where(valid, conf, 0),
            "valid": valid,
        }
