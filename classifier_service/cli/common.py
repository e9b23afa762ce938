"""What several commands share: the portfolio and model arguments, and the settings they
make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from classifier_service.portfolio.model import Portfolio, bundled_portfolio_path, load_portfolio
from classifier_service.settings import Settings

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_portfolio_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portfolio", type=Path, metavar="FILE",
                        help="portfolio YAML (default: the bundled example portfolio)")


def portfolio_of(args: argparse.Namespace) -> Portfolio:
    """The ``--portfolio`` file, or the bundled one."""
    return load_portfolio(args.portfolio or bundled_portfolio_path())


def add_config_args(parser: argparse.ArgumentParser) -> None:
    add_portfolio_arg(parser)
    parser.add_argument("--model", type=Path, metavar="DIR",
                        help="model folder (default: the bundled default model)")


def settings_of(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for key, attr in (("host", "host"), ("port", "port"), ("portfolio", "portfolio"),
                      ("model_dir", "model"), ("feedback_log", "feedback_log"),
                      ("outcomes_dir", "outcomes_dir"),
                      ("scheduler", "scheduler"), ("log_format", "log_format"),
                      ("allow_unauthenticated", "allow_unauthenticated")):
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = value
    return Settings(**overrides)  # type: ignore[arg-type]
