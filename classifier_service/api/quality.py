"""``/v1/quality``: the fallback check on a cheaper model's answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, WithJsonSchema, field_validator

from classifier_service.deps import RuntimeDep
from classifier_service.errors import InvalidRequestError
from classifier_service.portfolio import Portfolio
from classifier_service.quality import Signal, check
from classifier_service.schemas import EndpointRef

router = APIRouter(prefix="/v1", tags=["quality"])


class QualityRequest(BaseModel):
    """Flat body (scalars only), so Dify's custom-tool import can use it."""

    prompt: str = Field(description="The request the answer is for.")
    response: str = Field(description="The answer to check.")
    finish_reason: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="The server's finish_reason, e.g. stop or length.")
    tier: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="The tier that answered (default: the cheapest).")
    avg_logprob: Annotated[float | None, WithJsonSchema({"type": "number"})] = Field(
        default=None, le=0, description="Mean token log-probability of the answer, if known.")
    max_tokens: Annotated[int | None, WithJsonSchema({"type": "integer"})] = Field(
        default=None, gt=0, description="The length cap the caller set, if any.")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be empty or whitespace")
        return value

    @field_validator("finish_reason", "tier")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None


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
    responses={422: {"description": "Empty prompt or an unknown tier."}},
)
def check_quality(body: QualityRequest, runtime: RuntimeDep) -> QualityResponse:
    portfolio = runtime.portfolio
    tier = body.tier or portfolio.tier_names[0]
    if not portfolio.has_tier(tier):
        raise InvalidRequestError(
            ("body", "tier"), f"unknown tier {tier!r}; tiers: {', '.join(portfolio.tier_names)}",
            tier)
    kind = runtime.classifier.score(body.prompt).top_category
    result = check(body.response, portfolio.quality, kind=kind, tier=tier,
                   finish_reason=body.finish_reason, max_tokens=body.max_tokens,
                   avg_logprob=body.avg_logprob)
    next_tier = portfolio.next_tier(tier) if result.escalate else None
    return QualityResponse(
        escalate=result.escalate,
        reasons=result.reasons,
        score=result.score,
        tier=tier,
        category=kind,
        next_tier=next_tier,
        next_endpoint=_first(portfolio, next_tier),
    )


def _first(portfolio: Portfolio, tier: str | None) -> EndpointRef | None:
    if tier is None:
        return None
    return EndpointRef.of(portfolio.tiers[portfolio.tier_index(tier)].endpoints[0])
