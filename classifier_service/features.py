"""Features of a prompt: the one analyzer that training and serving share.

A prompt becomes a list of string features: lower-cased word unigrams and bigrams, plus a few
structural markers that describe the request's shape rather than its topic (its length band,
its opening words, whether it carries pasted lines, code or a question mark). Training feeds
this function to scikit-learn's ``TfidfVectorizer(analyzer=analyze)``; serving calls it
directly, so the two can never disagree.

It stays at the package's top, not in :mod:`classifier_service.routing`: every trained model
pickles a reference to ``classifier_service.features.analyze``, so moving it would make every
model folder unloadable.

Chinese and Japanese (and Korean) write without spaces, so a "word" there would be a whole
clause: a run of those scripts becomes its overlapping character bigrams instead ("文章的主要"
-> "文章", "章的", "的主", "主要"), which then count as words (unigrams, and bigrams of
neighbours). A lone character stays itself.

Very long prompts are read at their head and tail only (``HEAD_TOKENS`` + ``TAIL_TOKENS``
words): the instruction is almost always there, and the cost of a decision stays bounded.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise

FEATURES_VERSION = 2
"""Bump whenever :func:`analyze` changes: models record it and refuse a mismatch.
2: character bigrams for CJK scripts; full-width question marks and CJK quotes."""

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
"""Hiragana, katakana, CJK ideographs (and extension A, compatibility), Hangul syllables."""
CJK_RUN = re.compile(f"[{CJK}]+")
WORD = re.compile(f"[{CJK}]+|(?:(?![{CJK}])\\w)+(?:'\\w+)?")
QUESTION_MARKS = ("?", "\uff1f")
QUOTES = ('"', "'", "\u201c", "\u300c", "\u300e", "\u00ab")
HEAD_TOKENS = 256
TAIL_TOKENS = 64


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``; a CJK run becomes its character bigrams."""
    if text.isascii():  # no CJK run to split: the pattern's tokens as they are
        tokens: list[str] = WORD.findall(text.lower())
        return tokens
    toks: list[str] = []
    for tok in WORD.findall(text.lower()):
        if len(tok) > 1 and CJK_RUN.fullmatch(tok):
            toks.extend(a + b for a, b in pairwise(tok))
        else:
            toks.append(tok)
    return toks


def analyze(text: str) -> list[str]:
    """All features of one prompt, in a stable order."""
    return analyze_words(text)[0]


def analyze_words(text: str) -> tuple[list[str], list[str]]:
    """:func:`analyze`'s features, and the words they were made of (the unigram features:
    the prompt's words, or its head and tail when it is long)."""
    toks = words(text)
    n = len(toks)
    if n > HEAD_TOKENS + TAIL_TOKENS:
        toks = toks[:HEAD_TOKENS] + toks[-TAIL_TOKENS:]
    feats = list(toks)
    feats.extend(map(" ".join, pairwise(toks)))
    feats.append(f"__len{_length_band(n)}")
    if toks:
        feats.append("__first " + toks[0])
        if n > 1:
            feats.append("__first2 " + toks[0] + " " + toks[1])
    stripped = text.strip()
    if "\n" in stripped:
        feats.append("__multiline")
    if "```" in text or "    " in text or "\t" in text:
        feats.append("__code_block")
    if stripped.endswith(QUESTION_MARKS):
        feats.append("__ends_question")
    if ":" in stripped[-3:] or stripped.count(":") >= 3:
        feats.append("__fields")
    if any(q in text for q in QUOTES):
        feats.append("__quoted")
    return feats, toks


def _length_band(n_words: int) -> int:
    """Length in coarse logarithmic bands: 0 words, 1, 2-3, 4-7, 8-15, ... 256+."""
    return min(int(math.log2(n_words + 1)), 9)
