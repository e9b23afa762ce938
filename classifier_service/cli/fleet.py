"""``plan``, ``schedule`` and ``models``: the model fleet on the GPU servers."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from classifier_service.cli.common import Commands, add_portfolio_arg, portfolio_of
from classifier_service.portfolio.model import Portfolio
from classifier_service.settings import Settings


def add_plan(sub: Commands) -> None:
    plan = sub.add_parser("plan", help="plan VRAM for the portfolio's models",
                          description="Weights and KV cache per model, per GPU: what is "
                          "resident, what is left, a verdict, and the most sessions that fit. "
                          "Exits 2 when a GPU's verdict is does_not_fit.")
    add_portfolio_arg(plan)
    plan.add_argument("--gpu-memory", type=_gigabytes, metavar="SIZE",
                      help="GPU memory, e.g. 24GB or 80 (overrides the portfolio's)")
    plan.add_argument("--sessions", type=int, default=1, help="sessions per model (default 1)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(handler=_plan)


def add_schedule(sub: Commands) -> None:
    schedule = sub.add_parser("schedule", help="print what the schedules would load and "
                              "unload when (dry run)",
                              description="List the schedule windows that open in the next "
                              "days and what each loads and unloads; changes nothing.")
    add_portfolio_arg(schedule)
    schedule.add_argument("--days", type=int, default=7, help="how far ahead (default 7)")
    schedule.add_argument("--from", dest="start", metavar="ISO-TIME",
                          help="start, e.g. 2026-12-01T00:00+01:00 (default: now)")
    schedule.set_defaults(handler=_schedule)


def add_models(sub: Commands) -> None:
    models = sub.add_parser("models", help="show, load or unload models (Ollama endpoints)",
                            description="Residency of the portfolio's models from each Ollama "
                            "server (/api/ps); load preloads a model, unload drops it.")
    models.add_argument("action", choices=["status", "load", "unload"])
    models.add_argument("endpoint", nargs="?", help="endpoint name (for load and unload)")
    add_portfolio_arg(models)
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=_models)


def _gigabytes(text: str) -> float:
    """``24GB``, ``24 GB``, ``24`` (GB) or ``22GiB`` -> GB (10^9 bytes)."""
    value = text.strip().lower().replace(" ", "")
    factor = 1.0
    if value.endswith("gib"):
        value, factor = value[:-3], 1.073741824
    elif value.endswith("gb"):
        value = value[:-2]
    try:
        number = float(value) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 24GB)") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (must be a positive number)")
    return number


def _plan(args: argparse.Namespace) -> int:
    from classifier_service.fleet.vram import does_not_fit, plan, render

    if args.sessions < 1:
        print("tier-router: error: --sessions must be at least 1", file=sys.stderr)
        return 2
    portfolio = portfolio_of(args)
    result = plan(portfolio, sessions=args.sessions, memory_gb=args.gpu_memory)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 2 if does_not_fit(result) else 0


def warn_if_does_not_fit(portfolio: Portfolio) -> None:
    """One line on standard error per GPU the plan says does not fit (``check``, ``serve``)."""
    from classifier_service.fleet.vram import does_not_fit, plan

    for line in does_not_fit(plan(portfolio)):
        print(f"tier-router: warning: {line} (see `tier-router plan`)", file=sys.stderr)


def _models(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    from classifier_service.errors import ResidencyError
    from classifier_service.fleet import residency, vram_guard

    portfolio = portfolio_of(args)

    async def run() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            if args.action == "status":
                return await residency.status(portfolio, client)
            if not args.endpoint:
                raise ResidencyError(f"name the endpoint to {args.action}")
            target = residency.ollama_endpoint(portfolio, args.endpoint)
            if args.action == "load":
                verdict = await vram_guard.guarded_load(portfolio, target, client,
                                                        Settings().gpu_source)
                print(verdict.detail)
            else:
                await residency.unload(target, client)
            return None

    rows = asyncio.run(run())
    if rows is None:
        print(f"{args.action}ed {args.endpoint}")
    elif args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            extra = f" {row['vram_gb']} GB VRAM" if row["vram_gb"] is not None else ""
            print(f"{row['endpoint']:<16}{row['state']:<13}{row['loading']:<12}"
                  f"{row['model']}{extra}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from classifier_service.portfolio.schedule import active, describe, events

    portfolio = portfolio_of(args)
    try:
        start = datetime.fromisoformat(args.start) if args.start else datetime.now(UTC)
    except ValueError:
        print(f"tier-router: error: --from {args.start!r} is not an ISO time", file=sys.stderr)
        return 2
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if not portfolio.schedules:
        print("the portfolio has no schedules")
        return 0
    open_now = active(portfolio.schedules, start)
    print(f"open at {start.isoformat(timespec='minutes')}: "
          f"{', '.join(s.name for s in open_now) or 'none'}")
    for event in events(portfolio.schedules, start, start + timedelta(days=args.days)):
        print(describe(event))
    return 0
