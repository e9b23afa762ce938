"""The scheduler's runner: applies the portfolio's schedule windows
(:mod:`classifier_service.portfolio.schedule`) to the GPU servers.

It runs inside the service only when asked (``tier-router serve --scheduler``), so that replicas
do not fight over the GPU; at start it also preloads the portfolio's ``concurrent`` Ollama
models, kept for their ``keep_alive``. Each preload passes the VRAM guard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx

from classifier_service.fleet import residency, vram_guard
from classifier_service.fleet.gpu_monitor import GpuSource
from classifier_service.portfolio.model import Portfolio
from classifier_service.portfolio.schedule import active, events

log = logging.getLogger("tier_router")

MAX_SLEEP_S = 300.0
SETTLE_S = 10.0  # how long a refused preload re-reads the GPU before giving up


async def run_scheduler(portfolio_of: Callable[[], Portfolio], client: httpx.AsyncClient,
                        gpu_source: GpuSource = "auto", *,
                        settle_s: float | None = None) -> None:
    """Preload the ``concurrent`` Ollama models, apply the open windows, then each opening as
    it comes; runs until cancelled.

    ``portfolio_of`` gives the portfolio loaded now, so a reloaded portfolio's schedules take
    effect at the next step. Each preload passes the VRAM guard
    (:mod:`classifier_service.fleet.vram_guard`, GPU read from ``gpu_source``); a refused one is
    logged as an error, after ``settle_s`` (default :data:`SETTLE_S`) seconds of re-reading
    for memory being freed.
    """
    settle = SETTLE_S if settle_s is None else settle_s

    async def apply(load: Sequence[str], unload: Sequence[str], why: str) -> None:
        portfolio = portfolio_of()
        for name, action in [*((n, "unload") for n in unload), *((n, "load") for n in load)]:
            try:
                endpoint = residency.ollama_endpoint(portfolio, name)
                if action == "load":
                    verdict = await vram_guard.guarded_load(portfolio, endpoint, client,
                                                            gpu_source, settle_s=settle)
                    log.info("schedule %s: loaded %s (%s)", why, name, verdict.detail)
                else:
                    await residency.unload(endpoint, client)
                    log.info("schedule %s: unloaded %s", why, name)
            except Exception as exc:
                log.error("schedule %s: could not %s %s: %s", why, action, name, exc)

    portfolio = portfolio_of()
    resident = [ep.name for ep in portfolio.all_endpoints()
                if ep.api == "ollama" and ep.loading == "concurrent"]
    await apply(resident, [], "start-up (concurrent models)")
    schedules = portfolio.schedules
    cursor = datetime.now(UTC)  # every opening before it has been handled
    for sched in active(schedules, cursor):
        await apply(sched.load, sched.unload, sched.name)
    while True:
        schedules = portfolio_of().schedules
        upcoming = events(schedules, cursor, cursor + timedelta(days=8))
        wait = MAX_SLEEP_S
        if upcoming:
            wait = min(wait, (upcoming[0].at - datetime.now(UTC)).total_seconds() + 0.01)
        await asyncio.sleep(max(0.0, wait))
        moment = datetime.now(UTC)
        for event in events(schedules, cursor, moment):
            await apply(event.load, event.unload, event.schedule)
        cursor = moment
