"""The two tasks of the reference trainer, behind one interface.

A task knows its token grammar, its MLE targets, its REINFORCE step (which
reward, scored in one batch call) and its held-out evaluation. Stages in
``train.py`` only talk to this interface.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from rewards.adapters.box_tokens import BoxTokenizer
from reference_training import captions, recipe
from reference_training.data import CLASS_NAMES, Scenes, class_counts
from rewards import captioning
from rewards.detection import class_weights_from_counts


class DetectionTask:
    """Boxes as tokens; reward: the paper's recall reward (or per-example mAP) plus IoU supervision."""

    headline = "map"
    metrics = ("map", "map_50", "map_75", "mar_100", "recall_reward", "boxes_per_image")

    def __init__(self, cfg, train: Scenes, heldout: Scenes, out_dir: str | None = None):
        self.cfg = cfg
        self.codec = BoxTokenizer(n_classes=len(CLASS_NAMES), n_bins=cfg.n_bins)
        self.vocab_size = self.codec.vocab_size + 1  # + BOS
        self.grammar = recipe.Grammar(self.codec, cfg.max_objects, self.vocab_size)
        self.class_weights = class_weights_from_counts(class_counts(train))
        self.coord_tokens = (self.codec.coord_offset, self.codec.n_bins)
        self.certainty_features = recipe.CERTAINTY_FEATURES
        self.train, self.heldout = train, heldout

    def mle_targets(self, scenes: Scenes, rng: np.random.Generator):
        return self.grammar.targets(scenes)

    def reinforce_step(self, model, scenes: Scenes, generator: torch.Generator):
        c = self.cfg
        return recipe.reinforce_step(
            model, self.grammar, scenes, samples=c.samples, temperature=c.temperature, reward=c.reward,
            class_weights=self.class_weights, duplicate_weight=c.duplicate_weight,
            confidence_weight=c.confidence_weight, generator=generator,
        )

    def evaluate(self, model, scenes: Scenes):
        return recipe.evaluate(model, self.grammar, scenes, self.class_weights, self.cfg.duplicate_weight)

    def predictions(self, model, images: np.ndarray):
        return recipe.predict(model, self.grammar, images)


class CaptionTask:
    """Words as tokens; reward: CIDEr-D against the image's references (document frequencies of the
    training captions, computed once and cached in the output directory)."""

    headline = "cider"
    metrics = ("cider", "train_df_cider", "words_per_caption")
    max_words = 40

    def __init__(self, cfg, train: Scenes, heldout: Scenes, out_dir: str | None = None):
        self.cfg = cfg
        self.codec = captions.WordCodec(captions.vocabulary())
        self.vocab_size = self.codec.vocab_size
        self.grammar = recipe.SequenceGrammar(self.max_words, self.vocab_size)
        self.coord_tokens = (0, 0)
        self.certainty_features = 0
        self.train = train.with_refs(self._refs(train))
        self.heldout = heldout.with_refs(self._refs(heldout))
        self.doc_freq = self._document_frequencies(out_dir)
        # COCO evaluation: document frequencies of the evaluated references themselves.
        self.heldout_doc_freq = captioning.document_frequencies(list(self.heldout.refs))

    @staticmethod
    def _refs(scenes: Scenes) -> list[list[str]]:
        return [[" ".join(captioning.tokenize(c)) for c in refs] for refs in captions.references(scenes)]

    def _document_frequencies(self, out_dir):
        path = os.path.join(out_dir, "doc_freq_train.npz") if out_dir else None
        if path and os.path.exists(path):
            return captioning.DocumentFrequencies.load(path)
        df = captioning.document_frequencies(list(self.train.refs))
        if path:
            df.save(path)
        return df

    def mle_targets(self, scenes: Scenes, rng: np.random.Generator):
        """One random reference of each image."""
        picks = [refs[rng.integers(len(refs))] for refs in scenes.refs]
        tokens, mask = self.codec.encode(picks, self.max_words)
        return torch.from_numpy(tokens), torch.from_numpy(mask)

    def reinforce_step(self, model, scenes: Scenes, generator: torch.Generator):
        c = self.cfg
        images = torch.from_numpy(scenes.images)
        model.eval()
        tokens, _ = recipe.generate(model, self.grammar, images, c.samples, c.temperature, generator=generator)
        model.train()
        texts = self.codec.decode(tokens.cpu().numpy())
        refs = [r for r in scenes.refs for _ in range(c.samples)]  # same object per image: vectorised once
        rewards = captioning.cider_reward_batch(texts, refs, self.doc_freq)
        loss, _ = recipe.policy_gradient_loss(model, self.grammar, images, tokens, rewards, c.samples)
        return loss, float(rewards.mean())

    def captions(self, model, images: np.ndarray, batch_size: int = 128) -> list[str]:
        model.eval()
        out = []
        for i in range(0, len(images), batch_size):
            tokens, _ = recipe.generate(model, self.grammar, torch.from_numpy(images[i : i + batch_size]), greedy=True)
            out += self.codec.decode(tokens.cpu().numpy())
        model.train()
        return out

    def evaluate(self, model, scenes: Scenes):
        texts = self.captions(model, scenes.images)
        refs = list(scenes.refs)
        per_image = captioning.cider_reward_batch(texts, refs, self.heldout_doc_freq)
        return {
            "cider": float(per_image.mean()),
            "train_df_cider": float(captioning.cider_reward_batch(texts, refs, self.doc_freq).mean()),
            "words_per_caption": float(np.mean([len(t.split()) for t in texts])),
        }, per_image

    def predictions(self, model, images: np.ndarray):
        return self.captions(model, images)


TASKS = {"detection": DetectionTask, "captioning": CaptionTask}
