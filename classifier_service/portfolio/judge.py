"""The portfolio's ``judge:`` section: judge sampling in the gateways (see
:mod:`classifier_service.gateway.judge`).

``endpoint`` is the name of an endpoint of the portfolio, or an inline endpoint (``api``,
``base_url``, ``model``, optional ``api_key_env``) that serves only as the judge. The section
is off until ``sample_rate`` is above 0.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ApiKind = Literal["ollama", "openai"]  # as in portfolio.model (which imports this module)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InlineJudge(_Strict):
    """A judge server that is not one of the portfolio's endpoints."""

    api: ApiKind
    base_url: str = Field(pattern=r"^https?://[^\s/]+", description="Server address.")
    model: str = Field(min_length=1, description="Model name as the server knows it.")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class JudgeSettings(_Strict):
    """Which model judges, how often, and how much of it the service may spend."""

    endpoint: str | InlineJudge = Field(
        description="An endpoint name of the portfolio, or {api, base_url, model, api_key_env}.")
    sample_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of answered non-streaming (and buffered) requests that are judged.")
    max_concurrent: int = Field(
        default=2, ge=1, description="Samples judged at once; over it a sample is skipped.")
    daily_budget: int = Field(
        default=1000, ge=0, description="Samples judged per UTC day; then skipped until midnight.")
    timeout_s: float = Field(
        default=60.0, gt=0, description="How long one judge call (one order) may take.")
    max_tokens: int = Field(
        default=4, ge=1, description="The verdict's token cap (it is one token).")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields merged into every judge request, e.g. llama.cpp's grammar.")
