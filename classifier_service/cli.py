"""The ``tier-router`` command."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from classifier_service import __version__
from classifier_service.errors import TierRouterError
from classifier_service.portfolio import Portfolio, bundled_portfolio_path, load_portfolio
from classifier_service.settings import DEFAULT_HOST, DEFAULT_PORT, Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except TierRouterError as exc:
        print(f"tier-router: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        for error in exc.errors():  # a bad TIER_ROUTER_* variable: name it, no traceback
            name = "TIER_ROUTER_" + "_".join(str(p) for p in error["loc"]).upper()
            print(f"tier-router: error: {name}: {error['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tier-router",
        description="Route LLM requests between local models by task complexity.",
    )
    parser.add_argument("--version", action="version", version=f"tier-router {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="start the HTTP service",
                           description="Start the routing service (FastAPI on uvicorn).")
    serve.add_argument("--host", default=None,
                       help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=None,
                       help=f"port to listen on (default {DEFAULT_PORT})")
    _add_config_args(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--scheduler", action="store_true",
                       help="run the portfolio's schedules here (one instance only)")
    serve.add_argument("--feedback-log", type=Path, metavar="FILE",
                       help="where POST /v1/feedback appends (default ./feedback.jsonl)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--log-format", choices=["json", "text"], default=None,
                       help="one JSON object per line (default) or plain text")
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="listen on a non-loopback address without API keys")
    serve.set_defaults(handler=_serve)

    route = sub.add_parser("route", help="route one prompt offline and print the decision",
                           description="Route one prompt without starting the service.")
    route.add_argument("prompt", help="the prompt text ('-' reads standard input)")
    route.add_argument("--agent")
    route.add_argument("--min-tier")
    route.add_argument("--max-tier")
    _add_config_args(route)
    route.set_defaults(handler=_route)

    plan = sub.add_parser("plan", help="plan VRAM for the portfolio's models",
                          description="Weights and KV cache per model, per GPU: what is "
                          "resident, what is left, a verdict, and the most sessions that fit.")
    _add_portfolio_arg(plan)
    plan.add_argument("--gpu-memory", type=_gigabytes, metavar="SIZE",
                      help="GPU memory, e.g. 24GB or 80 (overrides the portfolio's)")
    plan.add_argument("--sessions", type=int, default=1, help="sessions per model (default 1)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(handler=_plan)

    schedule = sub.add_parser("schedule", help="print what the schedules would load and "
                              "unload when (dry run)",
                              description="List the schedule windows that open in the next "
                              "days and what each loads and unloads; changes nothing.")
    _add_portfolio_arg(schedule)
    schedule.add_argument("--days", type=int, default=7, help="how far ahead (default 7)")
    schedule.add_argument("--from", dest="start", metavar="ISO-TIME",
                          help="start, e.g. 2026-12-01T00:00+01:00 (default: now)")
    schedule.set_defaults(handler=_schedule)

    models = sub.add_parser("models", help="show, load or unload models (Ollama endpoints)",
                            description="Residency of the portfolio's models from each Ollama "
                            "server (/api/ps); load preloads a model, unload drops it.")
    models.add_argument("action", choices=["status", "load", "unload"])
    models.add_argument("endpoint", nargs="?", help="endpoint name (for load and unload)")
    _add_portfolio_arg(models)
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=_models)

    openapi = sub.add_parser("openapi", help="print or write the OpenAPI document",
                             description="The service's OpenAPI document, or with --dify the "
                             "subset that Dify imports as custom tools (route, check_quality).")
    openapi.add_argument("--dify", action="store_true",
                         help="only the operations Dify imports as tools, references inlined")
    openapi.add_argument("--server-url", metavar="URL",
                         help="the URL Dify will call, for the servers entry "
                         "(default: TIER_ROUTER_PUBLIC_URL, else http://127.0.0.1:8700)")
    openapi.add_argument("--out", type=Path, metavar="FILE", help="write here (default: print)")
    _add_config_args(openapi)  # the document states this portfolio's tiers and limits
    openapi.set_defaults(handler=_openapi)

    check = sub.add_parser("check", help="validate a portfolio and a model folder",
                           description="Load the portfolio and the model as `serve` would.")
    _add_config_args(check)
    check.set_defaults(handler=_check)

    train = sub.add_parser("train", help="train a model on labelled prompts",
                           description="Train the classifier on labelled prompts (JSONL or "
                           "CSV). Without --data, rebuilds the default model from the "
                           "bundled corpus.")
    train.add_argument("--data", action="append", type=Path, metavar="FILE",
                       help="labelled data, JSONL or CSV; repeatable (default: bundled corpus)")
    train.add_argument("--out", type=Path, default=Path("model"),
                       help="output model folder (default ./model)")
    train.add_argument("--tiers", help="tier order, cheapest first, e.g. simple,medium,complex")
    train.add_argument("--portfolio", type=Path, metavar="FILE",
                       help="take the tier order from this portfolio")
    _add_column_args(train)
    train.add_argument("--feedback", action="append", type=Path, default=[], metavar="LOG",
                       help="add the service's feedback log as training rows; repeatable")
    train.add_argument("--folds", type=int, default=5,
                       help="cross-validation folds for metrics and the threshold (default 5)")
    train.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                       help="weigh tiers equally while fitting (balanced), or as they come "
                       "(none, default)")
    train.add_argument("--kind-weight", type=_unit_float, default=0.0, metavar="W",
                       help="blend in the tiers implied by the task-kind head, 0-1 (default 0: "
                       "the tier head alone; needs data with task kinds)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser(
        "evaluate", help="measure a model on labelled prompts",
        description="Accuracy, macro-F1, per-tier precision/recall/F1 and the confusion matrix "
        "of a model on labelled data (or, with --cv K, of its recipe retrained on the data); "
        "writes report.json, confusion_matrix.png and traffic_share.png.")
    evaluate.add_argument("--model", type=Path, metavar="DIR",
                          help="model folder (default: the bundled default model)")
    evaluate.add_argument("--data", action="append", type=Path, required=True, metavar="FILE",
                          help="labelled data, JSONL or CSV; repeatable")
    evaluate.add_argument("--cv", type=int, metavar="K",
                          help="K-fold cross-validation of the model's recipe on the data")
    evaluate.add_argument("--report-dir", type=Path, default=Path("report"),
                          help="where the report goes (default ./report)")
    _add_column_args(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    calibrate = sub.add_parser(
        "calibrate", help="cap the share of traffic per tier with the confidence threshold",
        description="Pick the lowest confidence threshold at which, on a reference set of "
        "prompts, no capped tier gets more than its share; store it in the model's metadata.")
    calibrate.add_argument("--model", type=Path, metavar="DIR", required=True,
                           help="model folder to calibrate (its metadata.json is rewritten)")
    calibrate.add_argument("--data", action="append", type=Path, required=True, metavar="FILE",
                           help="reference prompts, JSONL or CSV (labels optional); repeatable")
    calibrate.add_argument("--max-share", action="append", required=True, metavar="TIER=SHARE",
                           help="e.g. complex=0.3; repeatable")
    calibrate.add_argument("--text-column",
                           help="column with the prompt (default: prompt, else text)")
    calibrate.set_defaults(handler=_calibrate)
    from classifier_service.demo import add_demo_parser
    add_demo_parser(sub)
    return parser


def _add_column_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column",
                        help="column with the prompt (default: prompt, else text)")
    parser.add_argument("--label-column", default="tier",
                        help="column with the tier (default tier)")
    parser.add_argument("--category-column", default="category",
                        help="column with the task kind (default category; optional)")
    parser.add_argument("--category-map", type=Path, metavar="FILE",
                        help="JSON/YAML kind -> tier map, for rows labelled by kind only")
    parser.add_argument("--on-bad-row", choices=["skip", "stop"], default="skip",
                        help="skip bad rows with a report, or stop at the first (default skip)")


def _columns(args: argparse.Namespace) -> Any:
    from tier_router_training.dataset import DEFAULT_TEXT_COLUMNS, Columns

    return Columns(
        text=(args.text_column,) if args.text_column else DEFAULT_TEXT_COLUMNS,
        label=getattr(args, "label_column", "tier"),
        category=getattr(args, "category_column", "category") or None,
    )


def _category_map(args: argparse.Namespace) -> dict[str, str] | None:
    from tier_router_training.dataset import load_category_map

    return load_category_map(args.category_map) if args.category_map else None


def _add_portfolio_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portfolio", type=Path, metavar="FILE",
                        help="portfolio YAML (default: the bundled example portfolio)")


def _portfolio(args: argparse.Namespace) -> Portfolio:
    """The ``--portfolio`` file, or the bundled one."""
    return load_portfolio(args.portfolio or bundled_portfolio_path())


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    _add_portfolio_arg(parser)
    parser.add_argument("--model", type=Path, metavar="DIR",
                        help="model folder (default: the bundled default model)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for key, attr in (("host", "host"), ("port", "port"), ("portfolio", "portfolio"),
                      ("model_dir", "model"), ("feedback_log", "feedback_log"),
                      ("scheduler", "scheduler"), ("log_format", "log_format"),
                      ("allow_unauthenticated", "allow_unauthenticated")):
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from classifier_service.app import create_app
    from classifier_service.logs import log_config
    from classifier_service.metrics import MULTIPROC_ENV
    from classifier_service.runtime import Runtime

    settings = _settings(args)
    settings.check_exposure()
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)  # fail fast, clearly
    logging_config = log_config(settings.log_format, args.log_level)
    if args.workers > 1:
        # Each worker process builds its own app from the environment; reloads are shared
        # through a state file in a private temporary folder.
        state_dir = tempfile.mkdtemp(prefix="tier-router-")
        os.environ["TIER_ROUTER_HOST"] = settings.host
        os.environ["TIER_ROUTER_PORT"] = str(settings.port)
        os.environ["TIER_ROUTER_PORTFOLIO"] = str(settings.portfolio_path.resolve())
        os.environ["TIER_ROUTER_MODEL_DIR"] = str(settings.model_path.resolve())
        os.environ["TIER_ROUTER_FEEDBACK_LOG"] = str(settings.feedback_log.resolve())
        os.environ["TIER_ROUTER_STATE_FILE"] = str(Path(state_dir) / "reload.json")
        os.environ["TIER_ROUTER_LOG_FORMAT"] = settings.log_format
        os.environ["TIER_ROUTER_ALLOW_UNAUTHENTICATED"] = str(settings.allow_unauthenticated)
        # every worker writes its metrics here; /metrics on any worker sums them
        metrics_dir = Path(state_dir) / "metrics"
        metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        from uvicorn.supervisors.multiprocess import Multiprocess

        class ReloadInPlace(Multiprocess):
            """SIGHUP reloads every worker in place instead of restarting it: a restart
            closes connections that a stopping worker accepted but had not read yet."""

            def handle_hup(self) -> None:
                for process in self.processes:
                    if process.pid is not None:
                        os.kill(process.pid, signal.SIGHUP)

        config = uvicorn.Config("classifier_service.app:app_from_env", factory=True,
                                host=settings.host, port=settings.port, workers=args.workers,
                                log_level=args.log_level, log_config=logging_config,
                    limit_concurrency=settings.limit_concurrency)
        try:
            ReloadInPlace(config, sockets=[config.bind_socket()]).run()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings, runtime), host=settings.host, port=settings.port,
                    log_level=args.log_level, log_config=logging_config,
                    limit_concurrency=settings.limit_concurrency)
    return 0


def _route(args: argparse.Namespace) -> int:
    from classifier_service.api.routing import route_one
    from classifier_service.runtime import Runtime
    from classifier_service.schemas import RouteRequest

    settings = _settings(args)
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        body = RouteRequest(prompt=prompt, agent=args.agent, min_tier=args.min_tier,
                            max_tier=args.max_tier)
    except ValueError as exc:
        print(f"tier-router: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(route_one(runtime, body).model_dump(mode="json"), indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    from classifier_service.runtime import Runtime

    settings = _settings(args)
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    print(f"portfolio {runtime.portfolio_path}: tiers {', '.join(runtime.portfolio.tier_names)}")
    print(f"model {runtime.artifact.path}: {runtime.model_version}, "
          f"confidence threshold {runtime.confidence_threshold:.2f}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from classifier_service.app import create_app
    from classifier_service.dify_openapi import dify_openapi
    from classifier_service.runtime import Runtime

    settings = _settings(args)
    if args.server_url:
        settings = settings.model_copy(update={"public_url": args.server_url})
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    spec: dict[str, Any] = create_app(settings, runtime).openapi()
    text = json.dumps(dify_openapi(spec) if args.dify else spec, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"tier-router: error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tier_router_training.dataset import LoadReport
    from tier_router_training.pipeline import Recipe
    from tier_router_training.train import summary_table, train

    tier_order: list[str] | None = None
    if args.tiers:
        tier_order = [t.strip() for t in args.tiers.split(",") if t.strip()]
    elif args.portfolio:
        tier_order = load_portfolio(args.portfolio).tier_names
    report = LoadReport()
    try:
        result = train(args.data, args.out, tier_order=tier_order, columns=_columns(args),
                       strict=args.on_bad_row == "stop", folds=args.folds,
                       recipe=Recipe(class_weight=args.class_weight,
                                     kind_weight=args.kind_weight),
                       category_map=_category_map(args),
                       feedback=args.feedback, progress=not args.quiet, report=report)
    finally:  # list what was skipped, also when training then fails
        for line in report.skipped[:20]:
            print(f"skipped {line}", file=sys.stderr)
        if len(report.skipped) > 20:
            print(f"... and {len(report.skipped) - 20} more skipped rows", file=sys.stderr)
    print(summary_table(result))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from classifier_service.artifact import bundled_model_dir
    from tier_router_training.evaluate import evaluate, summary

    report = evaluate(args.model or bundled_model_dir(), args.data, cv=args.cv,
                      report_dir=args.report_dir, columns=_columns(args),
                      category_map=_category_map(args), strict=args.on_bad_row == "stop")
    print(summary(report))
    print(f"wrote {args.report_dir}/report.json, confusion_matrix.png, traffic_share.png")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from classifier_service.artifact import load_artifact
    from tier_router_training.calibrate import calibrate, parse_max_share

    tiers = load_artifact(args.model).tier_labels
    caps = parse_max_share(args.max_share, tiers)
    result = calibrate(args.model, args.data, caps, columns=_columns(args))
    shares = ", ".join(f"{t} {result.before[t]:.1%} -> {s:.1%}" for t, s in result.shares.items())
    print(f"{result.rows} reference prompts; traffic {shares}")
    print(f"confidence threshold {result.threshold:.3f} written to {args.model}/metadata.json "
          "(applies unless the portfolio sets policy.confidence_threshold)")
    return 0


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside 0-1")
    return value


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
    from classifier_service.vram import plan, render

    if args.sessions < 1:
        print("tier-router: error: --sessions must be at least 1", file=sys.stderr)
        return 2
    portfolio = _portfolio(args)
    result = plan(portfolio, sessions=args.sessions, memory_gb=args.gpu_memory)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def _models(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    from classifier_service import residency, vram_guard

    portfolio = _portfolio(args)

    async def run() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            if args.action == "status":
                return await residency.status(portfolio, client)
            if not args.endpoint:
                raise residency.ResidencyError(f"name the endpoint to {args.action}")
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

    from classifier_service.schedule import active, describe, events

    portfolio = _portfolio(args)
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
