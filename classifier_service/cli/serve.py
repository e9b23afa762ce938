"""``tier-router serve``: the HTTP service on uvicorn, one process or several workers."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from classifier_service.cli.common import Commands, add_config_args, settings_of
from classifier_service.settings import DEFAULT_HOST, DEFAULT_PORT


def add_serve(sub: Commands) -> None:
    serve = sub.add_parser("serve", help="start the HTTP service",
                           description="Start the routing service (FastAPI on uvicorn).",
                           epilog=environment_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default=None,
                       help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=None,
                       help=f"port to listen on (default {DEFAULT_PORT})")
    add_config_args(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--scheduler", action="store_true",
                       help="run the portfolio's schedules here (one instance only)")
    serve.add_argument("--outcomes-dir", type=Path, metavar="DIR",
                       help="where POST /v1/feedback writes outcome records, one file per "
                       "process (default $XDG_STATE_HOME/tier-router/outcomes, else "
                       "~/.local/state/tier-router/outcomes; TIER_ROUTER_OUTCOMES_DIR)")
    serve.add_argument("--feedback-log", type=Path, metavar="FILE",
                       help="where POST /v1/feedback appends records of the request_id form "
                       "(default $XDG_STATE_HOME/tier-router/feedback.jsonl, else "
                       "~/.local/state/tier-router/feedback.jsonl; TIER_ROUTER_FEEDBACK_LOG)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--log-format", choices=["json", "text"], default=None,
                       help="one JSON object per line (default) or plain text")
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="listen on a non-loopback address without API keys")
    serve.set_defaults(handler=_serve)


UNDESCRIBED = {"host": "Address to listen on (--host).", "port": "Port to listen on (--port).",
               "portfolio": "Portfolio YAML (--portfolio).",
               "model_dir": "Model folder (--model).",
               "log_format": "json (default) or text (--log-format)."}


def environment_epilog() -> str:
    """``serve --help``'s list of the TIER_ROUTER_* variables, from the settings themselves
    (a flag given on the command line wins over its variable)."""
    from classifier_service.settings import Settings

    lines = ["environment variables (a flag wins over its variable):"]
    for name, field in Settings.model_fields.items():
        text = field.description or UNDESCRIBED.get(name, "")
        lines.append(f"  TIER_ROUTER_{name.upper():<27} {text}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from classifier_service.app import create_app
    from classifier_service.cli.fleet import warn_if_does_not_fit
    from classifier_service.cli.workers import run_workers
    from classifier_service.logs import log_config
    from classifier_service.metrics import MULTIPROC_ENV
    from classifier_service.reloading import publish_initial
    from classifier_service.runtime import Runtime

    settings = settings_of(args)
    settings.check_exposure()
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)  # fail fast, clearly
    warn_if_does_not_fit(runtime.portfolio)
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
        os.environ["TIER_ROUTER_OUTCOMES_DIR"] = str(settings.outcomes_dir.resolve())
        os.environ["TIER_ROUTER_STATE_FILE"] = str(Path(state_dir) / "reload.json")
        # generation 0: every worker, restarted ones too, loads this snapshot
        publish_initial(Path(state_dir) / "reload.json", settings.portfolio_path.resolve(),
                        settings.model_path.resolve())
        os.environ["TIER_ROUTER_LOG_FORMAT"] = settings.log_format
        os.environ["TIER_ROUTER_ALLOW_UNAUTHENTICATED"] = str(settings.allow_unauthenticated)
        # every worker writes its metrics here; /metrics on any worker sums them
        metrics_dir = Path(state_dir) / "metrics"
        metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        config = uvicorn.Config("classifier_service.app:app_from_env", factory=True,
                                host=settings.host, port=settings.port, workers=args.workers,
                                log_level=args.log_level, log_config=logging_config,
                    limit_concurrency=settings.limit_concurrency)
        try:
            # SIGHUP reloads in place; a replacement that cannot start leaves the rest serving
            run_workers(config, [config.bind_socket()])
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings, runtime), host=settings.host, port=settings.port,
                    log_level=args.log_level, log_config=logging_config,
                    limit_concurrency=settings.limit_concurrency)
    return 0
