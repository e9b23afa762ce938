"""What the learned check sees of one answer: length against what the task needs, structure,
today's eight hand-written signals, and logprob statistics when the server gave them.

The vector is dense and small (about twenty numbers), so a logistic regression over it stays
interpretable: each weight times the standardised value is that signal's push towards "not good
enough", which is what the check reports as its top signals.
"""

from __future__ import annotations

import math
import re
from typing import get_args

import numpy as np
import numpy.typing as npt

from classifier_service.portfolio.quality import DEFAULT_MIN_CHARS, QualityPolicy
from classifier_service.routing.quality import Signal, check

FloatArray = npt.NDArray[np.float64]
SIGNALS: tuple[str, ...] = get_args(Signal)
BASE_NAMES: tuple[str, ...] = (
    "log_chars", "log_ratio_prompt", "log_ratio_kind", "log_ratio_min_chars", "list_lines",
    "code_fences", "paragraphs", "headings", *(f"signal:{s}" for s in SIGNALS),
    "finish_length", "has_logprob", "avg_logprob",
)
LIST_LINE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.MULTILINE)
HEADING = re.compile(r"^\s*#{1,6}\s", re.MULTILINE)
FENCE = re.compile(r"^\s*(?:```|~~~)", re.MULTILINE)
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_POLICY: QualityPolicy | None = None


def _policy() -> QualityPolicy:
    global _POLICY
    if _POLICY is None:  # built on first use, not at import
        _POLICY = QualityPolicy()
    return _POLICY


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
) -> FloatArray:
    """The check's features of one answer (see :func:`feature_names` for the order).

    ``kind_loglen`` is the typical log length of a good answer for the prompt's task kind, as
    seen in the training records (the model stores one per kind).
    """
    text = answer.strip()
    n = len(text)
    log_chars = math.log1p(n)
    min_chars = DEFAULT_MIN_CHARS.get(kind or "", 1)
    signals = check(text, _policy(), kind=kind, finish_reason=finish_reason,
                    avg_logprob=avg_logprob).reasons
    out = np.zeros(len(BASE_NAMES) + n_tiers + 1, dtype=np.float64)
    out[0] = log_chars
    out[1] = log_chars - math.log1p(len(prompt))
    out[2] = log_chars - kind_loglen
    out[3] = log_chars - math.log1p(min_chars)
    out[4] = math.log1p(len(LIST_LINE.findall(text)))
    out[5] = min(len(FENCE.findall(text)), 6) / 2.0
    out[6] = math.log1p(len(PARAGRAPH_BREAK.findall(text)))
    out[7] = math.log1p(len(HEADING.findall(text)))
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
