"""The ``tier-router`` command: a thin parser; each command group lives in its own module
(:mod:`.serve`, :mod:`.offline`, :mod:`.fleet`, :mod:`.training`, :mod:`.label`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from classifier_service import __version__
from classifier_service.cli import demo, fleet, label, offline, serve, training
from classifier_service.errors import TierRouterError
from classifier_service.settings import Settings


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

    serve.add_serve(sub)
    offline.add_route(sub)
    fleet.add_plan(sub)
    fleet.add_schedule(sub)
    fleet.add_models(sub)
    offline.add_openapi(sub)
    offline.add_check(sub)
    training.add_train(sub)
    training.add_evaluate(sub)
    training.add_calibrate(sub)
    label.add_label(sub)
    demo.add_demo_parser(sub)
    return parser
