"""``/v1/admin/*``: operations on the running service, answered on loopback only."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from classifier_service.errors import ConfigError, InvalidRequestError, ModelArtifactError
from classifier_service.reloading import Reloader


def loopback_only(request: Request) -> None:
    """Admin endpoints answer only to clients on this machine until API keys exist."""
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if not local:
        raise HTTPException(status_code=403, detail="admin endpoints answer on loopback only")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(loopback_only)])


def get_reloader(request: Request) -> Reloader:
    reloader: Reloader = request.app.state.reloader
    return reloader


class ReloadRequest(BaseModel):
    model_dir: str | None = Field(default=None, description="Model folder; default: current.")
    portfolio: str | None = Field(default=None, description="Portfolio YAML; default: current.")


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
    responses={403: {"description": "Not from loopback."},
               422: {"description": "Refused; the previous model keeps serving."}},
)
def reload(
    reloader: Annotated[Reloader, Depends(get_reloader)], body: ReloadRequest | None = None
) -> ReloadResponse:
    body = body or ReloadRequest()
    try:
        runtime = reloader.reload(
            model_dir=_path(body.model_dir), portfolio=_path(body.portfolio)
        )
    except ConfigError as exc:
        field = "model_dir" if isinstance(exc, ModelArtifactError) else "portfolio"
        raise InvalidRequestError(
            ("body", field), f"{exc}; the previous model keeps serving", str(exc.path)
        ) from None
    return ReloadResponse(
        model_version=runtime.model_version,
        model_dir=str(runtime.artifact.path),
        portfolio=str(runtime.portfolio_path),
        tiers=runtime.portfolio.tier_names,
        generation=reloader.generation,
    )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
