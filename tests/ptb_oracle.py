"""The COCO caption tokenizer itself (pycocoevalcap's jar on Java) and caption-like sentences."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

PUNCTUATIONS = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                ".", "?", "!", ",", ":", "-", "--", "...", ";"]


def java_available() -> bool:
    return shutil.which("java") is not None


def jar_tokenize(sentences: list[str]) -> list[list[str]]:
    """Runs the bundled Stanford PTBTokenizer exactly as pycocoevalcap does, one line per sentence.

    A final sentinel line keeps every real sentence off the file's last line
    (the jar treats a final line without newline slightly differently).
    """
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    jar_dir = os.path.dirname(os.path.abspath(ptb.__file__))
    text = "\n".join(s.replace("\n", " ") for s in sentences) + "\nsentinel"
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt", encoding="utf-8") as f:
        f.write(text)
    try:
        out = subprocess.run(
            ["java", "-cp", ptb.STANFORD_CORENLP_3_4_1_JAR, "edu.stanford.nlp.process.PTBTokenizer",
             "-preserveLines", "-lowerCase", f.name],
            cwd=jar_dir, capture_output=True, check=True,
        ).stdout.decode("utf-8")
    finally:
        os.remove(f.name)
    lines = out.split("\n")[: len(sentences)]
    return [[w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS] for line in lines]


SUBJECTS = ["A man", "a woman", "Two dogs", "The cat", "A young boy", "Several people", "an old lady",
            "A group of kids", "THE TRAIN", "A Black-and-White photo of a bus", "A 2-year-old child",
            "Mr. Smith", "Dr. Jones", "the U.S. team", "A man's dog", "The dogs' owner", "People"]
VERBS = ["is riding", "are sitting on", "stands next to", "isn't holding", "can't reach", "won't eat",
         "is looking at", "plays with", "'s jumping over", "are eating", "holds", "gonna catch",
         "wanna see", "cannot find", "looks at"]
OBJECTS = ["a surfboard", "the red bus", "a plate of food", "a frisbee", "two slices of pizza",
           "a 1,000-pound bull", "3.5 inch screws", "the St. Louis arch", "a sign that says \"STOP\"",
           "a cat (sleeping)", "a laptop/tablet", "its owner's shoes", "a 50% off sign", "a $5 bill",
           "the clock at 3:30 p.m.", "a high-chair", "an e-mail", "AT&T logo", "the 1990s car",
           "'the best' pizza", "a [blue] box", "her {green} hat", "an ice-cream cone", "a cat's toy",
           "the U.S. flag", "a t-shirt", "a No. 5 jersey", "a 4x4 truck", "the 5th floor"]
TAILS = [".", "", " .", "!", "?", "...", " ; outside", ", near the park.", " -- in the rain.",
         " at night", ": a photo.", "!!", " etc.", " in Washington D.C.", " on Main St.",
         " (in color)", ", doesn't it?", " with a smile :)", "  on  a  sunny  day ", ".\nAnother line"]


def caption_like_sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    out = []
    for _ in range(n):
        s = f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}{pick(TAILS)}"
        if rng.random() < 0.3:
            s = f"{s} and {pick(OBJECTS)}{pick(TAILS)}"
        if rng.random() < 0.2:
            s = s.lower()
        out.append(s)
    return out
