"""Captioning rewards and the COCO caption evaluation, exact against pycocoevalcap, without Java.

CIDEr-D as in pycocoevalcap (``cider/cider_scorer.py``): n-grams n = 1..4,
raw counts as term frequencies, ``idf = log(N) - log(max(1, df))`` with N the
number of reference images and df the number of images whose references
contain the n-gram; per reference, per n, the clipped cosine
``sum_g min(h_g, r_g) r_g / (|h| |r|)`` times ``exp(-(l_h - l_r)^2 / (2 sigma^2))``
(l = number of bigrams); the score is 10 x the mean over references of the
mean over n. BLEU-1..4 (``bleu``) and ROUGE-L (``rouge_l``) are pycocoevalcap's
per-image values; ``coco_caption_eval`` gives its corpus values too, and
``python -m rewards.captioning GT.json RESULTS.json`` evaluates COCO files.
METEOR and SPICE are not provided (they need Java in pycocoevalcap too).

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
    >>> round(captioning.bleu("a cat on a mat", refs[0]), 4), round(captioning.rouge_l("a cat on a mat", refs[0]), 4)
    (1.0, 1.0)
    >>> captioning.tokenize("A man's dog (black) can't swim.")
    ['a', 'man', "'s", 'dog', '-lrb-', 'black', '-rrb-', 'ca', "n't", 'swim']
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import re
import sys
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from rewards import _caption_files, _cider_kernels, _rouge_kernels
from rewards._inputs import check_batch_lengths, int_option, offsets_from_lengths, real_option
from rewards._ptb_tokenizer import ptb_tokenize, ptb_tokenize_lines

__all__ = [
    "CaptionEval",
    "DocumentFrequencies",
    "bleu",
    "bleu_batch",
    "cider_reward",
    "cider_reward_batch",
    "coco_caption_eval",
    "coco_references",
    "document_frequencies",
    "evaluate_files",
    "main",
    "rouge_l",
    "rouge_l_batch",
    "tokenize",
    "tokenize_captions",
]

MAX_N = _cider_kernels.MAX_N
Text = str | Sequence[str]
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr")
_ROUGE_BETA = 1.2
# White space other than spaces and newlines: where splitting on single spaces (ROUGE)
# and on white space (BLEU, CIDEr) can differ besides runs of spaces, spaces at either end
# and empty captions.
_OTHER_SPACE = re.compile(r"[^\S \n]")


def tokenize(text: str) -> list[str]:
    """Tokens of a caption exactly as the COCO caption evaluation produces them.

    Emulates pycocoevalcap's PTBTokenizer (Stanford PTBTokenizer 3.4.1 with
    ``-preserveLines -lowerCase``, then its list of dropped punctuation) in
    pure Python, rule for rule: contractions split ("ca n't", "'s") while
    apostrophe words stay whole ("hors d'oeuvres", "o'brien 's", "ma'am"),
    "%" and "$" split off, "#" split from numbers ("# 41"), an integer and a
    fraction joined by a non-breaking space ("22\u00a03/4", one token),
    abbreviations ("u.s.", "mr.", "st.") and single-letter initials keep their
    period, except an initial before a sentence-opening word ("a person I. A
    hood" gives "i"), hyphenated words kept, newlines as spaces, and the
    bracket tokens it fails to drop (``-lrb-``, ``-rrb-``). Checked token for
    token against the jar on all 25,014 COCO val2017 captions.

    Decisions where the jar's behaviour depends on the file around the caption:

    * The caption is taken as a line of pycocoevalcap's file followed by a
      line that does not open with a sentence opener. In a real file an
      initial ending a line before a line opening with "A", "The", ... loses
      its period ("k." becomes "k"), and the last line of the file differs in
      a few rules; ``tokenize_captions`` reproduces the file exactly.
    * Characters the jar cannot tokenize are deleted, as the jar deletes them:
      control characters (``\x00``, ``\x07``, escape), zero-width
      joiners and spaces, emoji and every other character outside the Basic
      Multilingual Plane ("a 👩\u200d👧 family" gives ['a', 'family']).
    * Line breaks other than ``\n`` (``\r``, ``\u2028``, ...) are spaces here;
      pycocoevalcap only replaces ``\n``, so the jar would split such a
      caption over two output lines and misalign every later caption.

    Example:
        >>> tokenize('The U.S. flag -- "half-mast", 50% off!')
        ['the', 'u.s.', 'flag', 'half-mast', '50', '%', 'off']
        >>> tokenize("hors d'oeuvres on 22 3/4 St. near the #41 bus")
        ['hors', "d'oeuvres", 'on', '22\xa03/4', 'st.', 'near', 'the', '#', '41', 'bus']
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}")
    return ptb_tokenize(text)


def tokenize_captions(captions: Sequence[str]) -> list[list[str]]:
    """Tokens of each caption exactly as pycocoevalcap's one-file tokenizer run gives them.

    pycocoevalcap writes the captions one per line (no newline after the last)
    and tokenizes the file at once; a caption's tokens can depend on the next
    line's first word and on being the last line, which this reproduces.

    Example:
        >>> tokenize_captions(["A sign that reads K.", "A street.", "A sign that reads K."])
        [['a', 'sign', 'that', 'reads', 'k'], ['a', 'street'], ['a', 'sign', 'that', 'reads', 'k.']]
    """
    if isinstance(captions, str) or not hasattr(captions, "__len__"):
        raise TypeError(f"`captions` must be a list of str, got {type(captions).__name__}")
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise TypeError(f"`captions[{i}]` must be a str, got {type(c).__name__}")
    if len(captions) == 0:
        return []
    return ptb_tokenize_lines(list(captions))


def _tokens(text: object, name: str, sep: str | None = None) -> list[str]:
    if isinstance(text, str):
        return text.split(sep)
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return list(text)
    raise TypeError(f"`{name}` must be a str or a list of str tokens, got {type(text).__name__}")


def _references(refs: object, name: str, sep: str | None = None) -> list[list[str]]:
    if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"`{name}` must be a list of reference captions, got {type(refs).__name__}")
    if len(refs) == 0:
        raise ValueError(f"`{name}` is empty: an image needs at least one reference caption")
    return [_tokens(r, f"{name}[{i}]", sep) for i, r in enumerate(refs)]


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
    # the kernels' view of ``df``: all orders concatenated, each order's start and size
    _df_flat: np.ndarray = field(init=False, repr=False, compare=False)
    _df_start: np.ndarray = field(init=False, repr=False, compare=False)
    _df_size: np.ndarray = field(init=False, repr=False, compare=False)

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
        arrays: dict[str, Any] = {f"keys_{n + 2}": k for n, k in enumerate(self.keys)}
        arrays.update({f"df_{n + 1}": d for n, d in enumerate(self.df)})
        arrays["n_images"] = np.array(self.n_images)
        arrays["words"] = np.array(self.words, dtype=str)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DocumentFrequencies:
        """Reads a file written by ``save`` (no pickle); a file that is not one is a ValueError naming it.

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "df.npz")
            >>> document_frequencies([["a cat"], ["a dog"]]).save(path)
            >>> DocumentFrequencies.load(path)
            DocumentFrequencies(n_images=2, words=3, ngrams=5)
        """
        names = ["n_images", "words"] + [f"keys_{n}" for n in range(2, MAX_N + 1)]
        names += [f"df_{n}" for n in range(1, MAX_N + 1)]

        def invalid(reason: object) -> ValueError:
            return ValueError(
                f"{os.fspath(path)} is not a DocumentFrequencies file written by save(): {reason}"
            )

        try:
            archive = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile):
            raise invalid("not an .npz archive of arrays (or it is corrupt)") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise invalid("it holds a single array, not an .npz archive")
        with archive:
            missing = [k for k in names if k not in archive.files]
            if missing:
                raise invalid(f"it lacks {', '.join(missing)}")
            try:
                keys = tuple(np.asarray(archive[f"keys_{n}"], np.int64) for n in range(2, MAX_N + 1))
                df = tuple(np.asarray(archive[f"df_{n}"], np.int64) for n in range(1, MAX_N + 1))
                words = tuple(str(w) for w in archive["words"].tolist())
                n_images = int(archive["n_images"])
            except (TypeError, ValueError, OSError, zipfile.BadZipFile) as err:
                if "pickle" in str(err):  # object arrays: never unpickled from a file we did not write
                    raise invalid("it holds object (pickled) arrays") from None
                raise invalid(err) from None
        sizes = [len(words)] + [k.size for k in keys]
        if n_images < 1 or any(d.shape != (size,) for d, size in zip(df, sizes)):
            raise invalid("inconsistent array sizes")
        return cls(n_images, words, keys, df)


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values; plain ``np.unique`` of int64 takes a hash path ~50x slower (numpy 2.4)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x


def _unique_inverse(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` of int64 ``key`` in [0, ``bound``).

    When key and position fit in 63 bits together, one ``np.sort`` of both
    packed in an int64 replaces ``np.unique``'s argsort (about 1.5x faster).
    """
    shift = max(key.size - 1, 1).bit_length()
    if key.size == 0 or (bound - 1).bit_length() + shift > 63:
        table, inverse = np.unique(key, return_inverse=True)
        return table, inverse.reshape(-1)
    packed = np.sort((key << shift) | np.arange(key.size))
    ordered = packed >> shift
    first = np.empty(ordered.size, bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(key.size, np.int64)
    inverse[packed & ((1 << shift) - 1)] = np.cumsum(first) - 1
    return ordered[first], inverse


def _new_word_ids(words: list[str], start: int) -> tuple[np.ndarray, defaultdict]:
    """Ids ``start``, ``start + 1``, ... for ``words`` in order of first appearance, and the vocabulary.

    A defaultdict numbering each unseen key with a counter does the whole
    pass in C (no Python loop, no sort).
    """
    vocab: defaultdict = defaultdict(itertools.count(start).__next__)
    return np.fromiter(map(vocab.__getitem__, words), np.int64, len(words)), vocab


def _flatten(captions: list[list[str]], word_ids: dict) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Word ids of all captions, concatenated, and caption offsets (int64).

    Known words keep their id in ``word_ids``; unseen words get ids from
    ``len(word_ids)`` on, in order of first appearance, and are returned third.
    """
    offsets = offsets_from_lengths(np.fromiter(map(len, captions), np.int64, len(captions)))
    flat = list(itertools.chain.from_iterable(captions))
    if not word_ids:
        ids, vocab = _new_word_ids(flat, 0)
        return ids, offsets, tuple(vocab)
    ids = np.fromiter(map(word_ids.get, flat, itertools.repeat(-1)), np.int64, len(flat))
    unknown = np.flatnonzero(ids < 0)
    ids[unknown], vocab = _new_word_ids([flat[i] for i in unknown.tolist()], len(word_ids))
    return ids, offsets, tuple(vocab)


_SEPARATOR = "\x00"  # stands between captions in one split of all texts (absent from them: checked)


def _flatten_texts(joined: str, n_texts: int) -> tuple[np.ndarray, np.ndarray, defaultdict] | None:
    """``_flatten`` of texts split on white space, from ``"\\n".join(texts)``: one split of
    the whole corpus instead of one per caption; also returns the vocabulary
    (word -> id, new words numbered on). None when a text holds a newline or
    the separator (then split per caption)."""
    if joined.count("\n") != n_texts - 1 or _SEPARATOR in joined:
        return None
    flat = joined.replace("\n", f" {_SEPARATOR} ").split()
    vocab: defaultdict = defaultdict(itertools.count().__next__)
    vocab[_SEPARATOR] = -1
    ids = np.fromiter(map(vocab.__getitem__, flat), np.int64, len(flat))
    del vocab[_SEPARATOR]
    ends = np.flatnonzero(ids < 0)  # the k-th separator ends caption k: k separators and its words before
    offsets = np.empty(n_texts + 1, np.int64)
    offsets[0] = 0
    offsets[1:-1] = ends - np.arange(ends.size)
    offsets[-1] = len(flat) - ends.size
    return ids[ids >= 0], offsets, vocab


def _document_counts(ids, remaining, image_of_word, sizes) -> tuple[np.ndarray, ...]:
    """Per order, how many images (``image_of_word`` >= 0; -1 = not a reference) contain each n-gram id."""
    df = []
    for n in range(MAX_N):
        valid = (remaining >= n + 1) & (image_of_word >= 0)
        size = max(int(sizes[n]), 1)
        pairs = _unique(image_of_word[valid] * size + ids[n][valid])
        df.append(np.bincount(pairs % size, minlength=int(sizes[n])).astype(np.int64)[: int(sizes[n])])
    return tuple(df)


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
    n_words = int(words.max()) + 1 if words.size else 1
    prev_size = n_words  # ids of order n - 1 are below this
    for n in range(2, MAX_N + 1):
        valid = remaining >= n
        prev = ids[-1]
        nxt = np.flatnonzero(valid)
        if known_keys is None:
            # compact keys (prefix id x vocabulary size + word id: same order as the stored keys)
            compact = prev[nxt] * n_words + words[nxt + n - 1]
            table, inverse = _unique_inverse(compact, prev_size * n_words)
            keys_out.append(((table // n_words) << _KEY_SHIFT) | (table % n_words))
            ids_n = np.zeros(words.size, np.int64)
            ids_n[nxt] = inverse
            prev_size = max(table.size, 1)
        else:
            key = np.zeros(words.size, np.int64)
            key[nxt] = (prev[nxt] << _KEY_SHIFT) | words[nxt + n - 1]
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
    images whose references contain it. Tokens are taken as they are, whatever
    their characters (emoji, control characters): ``tokenize`` is where raw
    text becomes the COCO tokens. For self-critical training, build this once
    from the training references (see ``coco_references``).

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
    words, offsets, vocab = _flatten(captions, {})
    ids, remaining, keys = _ngram_ids(words, offsets, None)
    image = np.repeat(np.repeat(np.arange(len(refs_per_image)), per_image), np.diff(offsets))
    sizes = [len(vocab)] + [k.size for k in keys]
    df = _document_counts(ids, remaining, image, sizes)
    return DocumentFrequencies(len(refs_per_image), vocab, tuple(keys), df)


class _Ngrams(NamedTuple):
    """Every caption's n-grams of orders 1..MAX_N as ids (see ``_ngram_ids``)."""

    ids: list[np.ndarray]  # per order n - 1: int64 (W,) id of the n-gram starting at each word
    remaining: np.ndarray  # int64 (W,): words from each word to its caption's end (order n valid if >= n)
    caption_of: np.ndarray  # int64 (W,): caption of each word
    offsets: np.ndarray  # int64 (C + 1,): caption c's words are [offsets[c], offsets[c + 1])
    sizes: list[int]  # per order: number of distinct ids (known table + new ones)
    layout: tuple[np.ndarray, np.ndarray]  # the kernels' (ngrams, offsets): see _kernel_layout


def _caption_ngrams(captions: list[list[str]], word_ids: dict, known_keys) -> _Ngrams:
    words, offsets, new_words = _flatten(captions, word_ids)
    return _ngrams_of_ids(words, offsets, len(word_ids) + len(new_words), known_keys)


def _ngrams_of_ids(words: np.ndarray, offsets: np.ndarray, n_words: int, known_keys) -> _Ngrams:
    """``_Ngrams`` of captions given as word ids (``_flatten``'s first two) and the vocabulary size."""
    ids, remaining, keys = _ngram_ids(words, offsets, known_keys)
    caption_of = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    tables = keys if known_keys is None else known_keys
    sizes = [n_words]
    for n in range(2, MAX_N + 1):
        valid = remaining >= n
        sizes.append(max(int(tables[n - 2].size), int(ids[n - 1][valid].max()) + 1 if valid.any() else 0))
    layout = _kernel_layout(ids, remaining, caption_of, np.diff(offsets), sizes)
    return _Ngrams(ids, remaining, caption_of, offsets, sizes, layout)


def _kernel_layout(ids, remaining, caption_of, lengths, sizes) -> tuple[np.ndarray, np.ndarray]:
    """``cider_groups``' ``ngrams`` and ``offsets``: all ids of order 1 caption by caption, then order 2, ...

    Each caption's ids of one order come sorted: one sort of (caption, id) keys
    per order (``caption_of`` is nondecreasing, so the captions stay in place).
    ``lengths``: each caption's number of words.
    """
    flat_parts, ngram_offsets = [], np.empty((MAX_N, lengths.size + 1), np.int64)
    start = 0
    for n in range(MAX_N):
        valid = remaining >= n + 1
        base = caption_of[valid]
        base *= max(int(sizes[n]), 1)
        key = base + ids[n][valid]
        key.sort()
        key -= base
        flat_parts.append(key)
        per_caption = np.maximum(lengths - n, 0)  # its number of (n + 1)-grams
        ngram_offsets[n] = start + offsets_from_lengths(per_caption)
        start += key.size
    return np.concatenate(flat_parts), ngram_offsets


Groups = list[tuple[list[list[str]], list[list[str]]]]


def _group_offsets(groups: Groups) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """All captions (candidates first, then references) and each group's caption ranges."""
    candidates = [c for cands, _ in groups for c in cands]
    references = [r for _, refs in groups for r in refs]
    group_cands = offsets_from_lengths([len(c) for c, _ in groups])
    group_refs = len(candidates) + offsets_from_lengths([len(r) for _, r in groups])
    return candidates + references, group_cands, group_refs


def _score(groups: Groups, doc_freq: DocumentFrequencies, sigma: float) -> np.ndarray:
    if not isinstance(doc_freq, DocumentFrequencies):
        raise TypeError(f"`doc_freq` must be a DocumentFrequencies, got {type(doc_freq).__name__}")
    sigma = real_option(sigma, "sigma", low=0.0, low_inclusive=False)
    captions, group_cands, group_refs = _group_offsets(groups)
    grams = _caption_ngrams(captions, doc_freq.word_ids, doc_freq.keys)
    scores, _ = _cider(
        grams,
        group_cands,
        group_refs,
        doc_freq._df_flat,
        doc_freq._df_start,
        doc_freq._df_size,
        doc_freq.n_images,
        sigma,
    )
    return scores


def _cider(
    grams: _Ngrams, group_cands, group_refs, df_flat, df_start, df_size, n_images, sigma
) -> tuple[np.ndarray, np.ndarray]:
    """CIDEr-D of every group's candidates and their BLEU n-gram matches
    (``_cider_kernels.cider_groups``; its df arguments)."""
    ngrams, ngram_offsets = grams.layout
    n_cands = int(group_cands[-1])
    out = np.empty(n_cands)
    matches = np.empty((n_cands, MAX_N), np.int64)
    _cider_kernels.cider_groups(
        ngrams,
        ngram_offsets,
        group_refs,
        group_cands,
        df_flat,
        df_start,
        df_size,
        float(np.log(float(n_images))),
        sigma,
        out,
        matches,
    )
    return out, matches


def _group(candidates: object, references_list: object, sep: str | None = None) -> Groups:
    """(candidates, references) groups: consecutive candidates sharing one references object
    (the N samples of one image) share a group, so the references are prepared once."""
    check_batch_lengths(candidates, references_list, "candidates", "references_list")
    groups: Groups = []
    previous = None
    for i, (cand, refs) in enumerate(zip(candidates, references_list)):  # type: ignore[call-overload]
        tokens = _tokens(cand, f"candidates[{i}]", sep)
        if refs is previous and groups:
            groups[-1][0].append(tokens)
        else:
            groups.append(([tokens], _references(refs, f"references_list[{i}]", sep)))
            previous = refs
    return groups


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
    return float(
        _score([([_tokens(candidate, "candidate")], _references(references, "references"))], doc_freq, sigma)[
            0
        ]
    )


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
    groups = _group(candidates, references_list)
    if not groups:
        return np.zeros(0)
    return _score(groups, doc_freq, sigma)


_BLEU_SMALL = 1e-9  # pycocoevalcap's bleu_scorer smoothing constants
_BLEU_TINY = 1e-15


def _bleu_counts(
    captions: list[list[str]] | None,
    group_cands: np.ndarray,
    group_refs: np.ndarray,
    grams: _Ngrams | None = None,
    matches: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate: length, closest reference length, n-gram count and clipped matches per order.

    ``captions``, ``group_cands``, ``group_refs`` as ``_group_offsets`` returns them
    (``captions`` may be None when ``grams`` is given).
    As pycocoevalcap's ``cook_test``: matches are clipped by the largest count
    of the n-gram in any one reference (computed by the CIDEr kernel's merges
    unless ``matches`` are given); the closest reference length breaks ties
    toward the shorter reference. Returns int64 (B,), (B,), (B, 4), (B, 4).
    """
    n_cands = int(group_cands[-1])
    if grams is None:
        assert captions is not None
        grams = _caption_ngrams(captions, {}, None)
    if matches is None:  # no document frequencies needed: every idf is 0
        no_df = np.zeros(MAX_N, np.int64)
        _, matches = _cider(grams, group_cands, group_refs, np.zeros(1, np.int64), no_df, no_df, 1, 6.0)
    lengths = np.diff(grams.offsets)
    group_of = np.repeat(np.arange(group_cands.size - 1), np.diff(group_cands))
    testlen = lengths[:n_cands]
    guess = np.maximum(0, testlen[:, None] - np.arange(MAX_N)[None, :])
    # closest reference length: min over the group's references of (|l - testlen|, l)
    n_refs = np.diff(group_refs)[group_of]
    pair_offsets = offsets_from_lengths(n_refs)
    pair_ref = np.repeat(group_refs[group_of], n_refs) + (
        np.arange(int(pair_offsets[-1])) - np.repeat(pair_offsets[:-1], n_refs)
    )
    span = int(lengths.max()) + 1 if lengths.size else 1
    key = np.abs(lengths[pair_ref] - np.repeat(testlen, n_refs)) * span + lengths[pair_ref]
    reflen = np.minimum.reduceat(key, pair_offsets[:-1]) % span if n_cands else np.zeros(0, np.int64)
    return testlen, reflen, guess, matches


def _bleu_per_example(testlen, reflen, guess, correct) -> np.ndarray:
    """pycocoevalcap's per-image BLEU-1..4 (float64 (B, 4)), operation for operation."""
    out = np.empty(guess.shape)
    score = np.ones(len(testlen))
    for k in range(MAX_N):
        score = score * (
            (correct[:, k].astype(float) + _BLEU_TINY) / (guess[:, k].astype(float) + _BLEU_SMALL)
        )
        out[:, k] = score ** (1.0 / (k + 1))
    ratio = (testlen + _BLEU_TINY) / (reflen + _BLEU_SMALL)
    for i in np.flatnonzero(ratio < 1):
        out[i] *= math.exp(1 - 1 / ratio[i])
    return out


def _bleu_corpus(testlen, reflen, guess, correct) -> list[float]:
    """pycocoevalcap's corpus BLEU-1..4: counts summed over the images first."""
    total_test, total_ref = int(testlen.sum()), int(reflen.sum())
    scores, score = [], 1.0
    for k in range(MAX_N):
        score *= float(int(correct[:, k].sum()) + _BLEU_TINY) / (int(guess[:, k].sum()) + _BLEU_SMALL)
        scores.append(score ** (1.0 / (k + 1)))
    ratio = (total_test + _BLEU_TINY) / (total_ref + _BLEU_SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


BleuOrder = Literal[1, 2, 3, 4]


def bleu(candidate: Text, references: Sequence[Text], *, order: BleuOrder = 4) -> float:
    """BLEU-``order`` of one candidate caption, as pycocoevalcap's per-image ``Bleu_<order>``.

    Strings are split on white space (pass tokenized text, e.g.
    ``" ".join(tokenize(caption))``) or pass lists of tokens. pycocoevalcap's
    per-image quirks are kept, so values equal its ``imgToEval`` entries:
    the geometric mean smooths a missing order with 1e-15 / 1e-9 instead of
    giving 0 (a 3-word copy of a reference has BLEU-4 = 1e-6 ** (1/4) ~ 0.03,
    not 0), the brevity penalty uses the reference length closest to the
    candidate's (ties: the shorter), and matches are clipped by the largest
    count in any single reference. The corpus BLEU of ``coco_caption_eval`` is
    not the mean of these.

    Example:
        >>> round(bleu("a cat sat on a mat", ["a cat sat on the mat", "there is a cat"]), 4)
        0.5373
        >>> round(bleu("a red bus", ["a red bus"]), 4), round(bleu("a red bus", ["a red bus"], order=3), 4)
        (0.0316, 1.0)
    """
    return float(bleu_batch([candidate], [references], order=order)[0])


def bleu_batch(
    candidates: Sequence[Text], references_list: Sequence[Sequence[Text]], *, order: BleuOrder = 4
) -> np.ndarray:
    """``bleu`` of each (candidate, references) pair; float64 (B,).

    Example:
        >>> refs = ["a red bus on a street", "a bus"]
        >>> bleu_batch(["a red bus on a street", "a bus", ""], [refs, refs, refs], order=1).round(4).tolist()
        [1.0, 1.0, 0.0]
    """
    k = int_option(order, "order", low=1, high=MAX_N)
    groups = _group(candidates, references_list)
    if not groups:
        return np.zeros(0)
    return _bleu_per_example(*_bleu_counts(*_group_offsets(groups)))[:, k - 1].copy()


def _rouge(groups: Groups) -> np.ndarray:
    captions, group_cands, group_refs = _group_offsets(groups)
    words, offsets, _ = _flatten(captions, {})
    out = np.empty(int(group_cands[-1]))
    _rouge_kernels.rouge_l_groups(words, offsets, group_refs, group_cands, _ROUGE_BETA**2, out)
    return out


def rouge_l(candidate: Text, references: Sequence[Text]) -> float:
    """ROUGE-L of one candidate caption, as pycocoevalcap's per-image ``ROUGE_L`` (beta = 1.2).

    The longest common subsequence with each reference gives a precision and
    a recall; their maxima over the references (taken separately) make the F
    measure. Strings are split on single spaces, as pycocoevalcap's Rouge does
    (so a fraction token holding U+00A0 stays one token and "" is one empty
    token); lists of tokens are used as they are.

    Example:
        >>> round(rouge_l("a cat on a mat", ["a cat on the mat", "there is a cat"]), 4)
        0.8
        >>> rouge_l("", ["a cat"])
        0.0
    """
    return float(rouge_l_batch([candidate], [references])[0])


def rouge_l_batch(candidates: Sequence[Text], references_list: Sequence[Sequence[Text]]) -> np.ndarray:
    """``rouge_l`` of each (candidate, references) pair in one compiled pass; float64 (B,).

    Example:
        >>> refs = ["a red bus on a street"]
        >>> rouge_l_batch(["a red bus", "a bus on a street"], [refs, refs]).round(4).tolist()
        [0.6289, 0.8944]
    """
    groups = _group(candidates, references_list, " ")
    if not groups:
        return np.zeros(0)
    return _rouge(groups)


class CaptionEval(NamedTuple):
    """pycocoevalcap's ``COCOEvalCap`` results: ``metrics`` its ``eval`` dict (corpus values),
    ``per_image`` each metric's per-image values (float64 (B,), its ``imgToEval``)."""

    metrics: dict[str, float]
    per_image: dict[str, np.ndarray]


def coco_caption_eval(candidates: Sequence[str], references_list: Sequence[Sequence[str]]) -> CaptionEval:
    """BLEU-1..4, ROUGE-L and CIDEr-D of a set of images, as pycocoevalcap's ``COCOEvalCap``.

    ``candidates``: one tokenized caption per image; ``references_list``: that
    image's tokenized references. Pass pycocoevalcap's tokenized text (e.g.
    ``tokenize_captions`` joined by spaces) for its exact numbers. CIDEr's
    document frequencies come from these references, as in the COCO code.

    Example:
        >>> result = coco_caption_eval(["a cat on a mat", "a dog"], [["a cat on the mat"], ["a dog runs"]])
        >>> {k: round(v, 4) for k, v in result.metrics.items()}
        {'Bleu_1': 0.743, 'Bleu_2': 0.6217, 'Bleu_3': 0.4816, 'Bleu_4': 0.0001, 'ROUGE_L': 0.7861, 'CIDEr': 3.8676}
        >>> result.per_image["ROUGE_L"].round(4).tolist()
        [0.8, 0.7722]
    """
    check_batch_lengths(candidates, references_list, "candidates", "references_list")
    if len(candidates) == 0:
        raise ValueError("`candidates` is empty")
    texts: list[str] = list(candidates)  # candidates, then every image's references
    if not all(type(r) in (list, tuple) for r in references_list):
        i = next(i for i, r in enumerate(references_list) if type(r) not in (list, tuple))
        _references(references_list[i], f"references_list[{i}]")  # raises the precise error
    for refs in references_list:
        texts.extend(refs)
    if not all(type(t) is str for t in texts):  # bulk check; the loop below finds and names the culprit
        for i, (cand, refs) in enumerate(zip(candidates, references_list)):
            if not isinstance(cand, str):
                raise TypeError(f"`candidates[{i}]` must be a str, got {type(cand).__name__}")
            _references(refs, f"references_list[{i}]")
    n_refs = np.fromiter(map(len, references_list), np.int64, len(candidates))
    if not n_refs.all():
        i = int(np.flatnonzero(n_refs == 0)[0])
        raise ValueError(f"`references_list[{i}]` is empty: an image needs at least one reference caption")
    # one group per image (never merged: each is one image of the document frequencies)
    group_cands = np.arange(len(candidates) + 1, dtype=np.int64)
    group_refs = len(candidates) + offsets_from_lengths(n_refs)
    joined = "\n".join(texts)
    flat = _flatten_texts(joined, len(texts))
    if flat is None:  # a text holds a newline (or the separator): split caption by caption
        captions = [t.split() for t in texts]
        words, offsets, known = _flatten(captions, {})
        vocab: defaultdict = defaultdict(itertools.count(len(known)).__next__, zip(known, itertools.count()))
    else:
        words, offsets, vocab = flat
    grams = _ngrams_of_ids(
        words, offsets, len(vocab), None
    )  # shared by BLEU and CIDEr (both split on white space)
    # CIDEr's document frequencies: over the evaluated images' references, as the COCO code
    image_of_caption = np.repeat(np.arange(-1, len(candidates)), np.r_[len(candidates), n_refs])
    df = _document_counts(grams.ids, grams.remaining, image_of_caption[grams.caption_of], grams.sizes)
    sizes = np.array(grams.sizes, np.int64)
    cider_images, matches = _cider(
        grams,
        group_cands,
        group_refs,
        np.concatenate(df),
        offsets_from_lengths(sizes)[:-1],
        sizes,
        len(candidates),
        6.0,
    )
    counts = _bleu_counts(None, group_cands, group_refs, grams, matches)
    bleu_images = _bleu_per_example(*counts)
    # ROUGE splits on single spaces: the same tokens unless a caption has other white space
    # (U+00A0 inside a fraction token), runs of spaces or is empty
    if flat is None:
        # (an empty caption too: it splits on " " into one empty token)
        changed = [i for i, (c, t) in enumerate(zip(captions, texts)) if not c or " ".join(c) != t]
    else:
        # with spaces as the only white space, a line of k spaces splits on " " into k + 1 pieces, all
        # of them tokens exactly when split() finds k + 1: compare the totals, then the lines
        other = np.fromiter((m.start() for m in _OTHER_SPACE.finditer(joined)), np.int64)
        line_starts = offsets_from_lengths(np.fromiter(map(len, texts), np.int64, len(texts)) + 1)
        odd = np.zeros(len(texts), bool)
        odd[np.searchsorted(line_starts, other, side="right") - 1] = True
        if joined.count(" ") + len(texts) != words.size:
            spaces = np.fromiter(map(str.count, texts, itertools.repeat(" ")), np.int64, len(texts))
            odd |= np.diff(offsets) != spaces + 1
        changed = np.flatnonzero(odd).tolist()
    if changed:  # re-split only those captions, keeping the other word ids
        rouge_words = {i: texts[i].split(" ") for i in changed}
        lengths = np.diff(offsets)
        lengths[changed] = [len(rouge_words[i]) for i in changed]
        keep = np.ones(len(texts), bool)
        keep[changed] = False
        new_offsets = offsets_from_lengths(lengths)
        new_words = np.empty(int(new_offsets[-1]), np.int64)
        new_words[np.repeat(keep, lengths)] = words[np.repeat(keep, np.diff(offsets))]
        for i in changed:
            new_words[new_offsets[i] : new_offsets[i + 1]] = list(map(vocab.__getitem__, rouge_words[i]))
        words, offsets = new_words, new_offsets
    rouge_images = np.empty(len(candidates))
    _rouge_kernels.rouge_l_groups(words, offsets, group_refs, group_cands, _ROUGE_BETA**2, rouge_images)
    per_image = {f"Bleu_{k + 1}": bleu_images[:, k].copy() for k in range(MAX_N)}
    per_image["ROUGE_L"] = rouge_images
    per_image["CIDEr"] = cider_images
    metrics = dict(zip(per_image, _bleu_corpus(*counts)))
    metrics["ROUGE_L"] = float(np.mean(rouge_images))
    metrics["CIDEr"] = float(np.mean(cider_images))
    return CaptionEval(metrics, per_image)


def coco_references(path: str | os.PathLike) -> dict[int, list[str]]:
    """Tokenized reference captions per image of a COCO captions json (``.json`` or ``.json.gz``).

    Captions are tokenized as pycocoevalcap tokenizes that file's captions
    (``tokenize_captions``), joined by spaces. The self-critical (SCST)
    recipe computes CIDEr's document frequencies once from the *training*
    references, not from the images being scored::

        refs = coco_references("captions_train2017.json")
        document_frequencies(list(refs.values())).save("coco-train-df.npz")
        df = DocumentFrequencies.load("coco-train-df.npz")  # then cider_reward_batch(..., df)

    (the same as ``python -m rewards.captioning df captions_train2017.json coco-train-df.npz``).

    Example:
        >>> import json, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "gt.json")
        >>> json.dump({"annotations": [{"image_id": 1, "caption": "A cat."}, {"image_id": 1, "caption": "A cat on a mat"}]}, open(path, "w"))
        >>> coco_references(path)
        {1: ['a cat', 'a cat on a mat']}
    """
    image_ids, captions = _caption_files.read_ground_truth(path)
    flat = [c for i in image_ids for c in captions[i]]
    tokens = iter(tokenize_captions(flat))
    return {i: [" ".join(next(tokens)) for _ in captions[i]] for i in image_ids if captions[i]}


def evaluate_files(
    gt_path: str | os.PathLike, results_path: str | os.PathLike
) -> tuple[list[int], CaptionEval]:
    """(image ids, ``coco_caption_eval``) of a COCO captions results file, as pycocoevalcap.

    The images are those of the results file (``cocoEval.params['image_id'] =
    cocoRes.getImgIds()``, as in pycocoevalcap's example), in the ground
    truth's order; references and results are tokenized as two files, as
    ``COCOEvalCap.evaluate`` does. Empty captions are scored as pycocoevalcap
    scores them (0, ROUGE-L on one empty token); a result for an image absent
    from the ground truth, a second result for an image, or a caption that is
    not a string is a ValueError naming the file, the entry and the image.

    Example:
        >>> import json, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> gt = {"images": [{"id": 7}], "annotations": [{"image_id": 7, "caption": "A red bus on a street."}]}
        >>> json.dump(gt, open(os.path.join(d, "gt.json"), "w"))
        >>> json.dump([{"image_id": 7, "caption": "A red bus."}], open(os.path.join(d, "res.json"), "w"))
        >>> image_ids, result = evaluate_files(os.path.join(d, "gt.json"), os.path.join(d, "res.json"))
        >>> image_ids, round(result.metrics["ROUGE_L"], 4)
        ([7], 0.6289)
    """
    image_ids, references, results = _caption_files.evaluation_pairs(gt_path, results_path)
    ref_tokens = iter(tokenize_captions([c for refs in references for c in refs]))
    refs = [[" ".join(next(ref_tokens)) for _ in r] for r in references]
    cands = [" ".join(t) for t in tokenize_captions(results)]
    return image_ids, coco_caption_eval(cands, refs)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rewards.captioning``: COCO caption metrics of a results file, or training document frequencies.

    ``GT.json RESULTS.json [--json-out OUT]`` prints BLEU-1..4, ROUGE-L and
    CIDEr-D as pycocoevalcap's ``COCOEvalCap`` (no METEOR or SPICE: they need
    Java); ``--json-out`` writes ``{"metrics": {...}, "per_image": {image_id:
    {...}}}`` with pycocoevalcap's names. ``df TRAIN.json OUT.npz`` writes the
    document frequencies of a training captions file for ``cider_reward_batch``.
    Exit status 0, or 2 with the error on stderr for bad input.

    Example:
        >>> import json, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> gt = {"images": [{"id": 1}, {"id": 2}], "annotations": [
        ...     {"image_id": 1, "caption": "A cat on a mat."}, {"image_id": 2, "caption": "Two dogs in the snow."}]}
        >>> json.dump(gt, open(os.path.join(d, "gt.json"), "w"))
        >>> json.dump([{"image_id": 1, "caption": "a cat on the mat"}], open(os.path.join(d, "res.json"), "w"))
        >>> main([os.path.join(d, "gt.json"), os.path.join(d, "res.json")])
        Bleu_1: 0.800
        Bleu_2: 0.632
        Bleu_3: 0.511
        Bleu_4: 0.000
        ROUGE_L: 0.800
        CIDEr: 0.000
        0
    """
    # millions of short-lived acyclic objects (json, tokens): the cyclic collector's passes over them
    # cost ~15% of a COCO-file evaluation and would free nothing
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        if gc_was_enabled:
            gc.enable()


def _main(argv: list[str]) -> int:
    if argv[:1] == ["df"]:
        parser = argparse.ArgumentParser(
            prog="python -m rewards.captioning df",
            description="Document frequencies of a COCO captions training file (the SCST recipe), "
            "loadable with DocumentFrequencies.load for cider_reward_batch.",
        )
        parser.add_argument("train", help="COCO captions json of the training set (may be .json.gz)")
        parser.add_argument("out", help="output .npz file")
        args = parser.parse_args(argv[1:])
        try:
            refs = coco_references(args.train)
            if not refs:
                raise ValueError(f"{args.train}: no captions")
            doc_freq = document_frequencies(list(refs.values()))
            doc_freq.save(args.out)
        except (ValueError, TypeError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{doc_freq!r} written to {args.out}")
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m rewards.captioning",
        description="BLEU-1..4, ROUGE-L and CIDEr-D of a COCO captions results file, exactly as pycocoevalcap's "
        "COCOEvalCap (its PTB tokenizer emulated, no Java; METEOR and SPICE not provided). "
        "Use 'python -m rewards.captioning df TRAIN.json OUT.npz' for training document frequencies.",
    )
    parser.add_argument("gt", help="COCO captions ground-truth json (may be .json.gz)")
    parser.add_argument("results", help="results json: a list of {image_id, caption}")
    parser.add_argument("--json-out", help="write {'metrics': ..., 'per_image': ...} to this file")
    args = parser.parse_args(argv)
    try:
        image_ids, result = evaluate_files(args.gt, args.results)
        for name, value in result.metrics.items():
            print(f"{name}: {value:0.3f}")
        if args.json_out:
            per_image = {
                str(i): {m: float(result.per_image[m][k]) for m in METRICS} for k, i in enumerate(image_ids)
            }
            with open(args.json_out, "w") as f:
                json.dump({"metrics": result.metrics, "per_image": per_image}, f, indent=1)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from rewards._cli import load_numba_without_scipy

    load_numba_without_scipy()
    sys.exit(main())
