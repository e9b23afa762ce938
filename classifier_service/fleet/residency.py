"""Which models are loaded, and loading or unloading them, through Ollama's API.

- status: ``GET {base_url}/api/ps`` lists the models an Ollama server holds in memory, with
  their VRAM (``size_vram``) and when they expire;
- load: ``POST {base_url}/api/generate`` with the model and no prompt preloads it, kept for the
  endpoint's ``keep_alive`` (``-1``: for good; the portfolio's ``concurrent`` models use it);
- unload: the same call with ``keep_alive: 0``.

OpenAI-compatible servers (vLLM, llama.cpp) load their one model at start and have no such API:
their residency is reported as ``unknown`` and load/unload are refused with a clear error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from classifier_service.errors import InvalidRequestError, MissingKeyError, ResidencyError
from classifier_service.portfolio.model import Endpoint, Portfolio, keep_alive_value

State = Literal["loaded", "not_loaded", "unknown", "unreachable"]
log = logging.getLogger("tier_router")


@dataclass(frozen=True)
class Residency:
    endpoint: str
    model: str
    api: str
    loading: str
    state: State
    vram_gb: float | None = None
    expires_at: str | None = None
    detail: str | None = None


async def status(portfolio: Portfolio, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The residency of every endpoint (one ``/api/ps`` call per Ollama server)."""
    endpoints = list(portfolio.all_endpoints())
    servers = sorted({ep.base_url for ep in endpoints if ep.api == "ollama"})
    answers = await asyncio.gather(*(_ps(client, url) for url in servers))
    loaded = dict(zip(servers, answers, strict=True))
    result = []
    for ep in endpoints:
        if ep.api != "ollama":
            result.append(Residency(ep.name, ep.model, ep.api, ep.loading, "unknown",
                                    detail="OpenAI-compatible servers have no residency API"))
            continue
        models = loaded[ep.base_url]
        if isinstance(models, str):
            result.append(Residency(ep.name, ep.model, ep.api, ep.loading, "unreachable",
                                    detail=models))
            continue
        entry = _entry(ep, models)
        if entry is None:
            result.append(Residency(ep.name, ep.model, ep.api, ep.loading, "not_loaded"))
        else:
            vram = entry.get("size_vram")
            result.append(Residency(
                ep.name, ep.model, ep.api, ep.loading, "loaded",
                vram_gb=round(vram / 1e9, 2) if isinstance(vram, int | float) else None,
                expires_at=entry.get("expires_at")))
    return [asdict(r) for r in result]


async def loaded_state(endpoint: Endpoint, client: httpx.AsyncClient) -> State:
    """Whether one Ollama endpoint's model is loaded now (its server's ``/api/ps``)."""
    if endpoint.api != "ollama":
        return "unknown"
    models = await _ps(client, endpoint.base_url)
    if isinstance(models, str):
        return "unreachable"
    return "not_loaded" if _entry(endpoint, models) is None else "loaded"


def _entry(endpoint: Endpoint, models: list[dict[str, Any]]) -> dict[str, Any] | None:
    wanted = _tagged(endpoint.model)
    return next((m for m in models if wanted in (_tagged(str(m.get("model", ""))),
                                                  _tagged(str(m.get("name", ""))))), None)


def _tagged(name: str) -> str:
    """Ollama's full model name: lower case, with ``:latest`` when no tag is given."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


async def _ps(client: httpx.AsyncClient, base_url: str) -> list[dict[str, Any]] | str:
    try:
        response = await client.get(f"{base_url}/api/ps")
        response.raise_for_status()
        models = response.json().get("models") or []
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return f"{base_url}: {type(exc).__name__}"
    return [m for m in models if isinstance(m, dict)]


def ollama_endpoint(portfolio: Portfolio, name: str) -> Endpoint:
    try:
        endpoint = portfolio.endpoint(name)
    except KeyError:
        known = ", ".join(ep.name for ep in portfolio.all_endpoints())
        raise InvalidRequestError(("path", "endpoint"), f"unknown endpoint {name!r} "
                                  f"(endpoints: {known})", name) from None
    if endpoint.api != "ollama":
        raise InvalidRequestError(("path", "endpoint"), f"{name!r} is an OpenAI-compatible "
                                  "server; it loads its model at start and cannot be told to "
                                  "load or unload", name)
    return endpoint


async def load(endpoint: Endpoint, client: httpx.AsyncClient) -> None:
    """Preload with an empty generate, kept for the endpoint's keep-alive (default 5m), at the
    endpoint's context length: requests use that ``num_ctx`` too, so Ollama keeps the model
    as loaded instead of reloading it at the first request."""
    await _generate(endpoint, client, keep_alive_value(endpoint.keep_alive or "5m"),
                    {"num_ctx": endpoint.context_length})


async def unload(endpoint: Endpoint, client: httpx.AsyncClient) -> None:
    await _generate(endpoint, client, 0)


async def _generate(endpoint: Endpoint, client: httpx.AsyncClient, keep_alive: str | int,
                    options: dict[str, Any] | None = None) -> None:
    body: dict[str, Any] = {"model": endpoint.model, "keep_alive": keep_alive}
    if options:
        body["options"] = options
    try:
        response = await client.post(f"{endpoint.base_url}/api/generate", json=body,
                                     headers=endpoint.auth_headers())
    except MissingKeyError as exc:
        raise ResidencyError(f"{endpoint.name}: {exc}") from None
    except httpx.HTTPError as exc:
        raise ResidencyError(f"{endpoint.name}: {endpoint.base_url} unreachable "
                             f"({type(exc).__name__})") from None
    if response.status_code >= 400:
        raise ResidencyError(f"{endpoint.name}: Ollama answered HTTP {response.status_code}: "
                             f"{response.text[:200]}")


class ResidencyView:
    """The endpoints whose model is loaded, as last read; refreshed in the background."""

    def __init__(self) -> None:
        self.loaded: frozenset[str] = frozenset()

    async def refresh(self, portfolio: Portfolio, client: httpx.AsyncClient) -> None:
        rows = await status(portfolio, client)
        self.loaded = frozenset(r["endpoint"] for r in rows if r["state"] == "loaded")

    async def follow(self, portfolio_of: Callable[[], Portfolio],
                     client: httpx.AsyncClient) -> None:
        """Refresh every ``policy.residency_refresh_s`` while ``prefer_resident`` is on;
        ``portfolio_of`` gives the portfolio loaded now."""
        while True:
            policy = portfolio_of().policy
            if policy.prefer_resident:
                try:
                    await self.refresh(portfolio_of(), client)
                except Exception as exc:  # keep the last view; routing still works without
                    log.warning("could not read model residency: %s", exc)
            await asyncio.sleep(policy.residency_refresh_s)
