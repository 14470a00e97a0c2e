"""CIDEr-D and the tokenizer against pycocoevalcap (its Cider scorer and its Java PTBTokenizer)."""

from __future__ import annotations

import numpy as np
import pytest

from rewards import captioning
from tests.ptb_oracle import HANDWRITTEN, caption_like_sentences, jar_tokenize, java_available


@pytest.mark.skipif(not java_available(), reason="java is not installed")
def test_tokenize_matches_the_coco_jar_token_for_token():
    sentences = caption_like_sentences(500, seed=1) + HANDWRITTEN
    expected = jar_tokenize(sentences)
    mismatches = [(s, e, captioning.tokenize(s)) for s, e in zip(sentences, expected) if captioning.tokenize(s) != e]
    assert not mismatches, mismatches[:5]


def test_tokenize_quirks_are_kept():
    assert captioning.tokenize("I can't\nstop (now)") == ["i", "ca", "n't", "stop", "-lrb-", "now", "-rrb-"]
    assert captioning.tokenize("It's 50% of $5 in the U.S.") == ["it", "'s", "50", "%", "of", "$", "5", "in", "the", "u.s."]
    assert captioning.tokenize("...") == []
    with pytest.raises(TypeError, match="text"):
        captioning.tokenize(["a", "b"])


def _coco_cider(cands, refs):
    from pycocoevalcap.cider.cider import Cider

    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [c] for i, c in enumerate(cands)}
    return Cider().compute_score(gts, res)[1]


def _corpus(seed, n_images=120):
    rng = np.random.default_rng(seed)
    sents = [" ".join(captioning.tokenize(s)) for s in caption_like_sentences(600, seed=seed)]
    refs = [[sents[j] for j in rng.integers(0, len(sents), size=rng.integers(1, 6))] for _ in range(n_images)]
    cands = []
    for i in range(n_images):
        r = rng.random()
        if r < 0.1:
            cands.append("")
        elif r < 0.3:
            cands.append(refs[i][0])  # a copy of a reference
        elif r < 0.5:
            cands.append(" ".join(refs[i][0].split()[: rng.integers(1, 4)]))  # a short prefix
        else:
            cands.append(sents[rng.integers(0, len(sents))])
    return cands, refs


@pytest.mark.parametrize("seed", range(3))
def test_cider_matches_pycocoevalcap_when_df_comes_from_the_scored_refs(seed):
    cands, refs = _corpus(seed)
    df = captioning.document_frequencies(refs)
    ours = captioning.cider_reward_batch(cands, refs, df)
    np.testing.assert_allclose(ours, _coco_cider(cands, refs), atol=1e-9, rtol=0)
    for i in range(0, len(cands), 17):
        assert captioning.cider_reward(cands[i], refs[i], df) == pytest.approx(ours[i], abs=1e-12)


def test_scores_do_not_depend_on_the_batch_and_repeated_refs_are_reused():
    cands, refs = _corpus(5, n_images=30)
    df = captioning.document_frequencies(refs)
    # 4 samples per image, each group sharing one references object
    samples = [c for i in range(30) for c in (cands[i], cands[(i + 1) % 30], "", refs[i][0])]
    grouped = [refs[i] for i in range(30) for _ in range(4)]
    copies = [list(refs[i]) for i in range(30) for _ in range(4)]  # distinct objects: no reuse
    a = captioning.cider_reward_batch(samples, grouped, df)
    b = captioning.cider_reward_batch(samples, copies, df)
    np.testing.assert_array_equal(a, b)
    single = [captioning.cider_reward(s, r, df) for s, r in zip(samples[:20], grouped[:20])]
    np.testing.assert_allclose(a[:20], single, atol=1e-12)


def test_unseen_words_and_ngrams_still_match_their_references():
    df = captioning.document_frequencies([["a cat on a mat"], ["a dog"]])
    refs = ["zebra crossing the zebra road"]
    assert captioning.cider_reward("zebra crossing the zebra road", refs, df) > 0
    assert captioning.cider_reward(["zebra", "crossing"], refs, df) > 0
    assert captioning.cider_reward("", refs, df) == 0.0


def test_document_frequencies_save_load_round_trip(tmp_path):
    cands, refs = _corpus(7, n_images=40)
    df = captioning.document_frequencies(refs)
    path = tmp_path / "df.npz"
    df.save(path)
    loaded = captioning.DocumentFrequencies.load(path)
    assert loaded.n_images == df.n_images and loaded.words == df.words
    np.testing.assert_array_equal(
        captioning.cider_reward_batch(cands, refs, loaded), captioning.cider_reward_batch(cands, refs, df)
    )


def test_document_frequency_counts_images_not_captions():
    df = captioning.document_frequencies([["a cat", "a cat a cat"], ["a dog"]])
    assert df.df[0][df.word_ids["a"]] == 2
    assert df.df[0][df.word_ids["cat"]] == 1
    assert df.df[1].sum() == 3  # bigrams: "a cat", "cat a" (image 0), "a dog" (image 1)


def test_bad_input():
    df = captioning.document_frequencies([["a cat"]])
    with pytest.raises(ValueError, match="at least one reference"):
        captioning.cider_reward("a cat", [], df)
    with pytest.raises(TypeError, match="candidate"):
        captioning.cider_reward(3, ["a cat"], df)
    with pytest.raises(TypeError, match=r"references_list\[0\]\[0\]"):
        captioning.cider_reward_batch(["a"], [[None]], df)
    with pytest.raises(ValueError, match="2 captions but `references_list` has 1"):
        captioning.cider_reward_batch(["a", "b"], [["a"]], df)
    with pytest.raises(TypeError, match="doc_freq"):
        captioning.cider_reward("a", ["a"], {"a": 1})
    with pytest.raises(ValueError, match="refs_per_image\\[1\\]"):
        captioning.document_frequencies([["a"], []])
