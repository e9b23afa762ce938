"""The FastAPI application: routers, error mapping, and loading in ``lifespan``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from classifier_service import __version__
from classifier_service.api import routing, system
from classifier_service.errors import RequestError
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings, get_settings

log = logging.getLogger("tier_router")

DESCRIPTION = (
    "tier-router classifies each LLM request by complexity and returns the tier, the "
    "classifier's confidence and the target endpoints of your model portfolio."
)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it loads ``settings``' portfolio and model at start-up unless given one."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "runtime", None) is None:
            app.state.runtime = Runtime.load(settings.portfolio_path, settings.model_path)
        loaded = app.state.runtime
        log.info(
            "tier-router ready: model %s, portfolio %s",
            loaded.model_version,
            loaded.portfolio_path,
        )
        yield

    app = FastAPI(
        title="tier-router",
        version=__version__,
        description=DESCRIPTION,
        servers=[{"url": settings.server_url, "description": "this tier-router"}],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.include_router(routing.router)
    app.include_router(system.router)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail()})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error"})

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory classifier_service.app:app_from_env``."""
    return create_app(Settings())
