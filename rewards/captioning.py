"""CIDEr-D captioning reward, exact against the COCO caption code, without Java.

CIDEr-D as in pycocoevalcap (``cider/cider_scorer.py``): n-grams n = 1..4,
raw counts as term frequencies, ``idf = log(N) - log(max(1, df))`` with N the
number of reference images and df the number of images whose references
contain the n-gram; per reference, per n, the clipped cosine
``sum_g min(h_g, r_g) r_g / (|h| |r|)`` times ``exp(-(l_h - l_r)^2 / (2 sigma^2))``
(l = number of bigrams); the score is 10 x the mean over references of the
mean over n.

Text is split on white space, as the COCO code does after its tokenizer: run
``tokenize`` first on raw captions (or pass lists of tokens). Document
frequencies are corpus state computed once from the training references
(``document_frequencies``), so a candidate's score never depends on the rest
of the batch.

Example:
    >>> from rewards import captioning
    >>> refs = [["a cat on a mat", "a cat sitting on a mat"], ["two dogs playing in the snow"]]
    >>> df = captioning.document_frequencies(refs)
    >>> round(captioning.cider_reward("a cat on a mat", refs[0], df), 4)
    7.336
    >>> captioning.cider_reward_batch(["a cat on a mat", "dogs"], refs, df).round(4).tolist()
    [7.336, 0.7212]
    >>> captioning.tokenize("A man's dog (black) can't swim.")
    ['a', 'man', "'s", 'dog', '-lrb-', 'black', '-rrb-', 'ca', "n't", 'swim']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from rewards import _cider_kernels
from rewards._ptb_tokenizer import ptb_tokenize

__all__ = [
    "DocumentFrequencies",
    "cider_reward",
    "cider_reward_batch",
    "document_frequencies",
    "tokenize",
]

MAX_N = _cider_kernels.MAX_N
Text = Union[str, Sequence[str]]


def tokenize(text: str) -> list[str]:
    """Tokens of a caption exactly as the COCO caption evaluation produces them.

    Emulates pycocoevalcap's PTBTokenizer (Stanford PTBTokenizer 3.4.1 with
    ``-preserveLines -lowerCase``, then its list of dropped punctuation) in
    pure Python: contractions split ("ca n't", "'s"), "%" and "$" split off,
    abbreviations ("u.s.", "mr.", "st.") and hyphenated words kept, newlines
    as spaces, and the bracket tokens it fails to drop (``-lrb-``, ``-rrb-``).
    Known gaps (not caption-like): HTML tags and "?" glued between words.

    Example:
        >>> tokenize('The U.S. flag -- "half-mast", 50% off!')
        ['the', 'u.s.', 'flag', 'half-mast', '50', '%', 'off']
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}")
    return ptb_tokenize(text)


def _tokens(text: object, name: str) -> list[str]:
    if isinstance(text, str):
        return text.split()
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return list(text)
    raise TypeError(f"`{name}` must be a str or a list of str tokens, got {type(text).__name__}")


def _references(refs: object, name: str) -> list[list[str]]:
    if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"`{name}` must be a list of reference captions, got {type(refs).__name__}")
    if len(refs) == 0:
        raise ValueError(f"`{name}` is empty: an image needs at least one reference caption")
    return [_tokens(r, f"{name}[{i}]") for i, r in enumerate(refs)]


_KEY_SHIFT = 32  # n-gram key = (id of its (n-1)-gram prefix) << 32 | id of its last word


@dataclass(frozen=True, eq=False)
class DocumentFrequencies:
    """Corpus state for CIDEr-D: how many reference images contain each n-gram.

    N-grams are numbered per order n: words by ``words``, an n-gram of order
    n > 1 by the position of its key (prefix id << 32 | word id) in
    ``keys[n - 2]``. ``df[n - 1][id]`` is the document frequency.
    Build with ``document_frequencies``; ``save``/``load`` keep it on disk.
    """

    n_images: int
    words: tuple[str, ...]
    keys: tuple[np.ndarray, ...]
    df: tuple[np.ndarray, ...]
    word_ids: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "word_ids", {w: i for i, w in enumerate(self.words)})
        sizes = np.array([len(self.words)] + [k.size for k in self.keys], np.int64)
        object.__setattr__(self, "_df_flat", np.concatenate(self.df).astype(np.int64))
        object.__setattr__(self, "_df_size", sizes)
        object.__setattr__(self, "_df_start", np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))

    def __repr__(self) -> str:
        return f"DocumentFrequencies(n_images={self.n_images}, words={len(self.words)}, ngrams={int(self._df_size.sum())})"

    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz file (no pickle)."""
        arrays = {f"keys_{n + 2}": k for n, k in enumerate(self.keys)}
        arrays.update({f"df_{n + 1}": d for n, d in enumerate(self.df)})
        np.savez_compressed(path, n_images=self.n_images, words=np.array(self.words, dtype=str), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DocumentFrequencies":
        with np.load(path, allow_pickle=False) as f:
            return cls(
                int(f["n_images"]),
                tuple(f["words"].tolist()),
                tuple(f[f"keys_{n}"] for n in range(2, MAX_N + 1)),
                tuple(f[f"df_{n}"] for n in range(1, MAX_N + 1)),
            )


def _flatten(captions: list[list[str]], word_ids: dict) -> tuple[np.ndarray, np.ndarray]:
    """Word ids of all captions, concatenated, and caption offsets; unseen words get new ids."""
    lengths = np.fromiter((len(c) for c in captions), np.int64, len(captions))
    offsets = np.zeros(len(captions) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    extra: dict = {}
    base = len(word_ids)
    get = word_ids.get
    flat = np.fromiter(
        (get(w) if w in word_ids else extra.setdefault(w, base + len(extra)) for c in captions for w in c),
        np.int64,
        int(offsets[-1]),
    )
    return flat, offsets


def _ngram_ids(words: np.ndarray, offsets: np.ndarray, known_keys):
    """Per order n, the id of the n-gram starting at each position, and which positions have one.

    ``known_keys`` (sorted, per order 2..4) fixes the ids of known n-grams;
    unknown ones get ids after them (consistent within this call). With
    ``known_keys=None`` the keys are built from these captions.
    """
    lengths = np.diff(offsets)
    remaining = np.repeat(offsets[1:], lengths) - np.arange(words.size)  # words from here to caption end
    ids = [words]
    keys_out = []
    for n in range(2, MAX_N + 1):
        valid = remaining >= n
        prev = ids[-1]
        key = np.zeros(words.size, np.int64)
        nxt = np.flatnonzero(valid)
        key[nxt] = (prev[nxt] << _KEY_SHIFT) | words[nxt + n - 1]
        if known_keys is None:
            table = np.unique(key[nxt])
            keys_out.append(table)
            ids_n = np.searchsorted(table, key)
        else:
            table = known_keys[n - 2]
            if table.size:
                pos = np.minimum(np.searchsorted(table, key), table.size - 1)
                found = valid & (table[pos] == key)
            else:
                pos, found = np.zeros(words.size, np.int64), np.zeros(words.size, bool)
            ids_n = np.where(found, pos, 0)
            unknown = valid & ~found
            if unknown.any():
                new_keys, inverse = np.unique(key[unknown], return_inverse=True)
                ids_n[unknown] = table.size + inverse.reshape(-1)
        ids.append(ids_n)
    return ids, remaining, keys_out


def document_frequencies(refs_per_image: Sequence[Sequence[Text]]) -> DocumentFrequencies:
    """Document frequencies of all n-grams (n = 1..4) over a corpus of reference sets.

    ``refs_per_image``: one list of reference captions per image (strings are
    split on white space; tokenize raw text first). An n-gram's df counts the
    images whose references contain it.

    Example:
        >>> df = document_frequencies([["a cat", "the cat"], ["a dog"]])
        >>> df.n_images, len(df.words)
        (2, 4)
    """
    if isinstance(refs_per_image, (str, bytes)) or not hasattr(refs_per_image, "__len__"):
        raise TypeError("`refs_per_image` must be a list with one list of reference captions per image")
    if len(refs_per_image) == 0:
        raise ValueError("`refs_per_image` is empty")
    captions: list[list[str]] = []
    per_image = np.empty(len(refs_per_image), np.int64)
    for i, refs in enumerate(refs_per_image):
        tokens = _references(refs, f"refs_per_image[{i}]")
        captions.extend(tokens)
        per_image[i] = len(tokens)
    vocab: dict = {}
    for c in captions:
        for w in c:
            if w not in vocab:
                vocab[w] = len(vocab)
    words, offsets = _flatten(captions, vocab)
    ids, remaining, keys = _ngram_ids(words, offsets, None)
    image_of_caption = np.repeat(np.arange(len(refs_per_image)), per_image)
    image = np.repeat(image_of_caption, np.diff(offsets))
    df = []
    sizes = [len(vocab)] + [k.size for k in keys]
    for n in range(MAX_N):
        valid = remaining >= n + 1
        pairs = np.unique(image[valid] * sizes[n] + ids[n][valid])
        df.append(np.bincount(pairs % sizes[n], minlength=sizes[n]).astype(np.int64) if sizes[n] else np.zeros(0, np.int64))
    return DocumentFrequencies(len(refs_per_image), tuple(vocab), tuple(keys), tuple(df))


def _score(groups: list[tuple[list[list[str]], list[list[str]]]], doc_freq: DocumentFrequencies, sigma: float):
    if not isinstance(doc_freq, DocumentFrequencies):
        raise TypeError(f"`doc_freq` must be a DocumentFrequencies, got {type(doc_freq).__name__}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"`sigma` must be a positive number, got {sigma!r}")
    candidates = [c for cands, _ in groups for c in cands]
    references = [r for _, refs in groups for r in refs]
    captions = candidates + references
    words, offsets = _flatten(captions, doc_freq.word_ids)
    ids, remaining, _ = _ngram_ids(words, offsets, doc_freq.keys)
    caption_of = np.repeat(np.arange(len(captions)), np.diff(offsets))
    flat_parts, ngram_offsets = [], np.zeros((MAX_N, len(captions) + 1), np.int64)
    start = 0
    for n in range(MAX_N):
        valid = remaining >= n + 1
        flat_parts.append(ids[n][valid])
        counts = np.bincount(caption_of[valid], minlength=len(captions))
        ngram_offsets[n, 0] = start
        np.cumsum(counts, out=ngram_offsets[n, 1:])
        ngram_offsets[n, 1:] += start
        start += int(valid.sum())
    ngrams = np.concatenate(flat_parts)
    n_cands = np.array([len(c) for c, _ in groups], np.int64)
    n_refs = np.array([len(r) for _, r in groups], np.int64)
    group_cands = np.concatenate([[0], np.cumsum(n_cands)]).astype(np.int64)
    group_refs = (len(candidates) + np.concatenate([[0], np.cumsum(n_refs)])).astype(np.int64)
    out = np.empty(len(candidates))
    _cider_kernels.cider_groups(
        ngrams, ngram_offsets, group_refs, group_cands,
        doc_freq._df_flat, doc_freq._df_start, doc_freq._df_size,
        float(np.log(float(doc_freq.n_images))), float(sigma), out,
    )
    return out


def cider_reward(
    candidate: Text, references: Sequence[Text], doc_freq: DocumentFrequencies, *, sigma: float = 6.0
) -> float:
    """CIDEr-D (0..10 scale of the COCO code) of one candidate caption against its references.

    ``candidate``: a tokenized string or list of tokens (empty scores 0).
    ``references``: the image's reference captions (at least one).
    ``doc_freq``: corpus document frequencies from ``document_frequencies``.
    When ``doc_freq`` comes from the very references being scored, the value
    equals pycocoevalcap's per-image Cider score.

    Example:
        >>> df = document_frequencies([["a red bus"], ["a cat"], ["a dog"]])
        >>> # a perfect copy scores 10 x 3/4 here: a 3-word caption has no 4-grams
        >>> round(cider_reward("a red bus", ["a red bus"], df), 4), cider_reward("", ["a red bus"], df)
        (7.5, 0.0)
    """
    return float(_score([([_tokens(candidate, "candidate")], _references(references, "references"))], doc_freq, sigma)[0])


def cider_reward_batch(
    candidates: Sequence[Text],
    references_list: Sequence[Sequence[Text]],
    doc_freq: DocumentFrequencies,
    *,
    sigma: float = 6.0,
) -> np.ndarray:
    """``cider_reward`` of each (candidate, references) pair in one compiled pass; float64 (B,).

    Consecutive pairs that share the same references object (the N samples
    of one image) have their reference vectors built once and reused.

    Example:
        >>> refs = [["a red bus on a street"], ["a cat on a bed"]]
        >>> df = document_frequencies(refs)
        >>> samples = ["a red bus", "a bus on a street", "a cat"]
        >>> cider_reward_batch(samples, [refs[0], refs[0], refs[1]], df).round(3).tolist()
        [4.465, 5.867, 2.834]
    """
    if isinstance(candidates, str) or not hasattr(candidates, "__len__"):
        raise TypeError("`candidates` must be a list of captions")
    if isinstance(references_list, str) or not hasattr(references_list, "__len__"):
        raise TypeError("`references_list` must be a list with one list of references per candidate")
    if len(candidates) != len(references_list):
        raise ValueError(
            f"`candidates` has {len(candidates)} captions but `references_list` has {len(references_list)}"
        )
    groups: list = []
    previous = None
    for i, (cand, refs) in enumerate(zip(candidates, references_list)):
        tokens = _tokens(cand, f"candidates[{i}]")
        if refs is previous and groups:
            groups[-1][0].append(tokens)
        else:
            groups.append(([tokens], _references(refs, f"references_list[{i}]")))
            previous = refs
    if not groups:
        return np.zeros(0)
    return _score(groups, doc_freq, sigma)
