"""The FastAPI application: routers, error mapping, and loading in ``lifespan``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from classifier_service import __version__
from classifier_service.api import (
    admin,
    feedback,
    ollama_gateway,
    ollama_info,
    openai_gateway,
    plan,
    quality,
    responses,
    routing,
    system,
)
from classifier_service.api.auth import keyring_of, require_key
from classifier_service.api.body_limit import BodyLimit
from classifier_service.api.body_policy import BodyPolicy
from classifier_service.api.crash_guard import CrashGuard
from classifier_service.api.deps import error_style_of
from classifier_service.api.docs import install_docs
from classifier_service.api.openapi import install as install_openapi
from classifier_service.errors import AuthError, RequestError
from classifier_service.feedback import FeedbackLog, OutcomeLog
from classifier_service.fleet.gpu_monitor import GpuMonitor
from classifier_service.fleet.residency import ResidencyView
from classifier_service.fleet.scheduler import run_scheduler
from classifier_service.gateway.backends import Backends
from classifier_service.gateway.check_records import EscalationRecorder
from classifier_service.gateway.engine import Gateway
from classifier_service.gateway.hooks import TaskSet
from classifier_service.gateway.judge import JudgeSampler
from classifier_service.metrics import Metrics
from classifier_service.portfolio.model import Portfolio
from classifier_service.reloading import Reloader, read_state
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings, get_settings, parse_keys

log = logging.getLogger("tier_router")

ANSWER_HEADERS = ["x-tier-router-endpoint", "x-tier-router-tier", "x-tier-router-reason",
                  "x-tier-router-escalations", "x-tier-router-route"]
"""Answer headers a browser may read cross-origin."""

DESCRIPTION = (
    "tier-router classifies each LLM request by complexity and returns the tier, the "
    "classifier's confidence and the target endpoints of your model portfolio."
)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it loads ``settings``' portfolio and model at start-up unless given one."""
    settings = settings or get_settings()

    def current_portfolio() -> Portfolio:
        """The loaded portfolio, read again at each use (a reload swaps it)."""
        loaded: Runtime = app.state.runtime
        return loaded.portfolio

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        generation = 0
        if getattr(app.state, "runtime", None) is None:
            # A worker started after a reload takes the reloaded paths; one that raced a
            # reload sees a newer generation in its watcher and follows.
            # A worker restarted after a crash loads the current generation's snapshot, which
            # does not depend on what the folders on disk hold now.
            shared = read_state(settings.state_file)
            app.state.runtime = (shared.load() if shared else
                                 Runtime.load(settings.portfolio_path, settings.model_path))
            generation = shared.generation if shared else 0
        reloader = Reloader(app.state, settings.state_file, generation)
        app.state.reloader = reloader
        loaded = app.state.runtime
        log.info(
            "tier-router ready: model %s, portfolio %s",
            loaded.model_version,
            loaded.portfolio_path,
        )
        if not app.state.keyring.enabled:
            log.warning("no API keys configured (TIER_ROUTER_API_KEYS): every endpoint is "
                        "open to whoever reaches %s; `tier-router serve` listens on loopback "
                        "only unless --allow-unauthenticated", settings.host)
        if not app.state.keyring.admin_keys:
            log.warning("admin endpoints (/v1/admin/*: reload, load, unload, models) are off "
                        "over HTTP: set TIER_ROUTER_ADMIN_KEYS to turn them on; SIGHUP still "
                        "reloads")
        timeout = app.state.runtime.portfolio.policy.backend_timeout_s
        # control plane (residency, scheduler, preloads): httpx; data plane: Backends
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))
        app.state.control_client = client
        backends = Backends.open(timeout)
        app.state.gateway = Gateway(backends, app.state.metrics,
                                    log_prompts=settings.log_prompts)
        background = TaskSet()  # judge samples and check records, cancelled at shutdown
        app.state.background = background
        app.state.judge = JudgeSampler(backends, app.state.metrics, app.state.outcome_log,
                                       background, log_prompts=settings.log_prompts)
        app.state.gateway.hooks += [app.state.judge, EscalationRecorder(
            app.state.metrics, app.state.outcome_log, background)]
        hup = reloader.install_sighup()
        watcher = asyncio.create_task(reloader.watch()) if settings.state_file else None
        scheduler = (asyncio.create_task(run_scheduler(current_portfolio, client,
                                                   settings.gpu_source))
                     if settings.scheduler else None)
        gpu_task = asyncio.create_task(app.state.gpu_monitor.run(settings.gpu_poll_s))
        app.state.residency = ResidencyView()
        residency_task = asyncio.create_task(app.state.residency.follow(current_portfolio,
                                                                             client))
        try:
            yield
        finally:
            for task in (watcher, scheduler, residency_task, gpu_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if hup:
                reloader.uninstall_sighup()
            await background.close()
            await client.aclose()
            await backends.close()

    app = FastAPI(
        title="tier-router",
        version=__version__,
        description=DESCRIPTION,
        servers=[{"url": settings.server_url, "description": "this tier-router"}],
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # install_docs serves both without a CDN
    )
    install_docs(app)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.keyring = keyring_of(settings)
    app.state.metrics = Metrics()
    app.state.gpu_monitor = GpuMonitor(settings.gpu_source,
                                       lambda: app.state.runtime.portfolio.gpus)
    app.state.metrics.add_collector(app.state.gpu_monitor)
    app.state.feedback_log = FeedbackLog(settings.feedback_log,
                                         max_bytes=settings.feedback_log_max_bytes,
                                         max_record_bytes=settings.feedback_max_record_bytes)
    app.state.outcome_log = OutcomeLog(settings.outcomes_dir,
                                       max_file_bytes=settings.outcomes_max_file_bytes,
                                       max_record_bytes=settings.feedback_max_record_bytes)
    app.state.feedback_limiter = feedback.RateLimiter(settings.feedback_rate,
                                                      settings.feedback_burst)
    keyed = [Depends(require_key())]
    unauthorized = responses.API_KEY
    app.include_router(routing.router, dependencies=keyed, responses=unauthorized)
    app.include_router(quality.router, dependencies=keyed, responses=unauthorized)
    app.include_router(openai_gateway.router, dependencies=[Depends(require_key("openai"))],
                       responses=responses.openai(401, "A missing or unknown API key."))
    for ollama_router in (ollama_gateway.router, ollama_info.router):
        app.include_router(ollama_router, dependencies=[Depends(require_key("ollama"))],
                           responses=responses.ollama(401, "A missing or unknown API key."))
    app.include_router(feedback.router, dependencies=keyed, responses=unauthorized)
    app.include_router(system.router)
    app.include_router(plan.router, dependencies=keyed, responses=unauthorized)
    app.include_router(admin.router)
    # tiers, endpoints and limits of the loaded portfolio; the bearer scheme only with keys
    install_openapi(app, keyed=app.state.keyring.enabled)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=sorted(parse_keys(settings.cors_origins)),
                           allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type",
                                          *[h["name"] for h in responses.ROUTE_HEADERS]],
                           expose_headers=ANSWER_HEADERS)
    app.add_middleware(BodyPolicy)  # inside BodyLimit: sees the whole, bounded body
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       timeout_s=settings.body_timeout_s)
    app.add_middleware(CrashGuard)  # added last: the outermost of ours

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        # the gateways' routers set their API's error style; the key check carries its own
        style = exc.style if isinstance(exc, AuthError) else error_style_of(request)
        return responses.error_answer(exc, style)


    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory classifier_service.app:app_from_env``.

    ``serve --workers N`` builds each worker's app here. A SIGHUP that reaches a worker before
    its lifespan installs the reload handler would kill it (the default action), so it is
    ignored until then. That worker then loads the current generation (the state file's
    snapshot); what the signal asked for reaches it when another worker's SIGHUP reload
    publishes. Only a SIGHUP that finds every worker starting is lost: send it again.
    """
    with contextlib.suppress(ValueError, AttributeError):  # not the main thread / no SIGHUP
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return create_app(Settings())
