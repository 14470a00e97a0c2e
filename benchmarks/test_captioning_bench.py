"""Captioning: cider_reward_batch vs pycocoevalcap's Cider on the same captions.

Workload of issue 4: 256 images x 8 sampled captions, 5 references each,
document frequencies from a 5000-image corpus (25k references).
"""

from __future__ import annotations

import numpy as np

from rewards import captioning
from tests.ptb_oracle import caption_like_sentences

rng = np.random.default_rng(0)
SENTENCES = [" ".join(s.lower().replace(".", " ").replace(",", " ").split()) for s in caption_like_sentences(4000, seed=3)]
CORPUS = [[SENTENCES[j] for j in rng.integers(0, len(SENTENCES), 5)] for _ in range(5000)]
IMAGES = CORPUS[:256]
CANDIDATES = [SENTENCES[j] for j in rng.integers(0, len(SENTENCES), 256 * 8)]
REFERENCES = [IMAGES[i] for i in range(256) for _ in range(8)]  # the N samples share one refs object
DOC_FREQ = captioning.document_frequencies(CORPUS)


def test_document_frequencies_25k_references(benchmark, recorder):
    benchmark.pedantic(captioning.document_frequencies, args=(CORPUS,), rounds=3, iterations=1)
    recorder(benchmark, "document_frequencies 25k refs", "ours document_frequencies", 1)


def test_cider_reward_batch_ours(benchmark, recorder):
    captioning.cider_reward_batch(CANDIDATES[:8], REFERENCES[:8], DOC_FREQ)
    benchmark(captioning.cider_reward_batch, CANDIDATES, REFERENCES, DOC_FREQ)
    recorder(benchmark, "cider 256x8 captions", "ours cider_reward_batch", len(CANDIDATES))


def test_cider_pycocoevalcap(benchmark, recorder):
    from pycocoevalcap.cider.cider import Cider

    gts = {i: REFERENCES[i] for i in range(len(CANDIDATES))}
    res = {i: [CANDIDATES[i]] for i in range(len(CANDIDATES))}
    benchmark.pedantic(Cider().compute_score, args=(gts, res), rounds=3, iterations=1)
    recorder(benchmark, "cider 256x8 captions", "pycocoevalcap Cider", len(CANDIDATES))
