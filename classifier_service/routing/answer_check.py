"""The answer check the service applies: the outcome model's learned check when the loaded
model has one, else the hand-written one (:mod:`classifier_service.routing.quality`).

Either way a :class:`Verdict`: whether to escalate, the hand-written signals found in the
answer (``reasons``), a 0-1 ``score`` (higher is better) and, for the learned check, its
``p_bad`` (P(the answer is not good enough)), the tier's threshold from the calibrated
operating point (escalate when ``p_bad`` is above it) and the ``signals`` that weighed most:
the largest terms of its logistic sum (name, push; positive pushes towards "not good").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from classifier_service.portfolio.quality import QualityPolicy
from classifier_service.routing.answer_features import BASE_NAMES, SIGNALS
from classifier_service.routing.classifier import Scores
from classifier_service.routing.outcome_model import OutcomeModel
from classifier_service.routing.quality import Signal, check

SIGNAL_OFFSET = BASE_NAMES.index(f"signal:{SIGNALS[0]}")
TOP_SIGNALS = 3


@dataclass(frozen=True)
class Verdict:
    escalate: bool
    reasons: list[Signal]
    score: float
    signals: list[tuple[str, float]] = field(default_factory=list)
    p_bad: float | None = None
    threshold: float | None = None

    @property
    def learned(self) -> bool:
        return self.p_bad is not None

    def detail(self) -> list[str]:
        """What a gateway step lists: the signals found, and the learned check's numbers."""
        out: list[str] = list(self.reasons)
        if self.p_bad is not None and self.threshold is not None:
            op = ">" if self.p_bad > self.threshold else "<="
            out.append(f"p_bad {self.p_bad:.2f} {op} {self.threshold:.2f}")
        return out


def judge(outcome: OutcomeModel | None, policy: QualityPolicy, prompt: str, answer: str,
          tier: str, *, scores: Scores | None, finish_reason: str | None = None,
          max_tokens: int | None = None, avg_logprob: float | None = None) -> Verdict:
    """Check one answer of ``tier`` to ``prompt``; see the module docstring."""
    kind = scores.top_category if scores is not None else None
    if outcome is None or not outcome.has_check or tier not in outcome.tiers:
        result = check(answer, policy, kind=kind, tier=tier, finish_reason=finish_reason,
                       max_tokens=max_tokens, avg_logprob=avg_logprob)
        return Verdict(result.escalate, result.reasons, result.score)
    terms = outcome.score_check(prompt, answer, tier, finish_reason, avg_logprob, scores)
    p_bad, x = terms.p_bad, terms.x
    reasons = [cast(Signal, s) for i, s in enumerate(SIGNALS) if x[SIGNAL_OFFSET + i] > 0]
    return Verdict(
        escalate=outcome.escalate(p_bad, tier), reasons=reasons,
        score=round(1.0 - p_bad, 4), signals=outcome.top_terms(terms, TOP_SIGNALS),
        p_bad=round(p_bad, 4), threshold=outcome.check_thresholds.get(tier, 1.0))
