"""``/v1/quality``: the fallback check on a cheaper model's answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
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
from classifier_service.routing.policy import check_tier
from classifier_service.routing.quality import Signal, check

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


class QualityResponse(BaseModel):
    escalate: bool = Field(description="Retry on the next tier.")
    reasons: list[Signal] = Field(description="The signals found.")
    score: float = Field(description="0-1, higher is better.")
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
    responses=merge(
        BAD_BODY,
        too_large("The prompt is longer than policy.max_prompt_chars."),
        invalid("Empty prompt, an unknown tier, or a field of the wrong type."),
        NOT_LOADED,
    ),
)
async def check_quality(body: QualityRequest, runtime: RuntimeDep, request: Request
                  ) -> QualityResponse:
    portfolio = runtime.portfolio
    runtime.check_length(body.prompt)  # the same limit as routing, before the classifier runs
    tier = check_tier(portfolio, body.tier, "tier") or portfolio.tier_names[0]
    kind = runtime.classifier.score(body.prompt).top_category
    result = check(body.response, portfolio.quality, kind=kind, tier=tier,
                   finish_reason=body.finish_reason, max_tokens=body.max_tokens,
                   avg_logprob=body.avg_logprob)
    metrics = state(request).metrics
    metrics.checked(result.escalate, result.reasons)
    next_tier = portfolio.next_tier(tier) if result.escalate else None
    return QualityResponse(
        escalate=result.escalate,
        reasons=result.reasons,
        score=result.score,
        tier=tier,
        category=kind,
        next_tier=next_tier,
        next_endpoint=(EndpointRef.of(runtime.balancer.order(next_tier)[0])
                       if next_tier is not None else None),
    )
