"""What the learned check sees of one answer: length against what the task needs, structure,
today's hand-written signals, logprob statistics when the server gave them, and its words.

The dense vector is small (about twenty numbers), so a logistic regression over it stays
interpretable: each weight times the standardised value is that signal's push towards "not good
enough", which is what the check reports as its top signals. The words (:func:`answer_words`,
counted as unigrams and bigrams by :func:`answer_terms`) are the sparse part: what a user's
own models say when they fail ("I must inform you", "as a responsible AI"), learned from the
records rather than listed by hand.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import get_args

import numpy as np
import numpy.typing as npt

from classifier_service.portfolio.quality import DEFAULT_MIN_CHARS, QualityPolicy
from classifier_service.routing.quality import REPETITION_WINDOW, Signal, check, words_of

FloatArray = npt.NDArray[np.float64]
SIGNALS: tuple[str, ...] = get_args(Signal)
BASE_NAMES: tuple[str, ...] = (
    "log_chars", "log_ratio_prompt", "log_ratio_kind", "log_ratio_min_chars", "list_lines",
    "code_fences", "paragraphs", "headings", *(f"signal:{s}" for s in SIGNALS),
    "finish_length", "has_logprob", "avg_logprob",
)
# One pass over the line starts: group 1 a list item, group 2 a heading, group 3 a code fence.
LINE_START = re.compile(r"^\s*(?:((?:[-*+]|\d+[.)])\s)|(#{1,6}\s)|(```|~~~))", re.MULTILINE)
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_POLICY: QualityPolicy | None = None
WORDS_READ = 160
"""The check weighs an answer's first words (the opening is where hedges, refusals and
lectures sit; on AlpacaEval halves the first ~1,000 characters predict as well as all of them,
and the check stays fast for long answers)."""


def _policy() -> QualityPolicy:
    global _POLICY
    if _POLICY is None:  # built on first use, not at import
        _POLICY = QualityPolicy()
    return _POLICY


def text_words(answer: str) -> list[str]:
    """The ``\\w+`` tokens (:func:`~classifier_service.routing.quality.words_of`) of the
    stripped, lowercased answer's first ``REPETITION_WINDOW`` characters: what the hand-written
    repetition signal reads of an answer that short, and where the check's words come from."""
    return words_of(answer.strip().lower()[:REPETITION_WINDOW])


def answer_words(answer: str, words: list[str] | None = None) -> list[str]:
    """The words the check weighs: the first :data:`WORDS_READ` of :func:`text_words`
    (``words``: those, when the caller has them)."""
    return (text_words(answer) if words is None else words)[:WORDS_READ]


def answer_terms(answer: str) -> list[str]:
    """The answer's unigrams and bigrams (``"must inform"``), as training counts them."""
    words = answer_words(answer)
    return [*words, *(f"{a} {b}" for a, b in pairwise(words))]


def feature_names(tiers: tuple[str, ...]) -> list[str]:
    """Names in vector order: the base features, one indicator per tier, the router's logit."""
    return [*BASE_NAMES, *(f"tier:{t}" for t in tiers), "router_logit"]


def answer_vector(
    prompt: str,
    answer: str,
    *,
    tier_index: int,
    n_tiers: int,
    kind: str | None,
    kind_loglen: float,
    finish_reason: str | None,
    avg_logprob: float | None,
    router_logit: float,
    words: list[str] | None = None,
) -> FloatArray:
    """The check's features of one answer (see :func:`feature_names` for the order).

    ``kind_loglen`` is the typical log length of a good answer for the prompt's task kind, as
    seen in the training records (the model stores one per kind). ``words``: the answer's
    :func:`text_words`, when the caller has them (the hand-written check reuses them).
    """
    text = answer.strip()
    n = len(text)
    log_chars = math.log1p(n)
    min_chars = DEFAULT_MIN_CHARS.get(kind or "", 1)
    signals = check(text, _policy(), kind=kind, finish_reason=finish_reason,
                    avg_logprob=avg_logprob, words=words).reasons
    lists = headings = fences = 0
    for item, heading, fence in LINE_START.findall(text):
        if item:
            lists += 1
        elif heading:
            headings += 1
        elif fence:
            fences += 1
    out = np.zeros(len(BASE_NAMES) + n_tiers + 1, dtype=np.float64)
    out[0] = log_chars
    out[1] = log_chars - math.log1p(len(prompt))
    out[2] = log_chars - kind_loglen
    out[3] = log_chars - math.log1p(min_chars)
    out[4] = math.log1p(lists)
    out[5] = min(fences, 6) / 2.0
    out[6] = math.log1p(len(PARAGRAPH_BREAK.findall(text)))
    out[7] = math.log1p(headings)
    base = 8
    for s in signals:
        out[base + SIGNALS.index(s)] = 1.0
    base += len(SIGNALS)
    out[base] = 1.0 if finish_reason == "length" else 0.0
    if avg_logprob is not None:
        out[base + 1] = 1.0
        out[base + 2] = float(avg_logprob)
    out[len(BASE_NAMES) + tier_index] = 1.0
    out[-1] = router_logit
    return out
