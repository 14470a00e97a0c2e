"""Reference captions of the generated scenes, and the word vocabulary.

Every image gets five phrasings built from its visible shapes, e.g.
"three shapes a red rectangle a green ellipse and a blue triangle" or
"from top to bottom a blue triangle a red rectangle and a green ellipse".
The text is lower case without punctuation, so the COCO tokenizer leaves it
as is.
"""

from __future__ import annotations

import numpy as np

from reference_training.data import CLASS_NAMES, Scenes

# Colour names of each kind's palette (data.PALETTES), in the same order.
COLOUR_NAMES = (("red", "orange"), ("green", "lime"), ("blue", "cyan"), ("magenta", "purple"))
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
FILLERS = (
    "a an and are big biggest from image is left of right shape shapes small the there to top bottom".split()
)


def vocabulary() -> list[str]:
    words = set(FILLERS) | set(NUMBERS) | set(CLASS_NAMES) | {c for pair in COLOUR_NAMES for c in pair}
    return sorted(words)


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else " ".join(phrases[:-1]) + " and " + phrases[-1]


def describe(boxes: np.ndarray, labels: np.ndarray, colours: np.ndarray, valid: np.ndarray) -> list[str]:
    """Five reference captions of one scene (boxes yxyx in [0, 1])."""
    idx = np.flatnonzero(valid)
    n = idx.size
    if n == 0:
        return ["an image with no shapes"] * 5
    area = (boxes[idx, 2] - boxes[idx, 0]) * (boxes[idx, 3] - boxes[idx, 1])
    name = {i: f"{COLOUR_NAMES[labels[i]][colours[i]]} {CLASS_NAMES[labels[i]]}" for i in idx}
    sized = {i: f"a {'big' if a > 0.06 else 'small'} {name[i]}" for i, a in zip(idx, area)}
    left_to_right = idx[np.argsort((boxes[idx, 1] + boxes[idx, 3]), kind="stable")]
    top_to_bottom = idx[np.argsort((boxes[idx, 0] + boxes[idx, 2]), kind="stable")]
    biggest = idx[int(np.argmax(area))]
    count = f"{NUMBERS[n]} {'shape' if n == 1 else 'shapes'}"
    return [
        f"{count} " + _join([f"a {name[i]}" for i in left_to_right]),
        _join([sized[i] for i in left_to_right]) + " from left to right",
        "from top to bottom " + _join([f"a {name[i]}" for i in top_to_bottom]),
        "an image of " + _join([sized[i] for i in left_to_right]),
        f"there {'is' if n == 1 else 'are'} {count} the biggest is a {name[biggest]}",
    ]


def references(scenes: Scenes) -> list[list[str]]:
    return [
        describe(b, lab, col, v)
        for b, lab, col, v in zip(scenes.boxes, scenes.labels, scenes.colours, scenes.valid)
    ]


class WordCodec:
    """Captions <-> token ids: 0 ends (PAD), words from 1, BOS last (vocab_size - 1)."""

    def __init__(self, words: list[str]):
        self.words = words
        self.ids = {w: i + 1 for i, w in enumerate(words)}
        self.vocab_size = len(words) + 2

    def encode(self, captions: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids (B, length) ending with PAD, and the loss mask up to and including the end."""
        tokens = np.zeros((len(captions), length), np.int64)
        mask = np.zeros((len(captions), length), bool)
        for row, caption in enumerate(captions):
            ids = [self.ids[w] for w in caption.split()][: length - 1]
            tokens[row, : len(ids)] = ids
            mask[row, : len(ids) + 1] = True
        return tokens, mask

    def decode(self, tokens: np.ndarray) -> list[str]:
        out = []
        for row in np.asarray(tokens):
            words = []
            for t in row:
                if t == 0 or t > len(self.words):
                    break
                words.append(self.words[t - 1])
            out.append(" ".join(words))
        return out
