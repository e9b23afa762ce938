"""``route``, ``check`` and ``openapi``: the service's pieces without a server."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier_service.cli.common import Commands, add_config_args, settings_of


def add_route(sub: Commands) -> None:
    route = sub.add_parser("route", help="route one prompt offline and print the decision",
                           description="Route one prompt without starting the service.")
    route.add_argument("prompt", help="the prompt text ('-' reads standard input)")
    route.add_argument("--agent")
    route.add_argument("--min-tier")
    route.add_argument("--max-tier")
    add_config_args(route)
    route.set_defaults(handler=_route)


def add_openapi(sub: Commands) -> None:
    openapi = sub.add_parser("openapi", help="print or write the OpenAPI document",
                             description="The service's OpenAPI document, or with --dify the "
                             "subset that Dify imports as custom tools (route, check_quality).")
    openapi.add_argument("--dify", action="store_true",
                         help="only the operations Dify imports as tools, references inlined")
    openapi.add_argument("--server-url", metavar="URL",
                         help="the URL Dify will call, for the servers entry "
                         "(default: TIER_ROUTER_PUBLIC_URL, else http://127.0.0.1:8700)")
    openapi.add_argument("--out", type=Path, metavar="FILE", help="write here (default: print)")
    add_config_args(openapi)  # the document states this portfolio's tiers and limits
    openapi.set_defaults(handler=_openapi)


def add_check(sub: Commands) -> None:
    check = sub.add_parser("check", help="validate a portfolio and a model folder",
                           description="Load the portfolio and the model as `serve` would.")
    add_config_args(check)
    check.set_defaults(handler=_check)


FLAGS = {"prompt": "PROMPT", "agent": "--agent", "min_tier": "--min-tier",
         "max_tier": "--max-tier"}
"""Request fields as the ``route`` command names them (its flags)."""


def _route(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from classifier_service.api.route_answer import route_one
    from classifier_service.api.schemas import RouteRequest
    from classifier_service.errors import InvalidRequestError
    from classifier_service.runtime import Runtime

    settings = settings_of(args)
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        body = RouteRequest(prompt=prompt, agent=args.agent, min_tier=args.min_tier,
                            max_tier=args.max_tier)
        answer = route_one(runtime, body)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            print(f"tier-router: error: {cli_words(error['loc'], error['msg'])}",
                  file=sys.stderr)
        return 2
    except InvalidRequestError as exc:
        print(f"tier-router: error: {cli_words(exc.loc, exc.msg)}", file=sys.stderr)
        return 2
    print(json.dumps(answer.model_dump(mode="json"), indent=2))
    return 0


def cli_words(loc: Sequence[str | int], msg: str) -> str:
    """An API error (``body.min_tier: ...``) in the command's words (``--min-tier: ...``)."""
    field = next((str(p) for p in reversed(loc) if str(p) in FLAGS), None)
    msg = msg.removeprefix("Value error, ")
    for name, flag in FLAGS.items():
        if name != "prompt":
            msg = msg.replace(name, flag)
    return f"{FLAGS[field]}: {msg}" if field else msg


def _check(args: argparse.Namespace) -> int:
    from classifier_service.cli.fleet import warn_if_does_not_fit
    from classifier_service.runtime import Runtime

    settings = settings_of(args)
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    warn_if_does_not_fit(runtime.portfolio)
    print(f"portfolio {runtime.portfolio_path}: tiers {', '.join(runtime.portfolio.tier_names)}")
    print(f"model {runtime.model_dir}: {runtime.model_version}, "
          f"confidence threshold {runtime.confidence_threshold:.2f}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from classifier_service.api.dify_openapi import dify_openapi, server_problem
    from classifier_service.app import create_app
    from classifier_service.runtime import Runtime

    settings = settings_of(args)
    if args.server_url:
        settings = settings.model_copy(update={"public_url": args.server_url})
    runtime = Runtime.load(settings.portfolio_path, settings.model_path)
    spec: dict[str, Any] = create_app(settings, runtime).openapi()
    text = json.dumps(dify_openapi(spec) if args.dify else spec, indent=2) + "\n"
    if args.dify and (problem := server_problem(settings.server_url)):
        print(f"tier-router: warning: Dify will refuse the server {settings.server_url}: "
              f"{problem}; give --server-url http://HOSTNAME:PORT (dify_tools/README.md)",
              file=sys.stderr)
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
