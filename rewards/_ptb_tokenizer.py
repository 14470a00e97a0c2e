"""Pure-Python emulation of the COCO caption tokenizer (Stanford PTBTokenizer 3.4.1).

pycocoevalcap runs ``edu.stanford.nlp.process.PTBTokenizer -preserveLines
-lowerCase`` on a bundled jar, then drops a fixed list of punctuation tokens.
This module reproduces that pipeline without Java for caption-like text: a
JFlex-style lexer (longest match at each position, a few context rules
first), lower-casing, PTB bracket escapes, and the same drop list. Because
the drop list holds the upper-case bracket escapes but the tokens are
lower-cased, ``-lrb-``/``-rrb-`` (and the other bracket escapes) survive, as
they do in the COCO code.
"""

from __future__ import annotations

import re

# pycocoevalcap's PUNCTUATIONS, verbatim: compared with the lower-cased tokens.
DROPPED_TOKENS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_L = r"[^\W\d_]"  # a letter (unicode)
_W = r"[^\W_]"  # a letter or digit

# Abbreviations that keep their period (probed against the 3.4.1 jar).
_ABBREVIATIONS = (
    "mr mrs ms dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj "
    "sgt cpl pvt mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det m mme mlle "
    "jr sr bros blvd rd esq inc co cos corp ltd plc rt bancorp dept bhd assn univ intl sys vs etc al "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri ala ariz calif "
    "colo conn fla ga ind kan kans ky md mich minn mo mont neb nev okla penn tenn va vt wis wyo ft "
    "cf est natl sq bldg"
).split()
# Kept only when capitalised (their lower-case forms are ordinary words).
_CAPITALISED_ABBREVIATIONS = "miss ark del ill la mass ore pa tex wash".split()
# Kept only before a number ("no. 5", "fig.3").
_NUMBER_ABBREVIATIONS = "no nos art pp fig figs op ca".split()

_BOUNDARY = r"(?![^\W_])"

_CONTEXT_RULES = [
    # "don't" -> "do n't", "can't" -> "ca n't": the n belongs to the clitic.
    ("nt", re.compile(rf"({_W}+?)(n['’]t){_BOUNDARY}", re.IGNORECASE)),
    ("split", re.compile(r"(gon)(na)|(wan)(na)|(got)(ta)|(gim)(me)|(lem)(me)|(can)(not)" + _BOUNDARY, re.IGNORECASE)),
    ("one", re.compile(r"o'clock|'n'|'em|'cause|'t(?=is)|y'(?=all)", re.IGNORECASE)),
    ("one", re.compile(r"['’](?:s|re|ve|ll|d|m)" + _BOUNDARY, re.IGNORECASE)),
]

_ABBREV_ANY = "|".join(_ABBREVIATIONS)
_ABBREV_CAP = "|".join(w.capitalize() + "|" + w.upper() for w in _CAPITALISED_ABBREVIATIONS)
_ABBREV_NUM = "|".join(_NUMBER_ABBREVIATIONS)

_LONGEST_RULES = [
    ("url", re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)),
    ("dotted", re.compile(rf"{_L}+(?:\.{_L}+)+\.?")),
    ("abbrev", re.compile(rf"(?i:(?:{_ABBREV_ANY})\.)(?!\S)|(?:{_ABBREV_CAP})\.(?!\S)")),
    ("initial", re.compile(rf"{_L}\.(?=\s)")),  # "A. B. Smith", but "s." at the end splits
    ("abbrev", re.compile(rf"(?i:(?:{_ABBREV_NUM})\.)(?=\s?\d)")),
    ("number", re.compile(r"[-+]?(?:\d+(?:[.,:/]\d+)*|\.\d+)")),
    ("word", re.compile(rf"{_W}+(?:/{_W}+)*")),
    ("compound", re.compile(rf"(?:\d+(?:[.,]\d+)*|{_W}+)(?:[-/](?:\d+(?:[.,]\d+)*|{_W}+))+")),
    ("ampersand", re.compile(r"[A-Z]+(?:&[A-Z]+)+")),
    ("emoticon", re.compile(r"[:;=][-o^]?[()\[\]DPp/|]" + _BOUNDARY.replace("_W", "_W"))),
    ("tag", re.compile(rf"[#@]{_W}+")),
    ("ellipsis", re.compile(r"\.\.\.")),
    ("dashes", re.compile(r"--+")),
    ("marks", re.compile(r"[?!]+")),
    ("quote", re.compile(r"``|''|\"")),
    ("symbol", re.compile(r"\S")),
]

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-", "[": "-LSB-", "]": "-RSB-"}
_SPACE = re.compile(r"\s+")


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    n = len(text)
    while pos < n:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
            continue
        for kind, rule in _CONTEXT_RULES:
            m = rule.match(text, pos)
            if m and m.end() > pos:
                if kind == "one":
                    tokens.append(m.group(0))
                else:
                    tokens.extend(g for g in m.groups() if g)
                pos = m.end()
                break
        else:
            best, best_end = None, pos
            for _, rule in _LONGEST_RULES:
                m = rule.match(text, pos)
                if m and m.end() > best_end:
                    best, best_end = m.group(0), m.end()
            if best is None:  # unreachable: the symbol rule matches any non-space
                best, best_end = text[pos], pos + 1
            tokens.append(_escape(best))
            pos = best_end
    return tokens


def _escape(token: str) -> str:
    if token in _BRACKETS:
        return _BRACKETS[token]
    if len(token) > 1 and token[-1] in _BRACKETS and token[0] in ":;=":  # emoticons: ":)" -> ":-RRB-"
        return token[:-1] + _BRACKETS[token[-1]]
    if token == '"':
        return "''"  # quote direction does not matter: both forms are dropped
    return token


def ptb_tokenize(text: str) -> list[str]:
    """Tokens of ``text`` as the COCO caption code produces them (lower-cased, punctuation dropped)."""
    text = text.replace("\n", " ")
    return [t for t in (tok.lower() for tok in _lex(text)) if t not in DROPPED_TOKENS]
