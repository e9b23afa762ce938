"""``/v1/quality``: the fallback check on a cheaper model's answer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from classifier_service.api.deps import RuntimeDep, state
from classifier_service.api.responses import BAD_BODY, NOT_LOADED, invalid, merge, too_large
from classifier_service.api.schemas import (
    EndpointRef,
    OptionalInteger,
    OptionalNumber,
    OptionalString,
    Prompt,
)
from classifier_service.routing.answer_check import judge
from classifier_service.routing.policy import check_tier
from classifier_service.routing.quality import Signal

router = APIRouter(prefix="/v1", tags=["quality"])


class QualityRequest(BaseModel):
    """Flat body (scalars only), so Dify's custom-tool import can use it."""

    prompt: Prompt = Field(description="The request the answer is for.")
    response: str = Field(description="The answer to check.")
    finish_reason: OptionalString = Field(
        default=None, description="The server's finish_reason, e.g. stop or length.")
    tier: OptionalString = Field(
        default=None, description="The tier that answered (default: the cheapest).")
    avg_logprob: OptionalNumber = Field(
        default=None, le=0, description="Mean token log-probability of the answer, if known.")
    max_tokens: OptionalInteger = Field(
        default=None, gt=0, description="The length cap the caller set, if any.")


class WeighedSignal(BaseModel):
    name: str = Field(description="A feature of the learned check (e.g. log_chars, "
                      "signal:too_short, avg_logprob).")
    weight: float = Field(description="Its push in the check's logistic sum; positive: "
                          "towards not good enough.")


class QualityResponse(BaseModel):
    escalate: bool = Field(description="Retry on the next tier.")
    reasons: list[Signal] = Field(description="The signals found.")
    score: float = Field(description="0-1, higher is better (learned check: 1 - p_bad).")
    check: Literal["learned"] | None = Field(
        default=None, description="`learned` when the loaded outcome model's check judged; "
        "absent for the hand-written check (as are p_bad, threshold and signals).")
    p_bad: float | None = Field(default=None, description="Learned check: P(not good enough).")
    threshold: float | None = Field(
        default=None, description="Learned check: escalate when p_bad is above this.")
    signals: list[WeighedSignal] | None = Field(
        default=None, description="Learned check: the three features that weighed most.")
    tier: str = Field(description="The tier that answered.")
    category: str | None = Field(description="The task kind the length was judged by.")
    next_tier: str | None = Field(description="Where to escalate; null when not escalating "
                                  "or at the top tier.")
    next_endpoint: EndpointRef | None


@router.post(
    "/quality",
    operation_id="check_quality",
    summary="Check an answer; say whether to escalate",
    description=(
        "Fallback routing's check on a cheaper model's answer: empty or too short for the "
        "task's kind, truncated, an unclosed code fence, explicit uncertainty or a refusal, "
        "low mean log-probability, degenerate repetition. Returns escalate, the reasons, a "
        "0-1 score and, when escalating, the next tier and its endpoint."
    ),
    response_model=QualityResponse,
    responses=merge(
        BAD_BODY,
        too_large("The prompt is longer than policy.max_prompt_chars."),
        invalid("Empty prompt, an unknown tier, or a field of the wrong type."),
        NOT_LOADED,
    ),
)
async def check_quality(body: QualityRequest, runtime: RuntimeDep, request: Request
                  ) -> JSONResponse:
    portfolio = runtime.portfolio
    runtime.check_length(body.prompt)  # the same limit as routing, before the classifier runs
    tier = check_tier(portfolio, body.tier, "tier") or portfolio.tier_names[0]
    scores = runtime.classifier.score(body.prompt)
    kind = scores.top_category
    result = judge(runtime.outcome, portfolio.quality, body.prompt, body.response, tier,
                   scores=scores, finish_reason=body.finish_reason, max_tokens=body.max_tokens,
                   avg_logprob=body.avg_logprob)
    metrics = state(request).metrics
    metrics.checked(result.escalate, result.reasons)
    next_tier = portfolio.next_tier(tier) if result.escalate else None
    answer = QualityResponse(
        escalate=result.escalate,
        reasons=result.reasons,
        score=result.score,
        check="learned" if result.learned else None,
        p_bad=result.p_bad,
        threshold=result.threshold,
        signals=[WeighedSignal(name=n, weight=w) for n, w in result.signals]
        if result.learned else None,
        tier=tier,
        category=kind,
        next_tier=next_tier,
        next_endpoint=(EndpointRef.of(runtime.balancer.order(next_tier)[0])
                       if next_tier is not None else None),
    )
    learned_only = set() if result.learned else {"check", "p_bad", "threshold", "signals"}
    return JSONResponse(answer.model_dump(mode="json", exclude=learned_only))
