"""Request and response bodies of the HTTP API.

Request bodies of the operations that Dify imports as tools (``route``) stay flat: scalar
fields only, and optional fields are declared in OpenAPI as plain strings (no ``anyOf`` with
``null``, no list of types), because Dify's custom-tool import reads only top-level scalar
properties and compares ``type`` with a string. ``null`` and ``""`` are both accepted and mean
"not set"; the schema says so with ``nullable: true``, which Dify ignores and schema-driven
tools (schemathesis) read.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)

from classifier_service.portfolio.model import ApiKind, Endpoint
from classifier_service.routing.policy import Adjustment, Reason


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("prompt must not be empty or whitespace")
    return value


def _blank_is_unset(value: object) -> object:
    return None if value == "" else value


def _number_text(value: object) -> object:
    """``""`` (or blank) is unset; a number written as text is that number (Dify sends both).

    A whole number is an int (``"256"``, ``256.0``), so integer fields take it. Anything else
    goes on unchanged to the strict check, which refuses it by name (a JSON true, "high").
    """
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            number = float(value)
        except ValueError:
            return value
        if not math.isfinite(number):
            return value  # "inf", "nan": refused as text, not read as a number
        value = number
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


# Field types of flat request bodies: plain scalars in OpenAPI, no anyOf/null.
# minLength for the schema; the check itself is _not_blank, whose message names the problem.
Prompt = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"minLength": 1})]
OptionalString = Annotated[
    str | None, BeforeValidator(_blank_is_unset),
    WithJsonSchema({"type": "string", "nullable": True}),
]
# Strict after _number_text: a JSON true is not a number (lax mode would take it as 1.0);
# "", null and numbers written as text ("-0.25", "256") are read as Dify sends them.
OptionalNumber = Annotated[
    float | None, Strict(), BeforeValidator(_number_text),
    WithJsonSchema({"type": "number", "nullable": True}),
]
OptionalInteger = Annotated[
    int | None, Strict(), BeforeValidator(_number_text),
    WithJsonSchema({"type": "integer", "nullable": True}),
]


class RouteRequest(BaseModel):
    """One request to route."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"prompt": "Is this review positive? 'Loved it!'"}]},
    )

    prompt: Prompt = Field(description="The request text, including any pasted passage or data.")
    agent: OptionalString = Field(default=None, description=(
        "Agent name; an agent pinned in the portfolio routes to its tier or endpoint."))
    min_tier: OptionalString = Field(default=None, description=(
        "Lowest tier allowed (a tier name of the portfolio)."))
    max_tier: OptionalString = Field(default=None, description=(
        "Highest tier allowed (a tier name of the portfolio)."))


class EndpointRef(BaseModel):
    """Where to send the request."""

    name: str
    api: ApiKind
    base_url: str
    model: str

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointRef:
        return cls(
            name=endpoint.name, api=endpoint.api, base_url=endpoint.base_url, model=endpoint.model
        )


class RouteResponse(BaseModel):
    """The routing decision for one request."""

    request_id: str = Field(description="Identifies this decision (for feedback and logs).")
    tier: str = Field(description="Tier of the chosen endpoint; for a specialist, its `tier`.")
    confidence: float = Field(description="The classifier's probability for its predicted tier.")
    probabilities: dict[str, float] = Field(description="Tier -> probability, summing to 1.")
    category: str | None = Field(description="Predicted task kind; null without a kind head.")
    endpoint: EndpointRef
    fallback: list[EndpointRef] = Field(
        description="Where to escalate, in order: the rest of the tier, then higher tiers."
    )
    reason: Reason = Field(description="The rule that picked the endpoint.")
    adjustments: list[Adjustment] = Field(description="What moved the choice afterwards.")
    reason_detail: str = Field(description="The decision in a sentence.")
    model_version: str


class BatchRequest(BaseModel):
    """Several route requests; each item is validated on its own."""

    # Items are not held to RouteRequest here: an invalid item is answered by its own error
    # entry (status 422 or 413) while the others are routed, so any item is accepted.
    items: list[Any] = Field(
        description=(
            "Route request bodies (RouteRequest: prompt, agent, min_tier, max_tier). An item "
            "that is not a valid one gets an error entry in `results`; at most "
            "policy.max_batch items (413 above)."
        ),
    )


class ItemError(BaseModel):
    status: int
    detail: Any


class BatchItemError(BaseModel):
    error: ItemError


class BatchResponse(BaseModel):
    results: list[RouteResponse | BatchItemError] = Field(
        description="One entry per item, in order: a decision, or an error for that item."
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str
    model_dir: str
    portfolio: str
    tiers: list[str]
    model_kind: Literal["classifier", "outcomes"] = Field(
        default="classifier", description="`outcomes` when an outcome model decides.")
    operating_point: dict[str, Any] | None = Field(
        default=None, description="The outcome model's calibrated point (thresholds, expected "
        "quality, shares, cost); null for a classifier.")
