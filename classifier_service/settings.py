"""Service settings: flags, then ``TIER_ROUTER_*`` environment variables, then defaults."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from classifier_service.errors import ConfigError
from classifier_service.feedback import (
    DEFAULT_MAX_FEEDBACK_LOG_BYTES,
    DEFAULT_MAX_OUTCOME_FILE_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
)
from classifier_service.fleet.gpu_monitor import GpuSource
from classifier_service.logs import LogFormat
from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.routing.artifact import bundled_model_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_BODY_TIMEOUT_S = 30.0


def parse_keys(value: str | None) -> frozenset[str]:
    """``"a, b,,c"`` -> {"a", "b", "c"}."""
    return frozenset(k.strip() for k in (value or "").split(",") if k.strip())


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/tier-router``, else ``~/.local/state/tier-router`` (read when called)."""
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "tier-router"


class Settings(BaseSettings):
    """Where the service listens and what it loads.

    ``TIER_ROUTER_HOST``, ``TIER_ROUTER_PORT``, ``TIER_ROUTER_PORTFOLIO`` (a YAML file) and
    ``TIER_ROUTER_MODEL_DIR`` (a model folder); unset paths mean the bundled ones.
    ``TIER_ROUTER_OUTCOMES_DIR`` (default :func:`default_state_dir` ``/outcomes``) and
    ``TIER_ROUTER_FEEDBACK_LOG`` (default :func:`default_state_dir` ``/feedback.jsonl``).
    """

    model_config = SettingsConfigDict(env_prefix="TIER_ROUTER_", extra="ignore")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    portfolio: Path | None = None
    model_dir: Path | None = None
    public_url: str | None = Field(
        default=None, description="The URL clients use, for the OpenAPI `servers` entry."
    )
    feedback_log: Path = Field(
        default_factory=lambda: default_state_dir() / "feedback.jsonl",
        description="Where POST /v1/feedback appends records of the request_id form.",
    )
    outcomes_dir: Path = Field(
        default_factory=lambda: default_state_dir() / "outcomes",
        description="The folder outcome records go to, one file per process.",
    )
    feedback_max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES, gt=0, description="Largest record as JSON (else 413)."
    )
    outcomes_max_file_bytes: int = Field(
        default=DEFAULT_MAX_OUTCOME_FILE_BYTES, gt=0,
        description="Size at which a process goes on in a new outcomes file.",
    )
    feedback_log_max_bytes: int = Field(
        default=DEFAULT_MAX_FEEDBACK_LOG_BYTES, gt=0,
        description="Size of the feedback log past which appends are refused (507).",
    )
    feedback_rate: float = Field(
        default=20.0, ge=0, description="Records per second per API key (or client address "
        "without keys) on /v1/feedback, per process; 0: no limit.",
    )
    feedback_burst: int = Field(
        default=256, gt=0, description="Records a key may send at once before the rate holds.",
    )
    scheduler: bool = Field(
        default=False, description="Run the portfolio's schedules in this instance."
    )
    state_file: Path | None = Field(
        default=None, description="Reload state shared by worker processes (set by `serve`)."
    )
    api_keys: str | None = Field(
        default=None, description="Comma-separated bearer keys for the API (unset: open)."
    )
    admin_keys: str | None = Field(
        default=None, description="Comma-separated keys for /v1/admin (unset: admin is off "
        "over HTTP; SIGHUP still reloads)."
    )
    models_dir: Path | None = Field(
        default=None, description="POST /v1/admin/reload takes model folders under this folder "
        "(besides the bundled model and the one given at start); unset: only those two."
    )
    portfolios_dir: Path | None = Field(
        default=None, description="POST /v1/admin/reload takes portfolios under this folder "
        "(besides the bundled one and the one given at start); unset: only those two."
    )
    allow_unauthenticated: bool = Field(
        default=False, description="Listen on a non-loopback address without API keys."
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, gt=0, description="Largest request body (else 413)."
    )
    body_timeout_s: float = Field(
        default=DEFAULT_BODY_TIMEOUT_S, gt=0,
        description="How long a request body may take to arrive (else 408).",
    )
    limit_concurrency: int | None = Field(
        default=1024, gt=0,
        description="Connections and requests in flight per process before uvicorn answers "
        "503 (caps what slow clients can hold).",
    )
    cors_origins: str | None = Field(
        default=None, description="Comma-separated origins allowed by CORS (unset: CORS off)."
    )
    gpu_source: GpuSource = Field(
        default="auto", description="Where the VRAM monitor reads GPU memory: auto (NVML, "
        "else nvidia-smi), nvml, nvidia-smi, or off."
    )
    gpu_poll_s: float = Field(
        default=5.0, gt=0, description="Seconds between two reads of the VRAM monitor."
    )
    log_format: LogFormat = "json"
    log_prompts: bool = Field(
        default=False, description="Put prompt and answer text in the logs."
    )

    @property
    def keyed(self) -> bool:
        """Whether API keys are configured (admin keys alone leave the API open)."""
        return bool(parse_keys(self.api_keys))

    def check_exposure(self) -> None:
        """Refuse a non-loopback address without API keys unless explicitly allowed."""
        if self.keyed or self.allow_unauthenticated or is_loopback(self.host):
            return
        raise ConfigError(
            "TIER_ROUTER_HOST",
            f"listening on {self.host} without API keys would open the service to the "
            "network; set TIER_ROUTER_API_KEYS (and TIER_ROUTER_ADMIN_KEYS), or pass "
            "--allow-unauthenticated (TIER_ROUTER_ALLOW_UNAUTHENTICATED=1) to do it anyway",
        )

    @property
    def portfolio_path(self) -> Path:
        return self.portfolio or bundled_portfolio_path()

    @property
    def model_path(self) -> Path:
        return self.model_dir or bundled_model_dir()

    @property
    def server_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
