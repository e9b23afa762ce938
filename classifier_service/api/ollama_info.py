"""Ollama's model information calls: ``/api/show``, ``/api/ps`` and ``/api/version``.

Clients call them before they chat (the ``ollama`` SDK's ``show()``, LangChain's ChatOllama
with ``validate_model_on_init``, Dify's and n8n's model checks), for ``auto``, a tier or an
endpoint:

- ``POST /api/show`` answers as Ollama does (``modelfile``, ``parameters``, ``template``,
  ``details``, ``model_info``, ``capabilities``) for what tier-router serves under that name:
  ``capabilities`` is ``["completion", "tools"]`` (tools pass through to every backend), and
  ``model_info["tier-router.context_length"]`` the largest context the name can reach (the
  router moves prompts past endpoints whose context cannot hold them): an endpoint's own, a
  tier's and those above it, every endpoint's for ``auto``.
- ``GET /api/ps`` lists the endpoints whose model is loaded now: for Ollama endpoints, read from
  their servers' ``/api/ps`` at the call (with the VRAM and expiry they report); an
  OpenAI-compatible server loads its one model at start and has no residency API, so it is
  listed with size 0 (unknown). Unreachable servers and models not loaded are left out.
- ``GET /api/version`` names :data:`OLLAMA_API_VERSION`, the Ollama release whose API the
  gateway follows (streamed tool calls came with 0.8.0), and tier-router's own version.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifier_service import __version__
from classifier_service.api.deps import RuntimeDep, answers_in, state
from classifier_service.api.responses import (
    NOT_LOADED,
    Responses,
    json_body,
    merge,
    ollama,
    problem,
)
from classifier_service.errors import RequestError
from classifier_service.fleet import residency
from classifier_service.gateway.engine import AUTO, check_model
from classifier_service.gateway.ollama_wire import now_iso
from classifier_service.portfolio.model import Endpoint, Portfolio

OLLAMA_API_VERSION = "0.8.0"
CAPABILITIES = ["completion", "tools"]

router = APIRouter(prefix="/api", tags=["ollama gateway"],
                   dependencies=[Depends(answers_in("ollama"))])


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = Field(default=None, description=(
        "`auto` (also null or empty), a tier or an endpoint name (see GET /api/tags)."))
    name: str | None = Field(default=None, description="Older clients' name for `model`.")


class Details(BaseModel):
    parent_model: str = Field(description="The backend model behind an endpoint; else empty.")
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: Details
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class RunningModel(BaseModel):
    name: str
    model: str
    size: int = Field(description="Bytes; 0 when unknown (OpenAI-compatible servers).")
    size_vram: int
    digest: str
    details: Details
    expires_at: str | None
    context_length: int


class ProcessResponse(BaseModel):
    models: list[RunningModel]


class VersionResponse(BaseModel):
    version: str = Field(description="The Ollama API version the gateway follows.")
    tier_router: str = Field(description="tier-router's own version.")


SHOW_ERRORS: Responses = merge(
    ollama(400, "The body is not JSON, or `model` is not a string."),
    ollama(404, "Unknown `model`."),
    NOT_LOADED,
)


def _reach(portfolio: Portfolio, name: str) -> list[Endpoint]:
    """The endpoints a request for ``name`` can reach."""
    if name in AUTO:
        return list(portfolio.all_endpoints())
    if portfolio.has_tier(name):
        floor = portfolio.tier_index(name)
        return [ep for ep in portfolio.all_endpoints()
                if portfolio.tier_index(portfolio.tier_of(ep)) >= floor]
    return [portfolio.endpoint(name)]


def _details(endpoint: Endpoint | None) -> Details:
    return Details(parent_model=endpoint.model if endpoint else "", format=(
        endpoint.api if endpoint else "tier-router"), family="tier-router",
        families=["tier-router"], parameter_size="", quantization_level="")


@router.post("/show", operation_id="ollama_show", summary="Model information (Ollama-compatible)",
             description="Ollama's /api/show for `auto`, a tier or an endpoint: details, "
             "context length and capabilities (`completion`, `tools`).",
             response_model=ShowResponse, responses=SHOW_ERRORS,
             openapi_extra=json_body(ShowRequest))
async def show(request: Request, runtime: RuntimeDep) -> ShowResponse:
    try:
        body = await request.json()
    except ValueError:
        raise RequestError("the body is not valid JSON") from None
    try:
        ShowRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestError(problem(exc)) from None
    portfolio = runtime.portfolio
    name = body.get("model") or body.get("name") or "auto"
    check_model(portfolio, name)
    reach = _reach(portfolio, name)
    context = max(ep.context_length for ep in reach)
    endpoint = None if name in AUTO or portfolio.has_tier(name) else reach[0]
    what = (f"endpoint {name} ({endpoint.api} model {endpoint.model})" if endpoint else
            f"routed by tier-router across {', '.join(sorted({ep.name for ep in reach}))}")
    return ShowResponse(
        modelfile=f"# {name}: {what}\nFROM {name}\nPARAMETER num_ctx {context}\n",
        parameters=f"num_ctx {context}", template="{{ .Prompt }}", details=_details(endpoint),
        model_info={"general.architecture": "tier-router", "general.basename": name,
                    "tier-router.context_length": context},
        capabilities=CAPABILITIES, modified_at=now_iso())


@router.get("/ps", operation_id="ollama_ps", summary="Loaded models (Ollama-compatible)",
            description="The endpoints whose model is loaded now (Ollama servers' /api/ps; "
            "OpenAI-compatible servers always, size unknown).",
            response_model=ProcessResponse, responses=NOT_LOADED)
async def ps(request: Request, runtime: RuntimeDep) -> ProcessResponse:
    portfolio = runtime.portfolio
    rows = await residency.status(portfolio, state(request).control_client)
    models = []
    for row in rows:
        if row["state"] not in ("loaded", "unknown"):
            continue
        endpoint = portfolio.endpoint(row["endpoint"])
        vram = int((row.get("vram_gb") or 0) * 1e9)
        models.append(RunningModel(
            name=endpoint.name, model=endpoint.name, size=vram, size_vram=vram, digest="",
            details=_details(endpoint), expires_at=row.get("expires_at"),
            context_length=endpoint.context_length))
    return ProcessResponse(models=models)


@router.get("/version", operation_id="ollama_version", summary="Version (Ollama-compatible)",
            description="The Ollama API version the gateway follows, and tier-router's.",
            response_model=VersionResponse)
async def version() -> VersionResponse:
    return VersionResponse(version=OLLAMA_API_VERSION, tier_router=__version__)
