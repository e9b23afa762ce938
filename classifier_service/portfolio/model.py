"""The model portfolio: which endpoints exist, how they form a tier ladder, and the routing rules.

A portfolio is a YAML file validated with pydantic. Every problem is reported as a
:class:`~classifier_service.errors.PortfolioError` that names the file, the field and the
problem, e.g. ``portfolio.yaml: agents.code-review.endpoint: unknown endpoint 'coder'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier_service.errors import MissingKeyError, PortfolioError
from classifier_service.portfolio.judge import InlineJudge, JudgeSettings
from classifier_service.portfolio.policy import Policy
from classifier_service.portfolio.quality import QualityPolicy
from classifier_service.portfolio.schedule import Schedule

ApiKind = Literal["ollama", "openai"]
Loading = Literal["concurrent", "on_demand"]
Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gpu(_Strict):
    """One GPU of the server."""

    memory_gb: float = Field(gt=0, description="GPU memory in GB (10^9 bytes).")
    alert_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Share of memory above which VRAM use alerts."
    )


class Endpoint(_Strict):
    """One model served by one inference server."""

    name: Name
    api: ApiKind = Field(description="Wire protocol: Ollama's native API or OpenAI-compatible.")
    base_url: str = Field(pattern=r"^https?://[^\s/]+", description="Server address.")
    model: str = Field(min_length=1, description="Model name as the server knows it.")
    params_b: float | None = Field(default=None, gt=0, description="Parameters, billions.")
    cost: float | None = Field(default=None, gt=0, description="Relative cost of one call "
                               "(outcome models weigh tiers by it; default: by params_b).")
    quantization: str | None = Field(default=None, description="e.g. q4_K_M, q8_0, awq, f16.")
    context_length: int = Field(default=4096, gt=0, description="Context window, tokens.")
    gpu: str | None = Field(default=None, description="Key into `gpus`.")
    loading: Loading = "on_demand"
    keep_alive: str | None = Field(
        default=None, description="Ollama keep-alive: '-1' forever, '10m', '0' unload now."
    )
    api_key_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the server's API key (sent as a bearer "
        "token). Keys never go in the portfolio itself.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: object) -> object:
        if isinstance(data, dict) and ("api_key" in data or "apiKey" in data):
            raise ValueError("API keys do not belong in the portfolio: put the key in an "
                             "environment variable and name that variable in api_key_env")
        return data

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for this server, from ``api_key_env`` (empty when unset)."""
        if self.api_key_env is None:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise MissingKeyError(
                f"environment variable {self.api_key_env} (api_key_env) is not set")
        return {"authorization": f"Bearer {key}"}

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class Specialist(Endpoint):
    """An endpoint outside the ladder, reached by rules; escalation continues at ``tier``."""

    tier: str = Field(description="The ladder tier this endpoint counts as.")


class Tier(_Strict):
    """One rung of the ladder; ``balance`` says how its endpoints share the load."""

    name: Name
    endpoints: list[Endpoint] = Field(min_length=1)
    balance: Literal["first", "round_robin", "least_busy"] = Field(
        default="first", description="Which endpoint comes first: as listed, in turn, or "
        "the one with the fewest requests in flight.")
    cost: float | None = Field(default=None, gt=0, description="Relative cost of one call at "
                               "this tier (default: its endpoints' cost, else by params_b).")


class AgentRule(_Strict):
    """Agent-level routing: an agent pinned to a tier or to one endpoint."""

    tier: str | None = None
    endpoint: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.tier is None) == (self.endpoint is None):
            raise ValueError("set exactly one of 'tier' or 'endpoint'")
        return self


class CategoryRule(_Strict):
    """A task kind sent to one endpoint, optionally only up to a tier of the ladder.

    Above ``max_tier`` (the tier the classifier would choose is more expensive) the rule
    does not apply and the request follows the ladder. A plain endpoint name is the same as
    ``{endpoint: NAME}`` with no cap.
    """

    endpoint: str
    max_tier: str | None = Field(
        default=None, description="Highest tier the endpoint takes the task kind at; unset: all.")


class Portfolio(_Strict):
    """The whole portfolio file."""

    version: Literal[1]
    gpus: dict[str, Gpu] = Field(default_factory=dict)
    tiers: list[Tier] = Field(min_length=1, description="Cheapest first.")
    specialists: list[Specialist] = Field(default_factory=list)
    categories: dict[str, CategoryRule] = Field(
        default_factory=dict,
        description="Task kind -> endpoint name, or {endpoint: NAME, max_tier: TIER}.",
    )
    agents: dict[str, AgentRule] = Field(default_factory=dict)
    policy: Policy = Field(default_factory=Policy)
    quality: QualityPolicy = Field(default_factory=QualityPolicy)
    schedules: list[Schedule] = Field(default_factory=list)
    judge: JudgeSettings | None = Field(
        default=None, description="Judge sampling: a judge model compares answers of two tiers.")

    @field_validator("categories", mode="before")
    @classmethod
    def _plain_endpoint_names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {kind: {"endpoint": rule} if isinstance(rule, str) else rule
                    for kind, rule in value.items()}
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        tier_names = [t.name for t in self.tiers]
        _no_duplicates(tier_names, "tiers", "tier")
        endpoint_names = [e.name for e in self.all_endpoints()]
        _no_duplicates(endpoint_names, "endpoints", "endpoint")

        for ti, tier in enumerate(self.tiers):
            for ei, ep in enumerate(tier.endpoints):
                self._check_gpu(ep, f"tiers.{ti}.endpoints.{ei}.gpu")
        for si, spec in enumerate(self.specialists):
            self._check_gpu(spec, f"specialists.{si}.gpu")
            _known(spec.tier, tier_names, f"specialists.{si}.tier", "tier")
        for kind, category in self.categories.items():
            _known(category.endpoint, endpoint_names, f"categories.{kind}", "endpoint")
            if category.max_tier is not None:
                _known(category.max_tier, tier_names, f"categories.{kind}.max_tier", "tier")
        names = [s.name for s in self.schedules]
        _no_duplicates(names, "schedules", "schedule")
        by_name = {ep.name: ep for ep in self.all_endpoints()}
        for si, sched in enumerate(self.schedules):
            for field_name in ("load", "unload"):
                for target in getattr(sched, field_name):
                    _known(target, endpoint_names, f"schedules.{si}.{field_name}", "endpoint")
                    if by_name[target].api != "ollama":
                        raise ValueError(
                            f"schedules.{si}.{field_name}: {target!r} is not an Ollama "
                            "endpoint; only Ollama models can be loaded and unloaded"
                        )
        for agent, rule in self.agents.items():
            if rule.tier is not None:
                _known(rule.tier, tier_names, f"agents.{agent}.tier", "tier")
            if rule.endpoint is not None:
                _known(rule.endpoint, endpoint_names, f"agents.{agent}.endpoint", "endpoint")
        if self.judge is not None and isinstance(self.judge.endpoint, str):
            _known(self.judge.endpoint, endpoint_names, "judge.endpoint", "endpoint")
        return self

    def judge_endpoint(self) -> Endpoint | None:
        """The judge as an endpoint (an inline judge is named ``judge``), or None."""
        if self.judge is None:
            return None
        if isinstance(self.judge.endpoint, str):
            return self.endpoint(self.judge.endpoint)
        inline: InlineJudge = self.judge.endpoint
        return Endpoint(name="judge", api=inline.api, base_url=inline.base_url,
                        model=inline.model, api_key_env=inline.api_key_env)

    def _check_gpu(self, ep: Endpoint, where: str) -> None:
        if ep.gpu is not None and ep.gpu not in self.gpus:
            known = ", ".join(self.gpus) or "none defined"
            raise ValueError(f"{where}: unknown gpu {ep.gpu!r} (gpus: {known})")

    # -- lookups -------------------------------------------------------------------------

    def all_endpoints(self) -> Iterator[Endpoint]:
        for tier in self.tiers:
            yield from tier.endpoints
        yield from self.specialists

    @cached_property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @cached_property
    def _tier_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.tier_names)}

    @cached_property
    def _endpoints_by_name(self) -> dict[str, Endpoint]:
        return {ep.name: ep for ep in self.all_endpoints()}

    def tier_index(self, name: str) -> int:
        return self._tier_index[name]

    def has_tier(self, name: str) -> bool:
        return name in self._tier_index

    def tier_costs(self) -> dict[str, float]:
        """Relative cost of a call per tier: the tier's ``cost``, else its endpoints' mean
        ``cost``; else largest ``params_b`` / the cheapest tier's (when every tier has one);
        else 1, 2, 4, ... up the ladder."""
        explicit, params = {}, {}
        for tier in self.tiers:
            costs = [e.cost for e in tier.endpoints if e.cost is not None]
            if tier.cost is not None or costs:
                explicit[tier.name] = tier.cost or sum(costs) / len(costs)
            if sizes := [e.params_b for e in tier.endpoints if e.params_b is not None]:
                params[tier.name] = max(sizes)
        derived = {t.name: float(2 ** i) for i, t in enumerate(self.tiers)}
        if len(params) == len(self.tiers):
            derived = {t: v / min(params.values()) for t, v in params.items()}
        return {t: explicit.get(t, derived[t]) for t in self.tier_names}

    def endpoint(self, name: str) -> Endpoint:
        return self._endpoints_by_name[name]

    def next_tier(self, tier: str) -> str | None:
        """The tier above ``tier`` on the ladder, or None at the top."""
        index = self.tier_index(tier) + 1
        return self.tier_names[index] if index < len(self.tier_names) else None

    @cached_property
    def _tier_by_endpoint(self) -> dict[str, str]:
        tiers = {ep.name: tier.name for tier in self.tiers for ep in tier.endpoints}
        tiers.update((spec.name, spec.tier) for spec in self.specialists)
        return tiers

    def tier_of(self, endpoint: Endpoint) -> str:
        """The ladder tier of an endpoint; for a specialist, its ``tier``."""
        return self._tier_by_endpoint[endpoint.name]


def _known(name: str, names: list[str], where: str, what: str) -> None:
    """``where: unknown <what> 'name' (<what>s: a, b)`` unless ``name`` is one of ``names``."""
    if name not in names:
        raise ValueError(f"{where}: unknown {what} {name!r} ({what}s: {', '.join(names)})")


def _no_duplicates(names: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{where}: duplicate {what} name {name!r}")
        seen.add(name)


def keep_alive_value(value: str) -> str | int:
    """Ollama takes durations ("10m") or seconds; "-1" and "0" are numbers to it."""
    try:
        return int(value)
    except ValueError:
        return value


def bundled_portfolio_path() -> Path:
    """The example portfolio shipped with the package (the guide's 24 GB server)."""
    return Path(str(resources.files("classifier_service") / "portfolios" / "default.yaml"))


MAX_PORTFOLIO_BYTES = 4 * 1024 * 1024


def load_portfolio(path: Path | str) -> Portfolio:
    """Read and validate a portfolio file; every problem raises :class:`PortfolioError`."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a folder, /dev/zero, a FIFO: never read
            raise PortfolioError(path, "not a regular file")
        if path.exists() and path.stat().st_size > MAX_PORTFOLIO_BYTES:
            raise PortfolioError(path, f"larger than {MAX_PORTFOLIO_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PortfolioError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PortfolioError(path, f"cannot read file: {exc}") from None
    return parse_portfolio(text, path)


def parse_portfolio(text: str, path: Path | str = "<portfolio>") -> Portfolio:
    """Validate portfolio YAML text; ``path`` only names the source in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PortfolioError(path, f"{where}invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise PortfolioError(path, "expected a mapping at the top level (version, tiers, ...)")
    try:
        return Portfolio.model_validate(data)
    except ValidationError as exc:
        raise PortfolioError(path, _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return "; ".join(problems)
