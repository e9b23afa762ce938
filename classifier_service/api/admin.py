"""``/v1/admin/*``: operations on the running service.

They need an admin key (``TIER_ROUTER_ADMIN_KEYS``); with none configured they are off over
HTTP (see :mod:`classifier_service.api.auth`). Which paths a reload may load:
:mod:`classifier_service.api.reload_paths`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from classifier_service.api import reload_paths
from classifier_service.api.auth import require_admin
from classifier_service.api.deps import RuntimeDep, SettingsDep, get_reloader, state
from classifier_service.api.responses import (
    BAD_BODY,
    NOT_LOADED,
    Responses,
    detail,
    invalid,
    merge,
    too_large,
)
from classifier_service.errors import (
    ConfigError,
    ResidencyError,
)
from classifier_service.fleet import residency, vram_guard
from classifier_service.reloading import Reloader

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


# A file name cannot hold a NUL byte; the OS refuses it before any file is looked at.
PathString = Annotated[str | None, Field(pattern=r"^[^\x00]*$")]


class ReloadRequest(BaseModel):
    model_dir: PathString = Field(default=None, description="Model folder; default: current.")
    portfolio: PathString = Field(default=None, description="Portfolio YAML; default: current.")


ADMIN_KEY: Responses = {401: detail("A missing or unknown admin key."),
                        403: detail("Not an admin key, or no admin key is configured "
                                            "(admin is off over HTTP).")}


class ReloadResponse(BaseModel):
    model_version: str
    model_dir: str
    portfolio: str
    tiers: list[str]
    generation: int


@router.post(
    "/reload",
    operation_id="reload",
    summary="Reload the model and the portfolio",
    description=(
        "Load a model folder and a portfolio (both default to the current paths), verify "
        "them, and swap them in without dropping requests. A broken or mismatched artifact or "
        "an invalid portfolio is refused with 422 and the previous model keeps serving. With "
        "several workers, every worker follows within about a second."
    ),
    responses=merge(BAD_BODY, ADMIN_KEY, too_large(),
                    invalid("Refused; the previous model keeps serving."),
                    {503: detail("Loaded, but the state file that shares the reload with the "
                                 "other workers could not be written (e.g. disk full); the "
                                 "previous model keeps serving.")}),
)
def reload(
    reloader: Annotated[Reloader, Depends(get_reloader)], settings: SettingsDep,
    body: ReloadRequest | None = None
) -> ReloadResponse:
    body = body or ReloadRequest()
    model_dir = reload_paths.model_dir(settings, body.model_dir) if body.model_dir else None
    portfolio = reload_paths.portfolio(settings, body.portfolio) if body.portfolio else None
    try:
        reloaded = reloader.reload(model_dir=model_dir, portfolio=portfolio)
    except ConfigError as exc:
        raise reload_paths.refusal(exc) from None
    runtime = reloaded.runtime
    return ReloadResponse(
        model_version=runtime.model_version,
        model_dir=str(runtime.model_dir),
        portfolio=str(runtime.portfolio_path),
        tiers=runtime.portfolio.tier_names,
        generation=reloaded.generation,
    )


def _client(request: Request) -> httpx.AsyncClient:
    return state(request).control_client


@router.get(
    "/models",
    operation_id="models_status",
    summary="Which models are loaded",
    description="Residency of every endpoint, from each Ollama server's /api/ps.",
    responses=merge(ADMIN_KEY, NOT_LOADED),
)
async def models_status(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    return {"models": await residency.status(runtime.portfolio, _client(request))}


@router.post(
    "/models/{endpoint}/{action}",
    operation_id="models_action",
    summary="Load or unload a model",
    description=(
        "`load` preloads an Ollama endpoint's model (an empty generate, kept for its "
        "keep_alive); `unload` drops it (keep_alive 0). Before a load, the VRAM guard "
        "compares the model's planned size with its GPU's memory in use: 409 when it would "
        "cross the alert threshold (`vram_check` in the answer says what was checked, or why "
        "the check was skipped). 422 for an unknown or OpenAI-compatible endpoint, 502 when "
        "Ollama fails."
    ),
    responses=merge(ADMIN_KEY, {409: detail("The load would cross the GPU's alert threshold.")},
                    invalid("Unknown or not an Ollama endpoint, or an action other than load "
                            "and unload."),
                    {502: detail("The Ollama server failed.")}, NOT_LOADED),
)
async def models_action(endpoint: str, action: Literal["load", "unload"], request: Request,
                        runtime: RuntimeDep) -> dict[str, Any]:
    target = residency.ollama_endpoint(runtime.portfolio, endpoint)
    answer: dict[str, Any] = {"endpoint": target.name, "model": target.model, "action": action,
                              "status": "ok"}
    try:
        if action == "load":
            verdict = await vram_guard.guarded_load(
                runtime.portfolio, target, _client(request),
                state(request).settings.gpu_source)
            answer["vram_check"] = {"outcome": verdict.outcome, "detail": verdict.detail}
        else:
            await residency.unload(target, _client(request))
    except ResidencyError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return answer
