"""FastAPI dependencies: typed access to the app's state, in one place.

Handlers never read ``request.app.state`` themselves: they take a ``...Dep`` parameter or call
one of the getters here. :class:`AppState` is what :func:`classifier_service.app.create_app`
puts there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Annotated, Protocol, cast

import httpx
from fastapi import Depends, HTTPException, Request

from classifier_service.errors import ErrorStyle
from classifier_service.feedback import FeedbackLog, OutcomeLog
from classifier_service.fleet.gpu_monitor import GpuMonitor
from classifier_service.fleet.residency import ResidencyView
from classifier_service.gateway.engine import Gateway
from classifier_service.metrics import Metrics
from classifier_service.reloading import Reloader
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings

if TYPE_CHECKING:
    from classifier_service.api.auth import KeyRing  # auth reads the key ring itself
    from classifier_service.api.feedback import RateLimiter


class AppState(Protocol):
    """``app.state`` of the service; set in ``create_app`` and its lifespan."""

    settings: Settings
    runtime: Runtime | None
    keyring: KeyRing
    metrics: Metrics
    gpu_monitor: GpuMonitor
    feedback_log: FeedbackLog
    outcome_log: OutcomeLog
    feedback_limiter: RateLimiter
    # set in the lifespan, once the runtime is loaded
    reloader: Reloader
    control_client: httpx.AsyncClient
    gateway: Gateway
    residency: ResidencyView


def state(request: Request) -> AppState:
    return cast(AppState, request.app.state)


def loaded_runtime(request: Request) -> Runtime | None:
    """The runtime, or None before the lifespan has loaded it."""
    return getattr(request.app.state, "runtime", None)


async def get_runtime(request: Request) -> Runtime:
    runtime = loaded_runtime(request)
    if runtime is None:
        raise HTTPException(status_code=503, detail="model and portfolio are not loaded yet")
    return runtime


def resident_now(request: Request) -> Collection[str] | None:
    """Endpoints whose model is loaded now, when ``prefer_resident`` follows residency."""
    view = getattr(request.app.state, "residency", None)
    return view.loaded if view is not None else None


async def get_metrics(request: Request) -> Metrics:
    return state(request).metrics


async def get_settings(request: Request) -> Settings:
    return state(request).settings


async def get_gateway(request: Request) -> Gateway:
    return state(request).gateway


async def get_reloader(request: Request) -> Reloader:
    return state(request).reloader


async def get_control_client(request: Request) -> httpx.AsyncClient:
    return state(request).control_client


async def get_feedback_log(request: Request) -> FeedbackLog:
    return state(request).feedback_log


def answers_in(style: ErrorStyle) -> Callable[[Request], Awaitable[None]]:
    """A router dependency: this router's errors take ``style``'s shape (the app's
    exception handler reads it)."""

    async def mark(request: Request) -> None:
        request.state.error_style = style

    return mark


def error_style_of(request: Request) -> ErrorStyle:
    style: ErrorStyle = getattr(request.state, "error_style", "detail")
    return style


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ReloaderDep = Annotated[Reloader, Depends(get_reloader)]
ControlClientDep = Annotated[httpx.AsyncClient, Depends(get_control_client)]
FeedbackLogDep = Annotated[FeedbackLog, Depends(get_feedback_log)]
