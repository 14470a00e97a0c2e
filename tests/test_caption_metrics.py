"""BLEU-1..4, ROUGE-L and the COCOEvalCap corpus values against pycocoevalcap's own scorers."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from rewards import captioning
from tests.ptb_oracle import caption_like_sentences

pytest.importorskip("pycocoevalcap")


def _coco(scorer, cands, refs):
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its totals
        return scorer.compute_score(gts, res)


def _corpus(seed: int, n_images: int = 150):
    """Tokenized captions with the awkward cases: empty and one-word candidates, copies,
    repeated n-grams, references of equal length, U+00A0 inside a token, double spaces."""
    rng = np.random.default_rng(seed)
    sents = [" ".join(captioning.tokenize(s)) for s in caption_like_sentences(500, seed=seed)]
    sents += ["a a a a", "the the cat the the", "22\xa03/4 street", "a", "on a a mat mat"]
    refs = [[sents[j] for j in rng.integers(0, len(sents), size=rng.integers(1, 6))] for _ in range(n_images)]
    cands = []
    for i in range(n_images):
        r = rng.random()
        if r < 0.08:
            cands.append("")
        elif r < 0.25:
            cands.append(refs[i][0])
        elif r < 0.4:
            cands.append(" ".join(refs[i][-1].split(" ")[: rng.integers(1, 4)]))
        elif r < 0.5:
            cands.append("a a a a a the the")
        else:
            cands.append(sents[rng.integers(0, len(sents))])
    return cands, refs


@pytest.mark.parametrize("seed", range(3))
def test_bleu_per_image_matches_pycocoevalcap(seed):
    from pycocoevalcap.bleu.bleu import Bleu

    cands, refs = _corpus(seed)
    _, expected = _coco(Bleu(4), cands, refs)
    for order in range(1, 5):
        ours = captioning.bleu_batch(cands, refs, order=order)
        np.testing.assert_allclose(ours, expected[order - 1], rtol=0, atol=1e-12)
    for i in range(0, len(cands), 13):
        assert captioning.bleu(cands[i], refs[i]) == pytest.approx(expected[3][i], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_rouge_l_matches_pycocoevalcap(seed):
    from pycocoevalcap.rouge.rouge import Rouge

    cands, refs = _corpus(seed)
    _, expected = _coco(Rouge(), cands, refs)
    np.testing.assert_allclose(captioning.rouge_l_batch(cands, refs), expected, rtol=0, atol=1e-12)
    assert captioning.rouge_l(cands[1], refs[1]) == pytest.approx(expected[1], abs=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_coco_caption_eval_matches_the_three_scorers(seed):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    cands, refs = _corpus(seed + 10)
    result = captioning.coco_caption_eval(cands, refs)
    bleu_corpus, bleu_images = _coco(Bleu(4), cands, refs)
    for k in range(4):
        assert result.metrics[f"Bleu_{k + 1}"] == pytest.approx(bleu_corpus[k], abs=1e-12)
        np.testing.assert_allclose(result.per_image[f"Bleu_{k + 1}"], bleu_images[k], atol=1e-12, rtol=0)
    for name, scorer in (("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        corpus, images = _coco(scorer, cands, refs)
        assert result.metrics[name] == pytest.approx(corpus, abs=1e-9)
        np.testing.assert_allclose(result.per_image[name], images, atol=1e-9, rtol=0)


def test_samples_sharing_references_match_separate_pairs():
    cands, refs = _corpus(4, n_images=20)
    samples = [c for i in range(20) for c in (cands[i], cands[(i + 3) % 20], "")]
    shared = [refs[i] for i in range(20) for _ in range(3)]
    copies = [list(refs[i]) for i in range(20) for _ in range(3)]
    for fn in (captioning.bleu_batch, captioning.rouge_l_batch):
        np.testing.assert_array_equal(fn(samples, shared), fn(samples, copies))
        single = [fn([s], [r])[0] for s, r in zip(samples[:12], shared[:12])]
        np.testing.assert_array_equal(fn(samples, shared)[:12], single)


def test_token_lists_and_strings_agree():
    refs = ["a cat on the mat", "a cat"]
    assert captioning.bleu(["a", "cat", "on", "a", "mat"], [r.split() for r in refs]) == captioning.bleu(
        "a cat on a mat", refs
    )
    assert captioning.rouge_l(["a", "cat"], [["a", "cat"]]) == 1.0
    assert captioning.rouge_l([], [["a", "cat"]]) == 0.0
    assert captioning.bleu([], [["a", "cat"]]) == 0.0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`order`"):
        captioning.bleu("a", ["a"], order=5)
    with pytest.raises(TypeError, match="`order`"):
        captioning.bleu("a", ["a"], order="4")
    with pytest.raises(TypeError, match=r"`candidates\[1\]`"):
        captioning.rouge_l_batch(["a", 3], [["a"], ["b"]])
    with pytest.raises(ValueError, match=r"`references_list\[0\]` is empty"):
        captioning.bleu_batch(["a"], [[]])
    with pytest.raises(ValueError, match="`candidates` has 2 examples but `references_list` has 1"):
        captioning.rouge_l_batch(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match=r"`references_list\[0\]\[1\]`"):
        captioning.bleu_batch(["a"], [["a", None]])
    assert captioning.bleu_batch([], []).shape == (0,)


def test_coco_caption_eval_bad_input_names_the_example():
    with pytest.raises(TypeError, match=r"`candidates\[1\]`"):
        captioning.coco_caption_eval(["a", 3], [["a"], ["b"]])
    with pytest.raises(TypeError, match=r"`references_list\[1\]\[0\]`"):
        captioning.coco_caption_eval(["a", "b"], [["a"], [None]])
    with pytest.raises(TypeError, match=r"`references_list\[0\]`"):
        captioning.coco_caption_eval(["a"], ["a cat"])
    with pytest.raises(ValueError, match=r"`references_list\[1\]` is empty"):
        captioning.coco_caption_eval(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="`candidates` is empty"):
        captioning.coco_caption_eval([], [])
    with pytest.raises(ValueError, match="`candidates` has 1 examples but `references_list` has 2"):
        captioning.coco_caption_eval(["a"], [["a"], ["b"]])


def test_coco_caption_eval_scores_each_entry_as_its_own_image():
    # the same references object twice is still two images for CIDEr's document frequencies
    refs = ["a cat on a mat", "a dog"]
    shared = captioning.coco_caption_eval(["a cat", "a dog"], [refs, refs])
    copies = captioning.coco_caption_eval(["a cat", "a dog"], [list(refs), list(refs)])
    assert shared.metrics == copies.metrics
