"""The quality check of fallback routing: is a cheaper model's answer good enough to keep?

Signals, each named in the result's ``reasons``:

- ``empty``: no letters or digits at all;
- ``too_short``: much shorter than the task's kind needs (a one-word label answers a
  classification, not an essay request); the kind comes from the classifier;
- ``truncated``: ``finish_reason`` is ``length`` although the caller set no ``max_tokens`` (an
  answer cut at the caller's own cap is what was asked for), or the text stops mid-sentence;
- ``unclosed_code``: an odd number of code fences;
- ``uncertain`` / ``refusal``: marker phrases (English, German, French, Spanish by default);
- ``low_logprob``: the mean token log-probability, when given, is below a threshold;
- ``repetition``: a degenerate loop (the same line again and again, or few distinct 4-grams);
- ``degenerate``: no words at all, only one character repeated (``zzzz...``, 16 or more) or a
  long answer (64 or more visible characters) made of at most three distinct characters
  (``z zz zzz``, ``-.-.-.``); its weight (1.0) escalates on its own.

Each signal costs a weight; ``score = max(0, 1 - sum of weights)``, and the answer escalates
when the score falls below ``escalate_below``. Weights, thresholds and marker lists live in the
portfolio's ``quality`` section
(:class:`~classifier_service.portfolio.quality.QualityPolicy`). Scoring only: which tier comes next
is the policy's and the API's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from classifier_service.portfolio.quality import DEFAULT_WEIGHTS, QualityPolicy

Signal = Literal["empty", "too_short", "truncated", "unclosed_code", "uncertain", "refusal",
                 "low_logprob", "repetition", "degenerate"]

CONNECTIVES = frozenset({
    "and", "or", "but", "the", "a", "an", "of", "to", "with", "for", "in", "on", "at", "by",
    "as", "that", "which", "because", "so", "if", "und", "oder", "aber", "der", "die", "das",
    "mit", "für", "zu", "et", "ou", "mais", "le", "la", "les", "de", "des", "avec", "pour",
    "y", "o", "pero", "el", "los", "las", "con", "para",
})
FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
QUOTED = re.compile(
    r"\"[^\"\n]{0,200}\"|\u201c[^\u201d\n]{0,200}\u201d|\u00ab[^\u00bb\n]{0,200}\u00bb"
)
URL_AT_END = re.compile(r"(https?://|www\.)\S+$")
LIST_OR_BLOCK = re.compile(r"^\s*([-*+>|#]|\d+[.)]|```|~~~)")
WORD = re.compile(r"\w+")
WORD_ASCII = re.compile(r"\w+", re.ASCII)  # the same tokens of ASCII text, found faster


@dataclass(frozen=True)
class QualityResult:
    reasons: list[Signal]
    score: float
    escalate: bool


def check(
    response: str,
    policy: QualityPolicy,
    *,
    kind: str | None = None,
    tier: str | None = None,
    finish_reason: str | None = None,
    max_tokens: int | None = None,
    avg_logprob: float | None = None,
    words: list[str] | None = None,
) -> QualityResult:
    """Judge one answer; ``kind`` / ``tier`` tell how long a good answer must be.

    ``words``: the answer's words (:data:`WORD` tokens of the stripped, lowercased text's first
    :data:`REPETITION_WINDOW` characters) when the caller has them already; they stand in for
    the repetition signal's own when the text is no longer than that."""
    reasons: list[Signal] = []
    text = response.strip()
    lowered = text.lower()
    if not any(ch.isalnum() for ch in text):
        reasons.append("empty")
    elif len(text) < _min_chars(policy, kind, tier, max_tokens):
        reasons.append("too_short")
    cut_by_server = finish_reason == "length" and max_tokens is None
    if cut_by_server or (finish_reason != "length" and _stops_mid_sentence(text, policy)):
        reasons.append("truncated")
    if ("```" in text or "~~~" in text) and len(FENCE.findall(text)) % 2 == 1:
        reasons.append("unclosed_code")
    # Hedges and refusals come first (long answers stay cheap); quoted text is the answer's
    # subject, not its voice ('"I don't know" in French is "je ne sais pas"').
    head = QUOTED.sub(" ", lowered[:600])
    if policy.uncertain_re.search(head):
        reasons.append("uncertain")
    if policy.refusal_re.search(head):
        reasons.append("refusal")
    if avg_logprob is not None and avg_logprob < policy.low_logprob:
        reasons.append("low_logprob")
    if _repetitive(lowered, policy, words if len(lowered) <= REPETITION_WINDOW else None):
        reasons.append("repetition")
    if _degenerate(text):
        reasons.append("degenerate")
    penalty = sum(policy.weights.get(r, DEFAULT_WEIGHTS[r]) for r in reasons)
    score = round(max(0.0, 1.0 - penalty), 4)
    return QualityResult(reasons=reasons, score=score, escalate=score < policy.escalate_below)


def _min_chars(policy: QualityPolicy, kind: str | None, tier: str | None,
               max_tokens: int | None) -> int:
    if kind is not None and kind in policy.min_chars:
        minimum = policy.min_chars[kind]
    elif tier is not None and tier in policy.min_chars_by_tier:
        minimum = policy.min_chars_by_tier[tier]
    else:
        minimum = 1
    # An answer the caller capped at a few tokens cannot be judged short against a longer
    # minimum (e.g. Dify's model check: max_tokens 5, "ping").
    return minimum if max_tokens is None else min(minimum, 2 * max_tokens)


def _stops_mid_sentence(text: str, policy: QualityPolicy) -> bool:
    """A long prose answer whose last line ends in the middle of a sentence."""
    if len(text) < policy.truncation_min_chars:
        return False
    last = text.rsplit("\n", 1)[-1].strip()
    if URL_AT_END.search(last):
        return False  # a link is a fine last word
    if not last or LIST_OR_BLOCK.match(last):
        return last.endswith((",", ";", ":")) if last else False
    if last.endswith((",", ";", ":", "-", "(", "/")):
        return True
    if not last[-1].isalnum():
        return False  # ends in punctuation, a quote, a bracket, an emoji
    # No closing punctuation: cut off when the last word cannot end a sentence ("... and"),
    # or when the unfinished line is long; a short sign-off ("Hope this helps") is fine.
    # The line's end tells both when it holds LONG_LINE_WORDS words (most prose does);
    # only a shorter end of a longer line needs the whole line read.
    words = WORD.findall(last[-LINE_END_CHARS:].lower())
    if len(last) > LINE_END_CHARS and len(words) < LONG_LINE_WORDS:
        words = WORD.findall(last.lower())
    return bool(words) and (words[-1] in CONNECTIVES or len(words) >= LONG_LINE_WORDS)


def words_of(text: str) -> list[str]:
    """``WORD.findall(text)``, with the ASCII pattern where the text is ASCII."""
    return (WORD_ASCII if text.isascii() else WORD).findall(text)


LINE_END_CHARS = 160
LONG_LINE_WORDS = 12
REPETITION_WINDOW = 3000
"""A model stuck in a loop stays stuck to the end: the last characters tell."""


def _repetitive(lowered: str, policy: QualityPolicy, words: list[str] | None = None) -> bool:
    tail = lowered[-REPETITION_WINDOW:]
    lines = [stripped for line in tail.splitlines() if len(stripped := line.strip()) > 10]
    if len(lines) >= 4 and len(set(lines)) <= len(lines) / 3:
        return True
    if words is None:
        words = words_of(tail)
    if len(words) < policy.repetition_min_words:
        return False
    if len(words) < 4:
        return False
    # distinct 4-grams / all 4-grams, without building the list of all of them; each distinct
    # word but the last three starts a distinct 4-gram, so many distinct words decide it first
    if len(set(words)) - 3 >= policy.repetition_max_ratio * (len(words) - 3):
        return False
    distinct = len(set(zip(words, words[1:], words[2:], words[3:], strict=False)))
    return distinct / (len(words) - 3) < policy.repetition_max_ratio


DEGENERATE_ONE_CHAR = 16
DEGENERATE_FEW_CHARS = 64


def _degenerate(text: str) -> bool:
    """One character over and over, or a long answer of at most three distinct characters."""
    for part in (text[:DEGENERATE_FEW_CHARS], text):  # the opening usually decides it
        chars = set(part)
        if len(chars) - sum(1 for c in chars if c.isspace()) > 3:
            return False  # four or more distinct visible characters: not degenerate
    visible = "".join(text.split())
    if len(visible) < DEGENERATE_ONE_CHAR:
        return False
    distinct = len(set(visible))
    return distinct == 1 or (len(visible) >= DEGENERATE_FEW_CHARS and distinct <= 3)
