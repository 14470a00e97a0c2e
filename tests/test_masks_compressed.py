"""The one-pass compressed-RLE decoder (``masks._pack_compressed``) against pycocotools and the two-step path.

``_pack`` sends batches of compressed RLE dicts (a model's output, COCO
results files) through ``_mask_kernels.strings_to_mask_set``, which decodes,
builds runs and computes areas and boxes in one pass; anything malformed is
re-decoded by the two-step path (``decode_strings`` then ``counts_to_runs``)
for its error message. Checked here: the same mask set as the two-step path
and the same areas / boxes / dense masks as pycocotools, on valid strings
(including non-canonical ones with zero-length runs and masks touching the
image border) and on corrupted ones (the same error, naming the same item).
"""

from __future__ import annotations

import numpy as np
import pytest

from rewards import _mask_kernels as K
from rewards import masks

M = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)


def _two_step(strings: list, h: np.ndarray, w: np.ndarray) -> masks._Masks:
    starts, ends, offsets = masks._from_compressed(strings, h, w, lambda k: f"items[{k}]")
    return masks._mask_set(starts, ends, offsets, h, w)


def _string(counts: list[int]) -> bytes:
    c = np.asarray(counts, np.int64)
    buf = np.empty(7 * c.size + 7, np.uint8)
    out = np.zeros(2, np.int64)
    K.encode_strings(c, np.array([0, c.size], np.int64), buf, out)
    return buf[: out[1]].tobytes()


def _random_case(rng: np.random.Generator, max_side: int):
    h, w, n = int(rng.integers(0, max_side)), int(rng.integers(0, max_side)), int(rng.integers(1, 5))
    dense = rng.random((n, h, w)) < rng.random() ** 3
    if h and w and rng.random() < 0.3:  # a block touching the bottom-right border
        dense[0, int(rng.integers(h)) :, int(rng.integers(w)) :] = True
    rles = M.encode(np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))
    strings: list = [r["counts"] for r in rles]
    if rng.random() < 0.3:  # non-canonical: a zero-length background run joins two runs
        k = int(rng.integers(n))
        counts = list(masks.decompress({"size": [h, w], "counts": strings[k]})["counts"])
        at = int(rng.integers(0, len(counts) + 1))
        counts[at:at] = [0, 0]
        strings[k] = _string(counts)
    corrupt = rng.random() < 0.3
    if corrupt:
        k = int(rng.integers(n))
        s = bytearray(strings[k])
        op = int(rng.integers(3))
        if op == 0 and s:
            s[int(rng.integers(len(s)))] = int(rng.integers(40, 120))  # maybe outside '0'..'o'
        elif op == 1 and s:
            s = s[:-1]  # truncated, or a wrong sum
        else:
            s += bytes([int(rng.integers(48, 112))])  # an extra count
        strings[k] = bytes(s)
    # str and bytes counts, mixed
    strings = [s.decode("latin-1") if rng.random() < 0.6 else s for s in strings]
    return h, w, dense, strings, corrupt


@pytest.mark.parametrize("max_side, trials", [(8, 400), (150, 60)])
def test_one_pass_decoder_equals_two_step_path_and_pycocotools(max_side, trials):
    rng = np.random.default_rng(max_side)
    checked = failed = 0
    for _ in range(trials):
        h, w, dense, strings, corrupt = _random_case(rng, max_side)
        n = len(strings)
        items = [{"size": [h, w], "counts": s} for s in strings]
        hs, ws = np.full(n, h, np.int64), np.full(n, w, np.int64)
        try:
            expected, expected_error = _two_step(strings, hs, ws), None
        except ValueError as err:
            expected, expected_error = None, str(err)
        try:
            got, error = masks._pack_compressed(items, lambda k: f"items[{k}]"), None
        except ValueError as err:
            got, error = None, str(err)
        assert error == expected_error
        if error is not None:
            failed += 1
            continue
        assert got is not None and expected is not None
        for field in masks._Masks._fields:
            a, b = getattr(got, field), getattr(expected, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field
        if not corrupt:  # the strings still encode `dense` (zero-length runs change nothing)
            ref = [{"size": [h, w], "counts": s if isinstance(s, bytes) else s.encode()} for s in strings]
            np.testing.assert_array_equal(got.areas, M.area(ref))
            full = got.areas > 0  # pycocotools' toBbox of an empty mask may read garbage
            np.testing.assert_array_equal(got.boxes[full], M.toBbox(ref)[full])
            np.testing.assert_array_equal(masks._dense(got).transpose(2, 0, 1), dense)
        checked += 1
    assert checked > trials // 2 and failed > 0  # both outcomes were exercised


def test_pack_takes_the_fast_path_only_for_what_it_can_name():
    rle = masks.encode(np.eye(4, dtype=bool))
    as_str = {"size": [4, 4], "counts": rle["counts"].decode()}
    packed = masks._pack([rle, as_str], str)
    assert masks._pack_compressed([rle, as_str], str) is not None
    np.testing.assert_array_equal(packed.areas, [4, 4])
    # Forms the fast path leaves to the item-by-item path (which names the problem).
    assert masks._pack_compressed([rle, masks.decompress(rle)], str) is None
    assert masks._pack_compressed([{"size": [4.5, 4], "counts": rle["counts"]}], str) is None
    assert masks._pack_compressed([rle], str, [4], [5]) is None
    with pytest.raises(ValueError, match=r"`m\[1\]` has size \[4, 4\] but its image is \[4, 5\]"):
        masks._pack([rle, rle], lambda i: f"m[{i}]", [4, 4], [4, 5])
    with pytest.raises(ValueError, match=r"`m\[1\]\['counts'\]` holds a character outside"):
        masks._pack([rle, {"size": [4, 4], "counts": "0é"}], lambda i: f"m[{i}]")


@pytest.mark.parametrize(
    "strings, bad",
    [
        (["2,31", "6"], 0),  # a separator inside a string
        (["6,6", "6"], 0),  # ... that splits it into valid strings: one string too many
        (["6", "6,"], 1),  # ... at the end
        (["6", ","], 1),
    ],
)
def test_strings_holding_the_kernel_separator_are_named(strings, bad):
    """The one-pass decoder finds strings by the "," that joins them: a "," inside one is still an error naming it."""
    for kind in (str, bytes):
        items = [{"size": [2, 3], "counts": s if kind is str else s.encode()} for s in strings]
        with pytest.raises(ValueError, match=rf"`m\[{bad}\]\['counts'\]` holds a character outside"):
            masks._pack_compressed(items, lambda i: f"m[{i}]")
        with pytest.raises(ValueError, match=rf"`m\[{bad}\]\['counts'\]` holds a character outside"):
            masks._pack(items, lambda i: f"m[{i}]")
    good = [{"size": [2, 3], "counts": s} for s in ("6", "", "231")]  # "" only fits a 0-pixel mask
    with pytest.raises(ValueError, match=r"`m\[1\]\['counts'\]` sums to 0"):
        masks._pack_compressed(good, lambda i: f"m[{i}]")
    good[1] = {"size": [0, 3], "counts": ""}
    assert masks.area(good).tolist() == [0, 0, 3]
