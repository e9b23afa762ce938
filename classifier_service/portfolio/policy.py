"""The portfolio's ``policy`` section: service-wide routing and gateway settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Policy(BaseModel):
    """Service-wide routing policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_prompt_chars: int = Field(default=64_000, gt=0)
    max_batch: int = Field(default=256, gt=0)
    confidence_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Below it the cheaper of the two likeliest tiers wins; default: the model's.",
    )
    category_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A category rule applies when the task kind's probability reaches this.",
    )
    chars_per_token: float = Field(
        default=4.0, gt=0, description="Token estimate for context checks: characters / this."
    )
    prefer_resident: bool = Field(
        default=False, description="Unsure decisions prefer a tier whose model is loaded."
    )
    residency_refresh_s: float = Field(
        default=10.0, gt=0, description="How often loaded models are read from Ollama."
    )
    max_escalations: int = Field(
        default=2, ge=0, description="Gateway: how many times an answer may move up a tier."
    )
    backend_timeout_s: float = Field(
        default=120.0, gt=0, description="Gateway: how long one backend call may take."
    )
    failover_cooldown_s: float = Field(
        default=30.0, ge=0, description="Gateway: how long a failed endpoint is skipped."
    )
    buffer_streams: bool = Field(
        default=False,
        description="Check streamed answers too: buffer, check and escalate, then stream the "
        "final answer (the header x-tier-router-stream: buffered or direct overrides it).",
    )
    record_escalations: bool = Field(
        default=False,
        description="Gateway: write each escalation the answer check made as an outcome "
        "record (source check, score 0). It stores prompt and answer text: off by default.",
    )
    session_from: Literal["header", "user"] = Field(
        default="header",
        description="Gateway: where a conversation id comes from: `header` (only "
        "x-tier-router-session) or `user` (that header, else OpenAI's `user` field, which "
        "Dify fills with the end user, so a user keeps the highest tier reached).",
    )
