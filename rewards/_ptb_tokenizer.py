"""Pure-Python emulation of the COCO caption tokenizer (Stanford PTBTokenizer 3.4.1).

pycocoevalcap writes all captions, one per line, to one file, runs
``edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase`` from its
bundled jar on it, then drops a fixed list of punctuation tokens. This module
reproduces that pipeline without Java.

How the jar's lexer (JFlex, generated from ``PTBLexer.flex``) works, and so how
this one does: at each position every rule is tried, the longest match wins and
ties go to the rule listed first. A rule may have *trailing context* (JFlex
``body/context``): the context counts for the match length but is not part of
the token, and is lexed again afterwards. Here each rule is a regular
expression whose named group ``tok`` is the token and whatever follows it in
the match is trailing context. Tokens are then normalised as the jar does
(brackets to ``-LRB-``..., quotes to LaTeX quotes, dashes to ``--``, some
currency and fraction characters), lower-cased, and the drop list applied.

The rules that matter for captions, with what they produce (lower-cased):

* Clitics: ``don't`` -> ``do n't``, ``dog's`` -> ``dog 's`` (a word followed by
  ``'s 'm 'd 're 've 'll``), but an apostrophe *inside* a word keeps it whole
  when the jar's apostrophe-word rules match: a ``d' o' l'`` prefix
  (``d'oeuvre``, ``O'Brien``), one letter other than I/Y before the apostrophe
  and two or more letters after (``n'ts``), or a vowel before and a vowel (or a
  capital) after (``ma'am``, ``Ho'ohu``). Other apostrophes are quotes.
* Numbers: ``22 3/4`` is one fraction token ``22<U+00A0>3/4`` (the jar joins
  an integer and a fraction of up to 4 digits each with a non-breaking space).
* ``#`` followed by letters is one hashtag token, otherwise ``#`` stands alone
  (``#41`` -> ``# 41``); ``@`` followed by a name is one token.
* Periods: abbreviations from the jar's lists (``st.``, ``mr.``, ``etc.``,
  states only when capitalised) and single letters (``j.``) keep their period
  whatever follows; an acronym or initial followed by a sentence-opening word
  (``A``, ``The``, ``It``, ...) ends the sentence: one letter loses its period
  (``a person I. A hood`` -> ``i``), longer acronyms keep it (``u.s.``).
  Words joined by periods (``sidewalk.outside``) are one token and a final
  period is split off unless ``, ; :`` follows.
* Characters the jar cannot tokenize (control characters, emoji and other
  characters outside the Basic Multilingual Plane, zero-width joiners, ...)
  are deleted, as the jar deletes them.

Because the drop list holds the upper-case bracket escapes but the tokens are
lower-cased, ``-lrb-``/``-rrb-`` (and the other bracket escapes) survive, as
they do in the COCO code.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# pycocoevalcap's PUNCTUATIONS, verbatim: compared with the lower-cased tokens.
DROPPED_TOKENS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# JFlex [:letter:] is Java's Character.isLetter on UTF-16 code units: no
# characters outside the BMP, none of Python's numeric "letters" (superscripts,
# vulgar fractions, roman numerals, circled numbers), plus combining marks.
_NOT_LETTER = (
    r"\W\d_\u00b2\u00b3\u00b9\u00bc-\u00be\u2150-\u218f\u2460-\u24ff\u2070-\u209f\U00010000-\U0010ffff"
)
_L = rf"(?:[^{_NOT_LETTER}]|[\u0300-\u036f])"
_D = r"[0-9\u0660-\u0669\u06f0-\u06f9\u0966-\u096f]"
_LD = rf"(?:{_L}|{_D})"
_APOS = "['\u0092\u2019]"
_APOS_ETC = "['\u0092\u2019\u0091\u2018\u201b]"
_SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
_SPACENL = "[ \t\u00a0\u2000-\u200a\u3000\n\r\u2028\u2029\u000b\u000c\u0085]"
_WORD = rf"{_L}{_LD}*(?:[.!?]{_L}{_LD}*)*"
_ACRO = r"[A-Za-z](?:\.[A-Za-z])+"


def _ci(words: str) -> str:
    """Alternation of words matched case-insensitively, except an upper-case first
    letter written ``[X]`` (JFlex's %caseless does not expand character classes)."""
    parts = []
    for w in words.split():
        if w.startswith("["):
            parts.append(f"{w[1]}(?i:{re.escape(w[3:])})")
        else:
            parts.append(f"(?i:{re.escape(w)})")
    return "(?:" + "|".join(sorted(parts, key=len, reverse=True)) + ")"


# Abbreviations that keep their period wherever they are (probed against the
# 3.4.1 jar); a ``[X]`` first letter must be upper case.
_ABBREVIATION_WORDS = (
    "mr mrs ms dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj "
    "sgt cpl pvt mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det m mme mlle "
    "jr sr bros blvd rd esq inc co cos corp ltd plc rt bancorp dept bhd assn univ intl sys vs etc al "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri ala ariz calif "
    "colo conn fla ga ind kan kans ky md mich minn mo mont neb nev okla penn tenn va vt wis wyo ft "
    "cf est natl sq bldg [M]iss [A]rk [D]el [I]ll [L]a [M]ass [O]re [P]a [T]ex [W]ash"
)
_ABBREVIATIONS = _ci(_ABBREVIATION_WORDS)
# Kept only before a number ("no. 5", "fig.3").
_NUMBER_ABBREVIATION_WORDS = "no nos art pp fig figs op ca"
_NUMBER_ABBREVIATIONS = _ci(_NUMBER_ABBREVIATION_WORDS)
# After an acronym or initial these words open a new sentence.
_SENTENCE_STARTERS = _ci(
    "[A]bout [A]ccording [A]dditionally [A]fter [A]n [A] [A]s [A]t [B]ut [E]arlier [H]e [H]er [H]ere "
    "[H]owever [I]f [I]n [I]t [L]ast [M]any [M]ore [M]r. [M]s. [N]ow [O]nce [O]ne [O]ther [O]ur [S]he "
    "[S]ince [S]o [S]ome [S]uch [T]hat [T]he [T]hen [T]here [T]hese [T]hey [T]his [W]e [W]hen [W]hile "
    "[W]hat [Y]et [Y]ou"
)
_MISC_SYMBOLS = (
    "\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3\u05c6"
    "\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u2020-\u2023\u2030-\u2038\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff"
    "\u2200-\u22ff\u2300-\u23ff\u2600-\u26ff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
)


def _latex_quotes(token: str, left: bool) -> str:
    if left:
        token = token.replace("'", "`").replace('"', "``")
    else:
        token = token.replace('"', "''")
    for chars, out in (
        ("\u0091\u2018\u201b\u2039", "`"),
        ("\u0092\u2019\u203a", "'"),
        ("\u0093\u201c\u00ab", "``"),
        ("\u0094\u201d\u00bb", "''"),
    ):
        for c in chars:
            token = token.replace(c, out)
    return token


_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-", "[": "-LSB-", "]": "-RSB-"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}

_Action = Callable[[str], str]
_keep: _Action = lambda t: t  # noqa: E731


def _acronym_before_sentence(tok: str) -> str:
    # The period is lexed again as its own token (and dropped); an initial
    # ("I.") loses it, a longer acronym ("U.S.") keeps it as well.
    return tok[:-1] if len(tok) == 2 else tok


# (name, pattern, action) in the jar's rule order: on equal match lengths the
# earlier rule wins. Action None: nothing is emitted (white space, characters
# the jar cannot tokenize).
_RULE_SPECS: list[tuple[str, str, _Action | None]] = [
    ("cannot", r"(?P<tok>(?i:can))(?i:not)", _keep),
    ("gonna", r"(?P<tok>(?i:gon|wan|got|gim|lem))(?i:na|ta|me)(?![^\W_])", _keep),
    (
        "sgml",
        r"<(?:[!?][A-Za-z-][^>\r\n]*|/[A-Za-z][A-Za-z0-9_:.-]*|[A-Za-z][A-Za-z0-9_:.-]*(?: +[A-Za-z][A-Za-z0-9_:.-]*"
        r"(?: *= *(?:'[^'\r\n]*'|\"[^\"\r\n]*\"|[A-Za-z][A-Za-z0-9_:.-]*))?)* */?) *>",
        _keep,
    ),
    ("spmdash", "[\u0096\u0097\u2013\u2014\u2015]", lambda t: "--"),
    ("word_redaux", rf"(?P<tok>{_WORD}){_APOS}(?i:[msd]|re|ve|ll)", _keep),
    ("sword_sredaux", rf"(?P<tok>[A-Za-z]*[A-MO-Za-mo-z])(?i:n){_APOS_ETC}(?i:t)", _keep),
    ("word", _WORD, _keep),
    ("apoword", rf"{_APOS}(?i:n){_APOS}?", _keep),
    ("apoword", rf"[lLdDjJ]{_APOS}", _keep),
    ("apoword", rf"(?i:dunkin|somethin|ol){_APOS}", _keep),
    ("apoword", rf"{_APOS}(?i:em|till?|cause|[2-9]0s)", _keep),
    ("apoword", rf"[A-HJ-XZn]{_APOS_ETC}{_L}{{2,}}", _keep),
    ("apoword", rf"{_L}+[aeiouyAEIOUY]{_APOS_ETC}[aeiouA-Z]{_L}*", _keep),
    ("apoword", r"(?i:nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)", _keep),
    ("apoword", rf"(?i:o){_APOS_ETC}(?i:o)", _keep),
    ("apoword_t", rf"(?P<tok>{_APOS}(?i:t))(?i:is|was)", _keep),
    ("apoword2", rf"(?P<tok>(?i:y){_APOS}){_L}", _keep),
    ("fullurl", r"(?i:https?)://[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-]", _keep),
    (
        "likelyurl",
        r"(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}"
        r"|(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?i:com|net|org|edu))"
        r"(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?",
        _keep,
    ),
    (
        "email",
        r"<?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0]*@(?:[^ \t\n\f\r\"<>|().\u00a0]+\.)*[^ \t\n\f\r\"<>|().\u00a0]+>?",
        _keep,
    ),
    (
        "emoticon",
        r"(?P<tok>[<>]?[:;=][-o*']?[()DPdpO\\{@|\[\]])[^A-Za-z0-9]",
        lambda t: t.replace("(", "-LRB-").replace(")", "-RRB-"),
    ),
    ("twitter", rf"@[a-zA-Z_][a-zA-Z_0-9]*|#{_L}+", _keep),
    ("redaux", rf"(?P<tok>{_APOS}(?i:[msd]|re|ve|ll))[^A-Za-z]", lambda t: _latex_quotes(t, False)),
    ("redaux", rf"{_APOS}(?i:[msd]|re|ve|ll)", lambda t: _latex_quotes(t, False)),
    ("sredaux", rf"(?i:n){_APOS_ETC}(?i:t)", lambda t: _latex_quotes(t, False)),
    ("date", rf"{_D}{{1,2}}[-/]{_D}{{1,2}}[-/]{_D}{{2,4}}", _keep),
    ("number", rf"[-+]?(?:{_D}*(?:[.:,\u00ad]{_D}+)+|{_D}+)", lambda t: t.replace("\u00ad", "")),
    (
        "fraction",
        rf"(?:{_D}{{1,4}}[- \u00a0])?{_D}{{1,4}}(?:\\?/|\u2044){_D}{{1,4}}",
        lambda t: t.replace(" ", "\u00a0"),
    ),
    ("fraction_char", "[\u00bc\u00bd\u00be\u2153-\u215e]", lambda t: _FRACTIONS.get(t, t)),
    (
        "tbspec",
        r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|(?i:C\.D\.s|pro-|anti-|S&P-500|S&Ls)|(?i:cap)"
        rf"{_APOS}(?i:n)|(?i:c){_APOS}(?i:est)",
        _keep,
    ),
    ("thing3", r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}", _keep),
    ("dollar", r"[A-Z]*\$|#", _keep),
    (
        "currency",
        "[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        lambda t: _CURRENCY.get(t, t),
    ),
    (
        "acronym_sentence_end",
        rf"(?P<tok>(?:{_ACRO}|[A-Za-z])\.){_SPACENL}+{_SENTENCE_STARTERS}{_SPACENL}",
        _acronym_before_sentence,
    ),
    ("abbreviation", rf"{_ABBREVIATIONS}\.", _keep),
    ("abbreviation", rf"(?:{_ACRO}|[A-Za-z])\.", _keep),
    ("number_abbreviation", rf"(?P<tok>{_NUMBER_ABBREVIATIONS}\.){_SPACENL}?{_D}", _keep),
    ("acronym", rf"(?P<tok>{_ACRO}){_SPACENL}", _keep),
    ("year", rf"(?P<tok>{_APOS}{_D}{_D}){_SPACENL}", _keep),
    ("word_period", rf"(?P<tok>{_WORD}\.)[,;:]", _keep),
    (
        "phone",
        r"(?:\([0-9]{3}\)[ \u00a0]?|[0-9]{3}[- \u00a0.])[0-9]{3}[- \u00a0.][0-9]{4}",
        lambda t: t.replace(" ", "\u00a0").replace("(", "-LRB-").replace(")", "-RRB-"),
    ),
    ("duck_feet", r"<<|>>", _keep),
    ("double_quote", '"', lambda t: "''"),
    ("symbol", r"[+%&\u2030\u2031~^|\\=/<>]", _keep),
    ("bracket", r"[\[\](){}]", lambda t: _BRACKETS[t]),
    ("hyphens", r"-+", lambda t: "--" if 3 <= len(t) <= 4 else t),
    ("ellipsis", "\\.{3,5}|(?:\\.[ \u00a0]){2,4}\\.|[\u0085\u2026]", lambda t: "..."),
    ("marks", r"@+|#+|_+|\*+", _keep),
    ("punctuation", r"[,;:]|[?!]+|[.\u00a1\u00bf]", _keep),
    (
        "hthing",
        rf"(?P<tok>[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{_ACRO}\.|[A-Za-z0-9\u00ad]+))+\.)[,;:]",
        _keep,
    ),
    (
        "hthing",
        rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{_ACRO}\.|[A-Za-z0-9\u00ad]+))+",
        lambda t: t.replace("\u00ad", ""),
    ),
    (
        "thing",
        rf"(?P<tok>(?:[dDoOlL]{_APOS_ETC}{_LD})?{_LD}+(?:[-_\u058a\u2010\u2011](?:[dDoOlL]{_APOS_ETC}{_LD})?{_LD}+)*\.)[,;:]",
        _keep,
    ),
    (
        "thing",
        rf"(?:[dDoOlL]{_APOS_ETC}{_LD})?{_LD}+(?:[-_\u058a\u2010\u2011](?:[dDoOlL]{_APOS_ETC}{_LD})?{_LD}+)*",
        _keep,
    ),
    ("thinga", r"(?P<tok>[A-Z]+(?:[+&][A-Z]+)+\.)[,;:]", _keep),
    ("thinga", r"[A-Z]+(?:[+&][A-Z]+)+", _keep),
    ("left_quote", r"(?P<tok>')[A-Za-z][^ \t\n\r\u00a0]", lambda t: _latex_quotes(t, True)),
    (
        "quotes",
        f"''|{_APOS}|[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091-\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{{1,2}}",
        lambda t: _latex_quotes(t, False),
    ),
    ("misc_symbol", f"[{_MISC_SYMBOLS}]", _keep),
    ("space", f"{_SPACENL}+|[\u0000\u200b\u200e\u200f\ufeff]", None),
    ("untokenizable", r"(?s:.)", None),
]
_RULES = [(name, re.compile(pattern), action) for name, pattern, action in _RULE_SPECS]


def _first_chars(pattern: str) -> Callable[[str], bool] | None:
    """A test of the characters a match of ``pattern`` can start with (a superset), from
    the regular expression's parse tree; None when it may start with anything."""
    import importlib

    try:  # the regular expression parser's modules (private; renamed in Python 3.11)
        c, p = importlib.import_module("re._constants"), importlib.import_module("re._parser")
    except ImportError:
        c, p = importlib.import_module("sre_constants"), importlib.import_module("sre_parse")

    categories = {
        c.CATEGORY_WORD: r"\w",
        c.CATEGORY_NOT_WORD: r"\W",
        c.CATEGORY_DIGIT: r"\d",
        c.CATEGORY_NOT_DIGIT: r"\D",
        c.CATEGORY_SPACE: r"\s",
        c.CATEGORY_NOT_SPACE: r"\S",
    }

    def char_test(op, av) -> Callable[[str], bool]:
        if op is c.LITERAL:
            return lambda ch: ord(ch) == av
        if op is c.NOT_LITERAL:
            return lambda ch: ord(ch) != av
        if op is c.RANGE:
            return lambda ch: av[0] <= ord(ch) <= av[1]
        if op is c.CATEGORY:
            rx = re.compile(categories[av])
            return lambda ch: rx.match(ch) is not None
        if op is c.IN:
            negate = bool(av) and av[0][0] is c.NEGATE
            tests = [char_test(o, a) for o, a in (av[1:] if negate else av)]
            return lambda ch: any(t(ch) for t in tests) != negate
        raise ValueError(op)

    def caseless(test: Callable[[str], bool]) -> Callable[[str], bool]:
        return lambda ch: test(ch) or test(ch.lower()) or test(ch.upper())

    def first(items, ignorecase: bool) -> tuple[list, bool]:
        tests: list = []
        for op, av in items:
            if op in (c.LITERAL, c.NOT_LITERAL, c.IN):
                test = char_test(op, av)
                tests.append(caseless(test) if ignorecase else test)
                return tests, False
            if op is c.ANY or op is c.GROUPREF:
                return [None], False
            if op is c.BRANCH:
                nullable = False
                for branch in av[1]:
                    sub, n = first(branch, ignorecase)
                    tests += sub
                    nullable |= n
            elif op is c.SUBPATTERN:
                sub, nullable = first(av[3], ignorecase or bool(av[1] & c.SRE_FLAG_IGNORECASE))
                tests += sub
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                sub, n = first(av[2], ignorecase)
                tests += sub
                nullable = n or av[0] == 0
            elif op is getattr(c, "ATOMIC_GROUP", None):
                sub, nullable = first(av, ignorecase)
                tests += sub
            elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                nullable = True  # zero width: the next item decides (a superset)
            else:
                return [None], False
            if not nullable:
                return tests, False
        return tests, True

    tests, nullable = first(p.parse(pattern).data, False)
    if nullable or None in tests:
        return None
    return lambda ch: any(t(ch) for t in tests)


_FIRST = [_first_chars(pattern) for _, pattern, _ in _RULE_SPECS]
_CANDIDATES: dict[str, tuple] = {}


def _candidates(ch: str) -> tuple:
    """The rules whose match can start with ``ch``, in rule order (memoised per character)."""
    rules = _CANDIDATES.get(ch)
    if rules is None:
        rules = tuple(rule for rule, test in zip(_RULES, _FIRST) if test is None or test(ch))
        if len(_CANDIDATES) < 10_000:
            _CANDIDATES[ch] = rules
    return rules


# Fast paths, for the common case, that give what the rules give. A run of
# ASCII letters followed by white space is a plain word unless a splitting rule
# claims it; followed by ", ; : ! ?" or a sentence-final "." (then white space)
# it is still a word unless it may be an abbreviation (or a single letter:
# an initial). Those marks before white space are dropped tokens.
_PLAIN_WORD = re.compile(r"[A-Za-z]+(?=[ \n]|\Z)")
_PLAIN_RUN = re.compile(r"(?:(?!(?i:cannot|gonna|wanna|gotta|gimme|lemme) )[A-Za-z]+ +)+")  # several at once
_WORD_BEFORE_MARK = re.compile(r"[A-Za-z]{2,}(?=[,;:!?.](?:[ \n]|\Z))")
_DROPPED_MARK = re.compile(r"(?:[,;:!?]|\.(?! ?\.))(?=[ \n]|\Z)")
_SPLIT_WORDS = frozenset(["cannot", "gonna", "wanna", "gotta", "gimme", "lemme"])
_NOT_PLAIN_BEFORE_MARK = _SPLIT_WORDS | frozenset(
    w.lower().replace("[", "").replace("]", "")
    for w in (_ABBREVIATION_WORDS + " " + _NUMBER_ABBREVIATION_WORDS).split()
)
_NEWLINE = "\n"


def _lex(text: str) -> list[str]:
    """Tokens of ``text`` (before lower-casing and dropping); each newline of the
    text is returned as a ``"\\n"`` token so lines can be told apart."""
    tokens: list[str] = []
    pos, n = 0, len(text)
    plain, plain_run, candidates = _PLAIN_WORD.match, _PLAIN_RUN.match, _candidates
    word_before_mark, dropped_mark = _WORD_BEFORE_MARK.match, _DROPPED_MARK.match
    while pos < n:
        c = text[pos]
        if c == " ":
            pos += 1
            continue
        if c == "\n":
            tokens.append(_NEWLINE)
            pos += 1
            continue
        m = plain_run(text, pos)
        if m is not None:
            tokens.extend(m.group().split())
            pos = m.end()
            continue
        m = plain(text, pos)
        if m is not None and m.group().lower() not in _SPLIT_WORDS:
            tokens.append(m.group())
            pos = m.end()
            continue
        m = word_before_mark(text, pos)
        if m is not None and m.group().lower() not in _NOT_PLAIN_BEFORE_MARK:
            tokens.append(m.group())
            pos = m.end()
            continue
        m = dropped_mark(text, pos)
        if m is not None:
            pos = m.end()
            continue
        best_len = 0
        for rule in candidates(c):
            m = rule[1].match(text, pos)
            if m is not None and m.end() - pos > best_len:
                best, best_len, best_match = rule, m.end() - pos, m
        name, _, action = best  # the last rule matches any character
        if "tok" in best_match.re.groupindex:
            token, end = best_match.group("tok"), best_match.end("tok")
            if name == "acronym_sentence_end":
                end -= 1
        else:
            token, end = best_match.group(0), best_match.end()
        if name == "space":
            tokens.extend(_NEWLINE * token.count("\n"))
        elif action is not None:
            tokens.append(action(token))
        pos = end
    return tokens


def _lines(tokens: list[str]) -> list[list[str]]:
    """The lexer's tokens split at its newline markers, lower-cased (as ``-lowerCase``), the drop list applied.

    Tokens hold no space (the jar's joined tokens use U+00A0), so the lines are
    lower-cased as one string and split on spaces.
    """
    dropped = DROPPED_TOKENS
    return [
        [t for t in line.split(" ") if t and t not in dropped]
        for line in " ".join(tokens).lower().split("\n")
    ]


def ptb_tokenize_lines(lines: list[str]) -> list[list[str]]:
    """Tokens of each line exactly as pycocoevalcap gets them from its one file.

    The lines are joined by newlines with none after the last, as
    pycocoevalcap writes them: a few trailing-context rules look past the end
    of a line (an initial before a next line opening with "A" or "The" loses
    its period) and behave differently on the file's last line.
    """
    return _lines(_lex("\n".join(line.replace("\n", " ") for line in lines)))


def ptb_tokenize(text: str) -> list[str]:
    """Tokens of ``text`` as one line of pycocoevalcap's file followed by a line
    that does not open a sentence (lower-cased, punctuation dropped)."""
    return _lines(_lex(text.replace("\n", " ") + "\n"))[0]
