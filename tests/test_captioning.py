"""CIDEr-D and the tokenizer against pycocoevalcap (its Cider scorer and its Java PTBTokenizer)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from rewards import captioning
from tests.ptb_oracle import FILE_CONTEXT, HANDWRITTEN, caption_like_sentences, jar_tokenize, java_available

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_java = pytest.mark.skipif(not java_available(), reason="java is not installed")


@needs_java
def test_tokenize_matches_the_coco_jar_token_for_token():
    sentences = caption_like_sentences(500, seed=1) + HANDWRITTEN
    # each sentence followed by a line that opens no sentence: tokenize()'s documented context
    expected = jar_tokenize([x for s in sentences for x in (s, "sentinel")])[::2]
    mismatches = [
        (s, e, captioning.tokenize(s)) for s, e in zip(sentences, expected) if captioning.tokenize(s) != e
    ]
    assert not mismatches, mismatches[:5]


@needs_java
def test_tokenize_captions_reproduces_the_file_context():
    lines = FILE_CONTEXT + HANDWRITTEN + caption_like_sentences(300, seed=2) + FILE_CONTEXT
    assert captioning.tokenize_captions(lines) == jar_tokenize(lines, sentinel=None)
    assert captioning.tokenize_captions(lines[:1]) == jar_tokenize(
        lines[:1], sentinel=None
    )  # only a last line
    assert captioning.tokenize_captions([]) == []


def _real_captions(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    data = json.load(gzip.open(path))
    return [a["caption"] for a in (data["annotations"] if isinstance(data, dict) else data)]


@needs_java
@pytest.mark.parametrize(
    "name",
    [
        "captions_val2017.json.gz",
        "coco-caption_captions_val2014_fakecap_results.json.gz",
        "cocoapi_captions_val2014_fakecap_results.json.gz",
    ],
)
def test_every_real_coco_caption_tokenizes_as_the_jar_does(name):
    captions = _real_captions(name)
    expected = jar_tokenize(captions, sentinel=None)  # one file, as pycocoevalcap writes it
    ours = captioning.tokenize_captions(captions)
    mismatches = [(c, e, o) for c, e, o in zip(captions, expected, ours) if e != o]
    assert len(ours) == len(expected) == len(captions) and not mismatches, mismatches[:5]


def test_tokenize_quirks_are_kept():
    assert captioning.tokenize("I can't\nstop (now)") == ["i", "ca", "n't", "stop", "-lrb-", "now", "-rrb-"]
    assert captioning.tokenize("It's 50% of $5 in the U.S.") == [
        "it",
        "'s",
        "50",
        "%",
        "of",
        "$",
        "5",
        "in",
        "the",
        "u.s.",
    ]
    assert captioning.tokenize("...") == []
    with pytest.raises(TypeError, match="text"):
        captioning.tokenize(["a", "b"])
    with pytest.raises(TypeError, match=r"`captions\[1\]`"):
        captioning.tokenize_captions(["a", None])
    with pytest.raises(TypeError, match="`captions`"):
        captioning.tokenize_captions("a b")


def test_untokenizable_characters_are_deleted_as_documented():
    # the probe's NOTE rows: control characters and emoji with zero-width joiners
    assert captioning.tokenize("a \x00 cat \x07 on \x1b[31mmat") == ["a", "cat", "on", "-lsb-", "31mmat"]
    assert captioning.tokenize("a 👩\u200d👩\u200d👧 family 🐈 on a mat") == ["a", "family", "on", "a", "mat"]


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
    with pytest.raises(ValueError, match="`candidates` has 2 examples but `references_list` has 1"):
        captioning.cider_reward_batch(["a", "b"], [["a"]], df)
    with pytest.raises(TypeError, match="doc_freq"):
        captioning.cider_reward("a", ["a"], {"a": 1})
    with pytest.raises(ValueError, match="refs_per_image\\[1\\]"):
        captioning.document_frequencies([["a"], []])


@pytest.mark.parametrize("sigma", ["6", None, True, [6.0]])
def test_sigma_of_the_wrong_type_is_a_type_error_naming_it(sigma):
    df = captioning.document_frequencies([["a cat"]])
    with pytest.raises(TypeError, match="`sigma`"):
        captioning.cider_reward("a cat", ["a cat"], df, sigma=sigma)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_sigma_out_of_range_is_a_value_error_naming_it(sigma):
    df = captioning.document_frequencies([["a cat"]])
    with pytest.raises(ValueError, match="`sigma`"):
        captioning.cider_reward_batch(["a cat"], [["a cat"]], df, sigma=sigma)


def test_document_frequencies_load_rejects_what_save_did_not_write(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not an npz archive at all")
    with pytest.raises(ValueError, match="corrupt.npz is not a DocumentFrequencies file"):
        captioning.DocumentFrequencies.load(corrupt)
    partial = tmp_path / "partial.npz"
    np.savez(partial, n_images=3, keys_2=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=r"partial.npz .*lacks words, keys_3"):
        captioning.DocumentFrequencies.load(partial)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single.npy .*not an .npz archive"):
        captioning.DocumentFrequencies.load(single)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        **{
            k: np.array([{"a": 1}], dtype=object)
            for k in ["n_images", "words", "keys_2", "keys_3", "keys_4", "df_1", "df_2", "df_3", "df_4"]
        },
    )
    with pytest.raises(ValueError, match="pickled.npz .*object") as caught:
        captioning.DocumentFrequencies.load(pickled)
    assert "allow_pickle" not in str(caught.value)
    with pytest.raises(FileNotFoundError):
        captioning.DocumentFrequencies.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "candidate, references",
    [("", ["cat", ""]), ("   ", ["x y", ""]), ("a cat", ["", "a cat sat"]), ("", [""])],
)
def test_corpus_rouge_l_with_empty_texts_equals_pycocoevalcap(candidate, references):
    rouge = pytest.importorskip("pycocoevalcap.rouge.rouge")
    expected = rouge.Rouge().calc_score([candidate], references)
    got = captioning.coco_caption_eval([candidate], [references]).per_image["ROUGE_L"][0]
    assert got == pytest.approx(expected, abs=1e-12)
    assert captioning.rouge_l_batch([candidate], [references])[0] == pytest.approx(expected, abs=1e-12)
