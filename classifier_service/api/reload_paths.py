"""Which paths ``POST /v1/admin/reload`` may load, and what its refusals may say.

A model folder is code: ``model.joblib`` is a pickle, and unpickling runs whatever it says.
So a reload over HTTP takes only

- model folders: the bundled model, the ``--model`` given at start, and folders under
  ``TIER_ROUTER_MODELS_DIR`` (unset: none besides those two);
- portfolios: the bundled one, the ``--portfolio`` given at start, and files under
  ``TIER_ROUTER_PORTFOLIOS_DIR`` (unset: none besides those two);

after resolving symbolic links (a link under the folder to a file elsewhere is elsewhere), and
never a folder, or a file in it, that users other than its owner may write (group- or
world-writable), nor such a portfolio.

A refusal names the field, the file and the kind of problem, never the contents of a file it
could not parse (a YAML error's context, a validation error's keys): the log carries the
details, and ``tier-router check`` prints them.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from classifier_service.errors import ConfigError, InvalidRequestError, ModelArtifactError
from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.settings import Settings

log = logging.getLogger("tier_router")

KEEPS = "; the previous model keeps serving"


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return path


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    return path.is_relative_to(_resolved(folder))


def _writable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    except OSError:
        return False  # missing: the loader says so


def model_dir(settings: Settings, value: str) -> Path:
    """``value`` as a model folder reload may load, else a 422 on ``model_dir``."""
    path = _resolved(Path(value))
    allowed = {_resolved(bundled_model_dir()), _resolved(settings.model_path)}
    if path not in allowed and not _inside(path, settings.models_dir):
        raise InvalidRequestError(("body", "model_dir"), (
            f"{value[:200]!r} is not under TIER_ROUTER_MODELS_DIR "
            f"({settings.models_dir or 'unset'}) nor the bundled or start-up model" + KEEPS))
    writable = [p for p in (path, *_children(path)) if _writable_by_others(p)]
    if writable:
        raise InvalidRequestError(("body", "model_dir"), (
            f"{writable[0]} is writable by group or others; a model folder is code, so "
            "only its owner may write it (chmod go-w)" + KEEPS))
    return path


def portfolio(settings: Settings, value: str) -> Path:
    """``value`` as a portfolio reload may load, else a 422 on ``portfolio``."""
    path = _resolved(Path(value))
    allowed = {_resolved(bundled_portfolio_path()), _resolved(settings.portfolio_path)}
    if path not in allowed and not _inside(path, settings.portfolios_dir):
        raise InvalidRequestError(("body", "portfolio"), (
            f"{value[:200]!r} is not under TIER_ROUTER_PORTFOLIOS_DIR "
            f"({settings.portfolios_dir or 'unset'}) nor the bundled or start-up portfolio"
            + KEEPS))
    if _writable_by_others(path):
        raise InvalidRequestError(("body", "portfolio"), (
            f"{path} is writable by group or others; only its owner may write it "
            "(chmod go-w)" + KEEPS))
    return path


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []


_PLAIN = ("file not found", "not a regular file", "larger than", "model folder not found",
          "metadata file not found", "metadata is not a regular file", "metadata must be",
          "metadata lacks", "model file not found", "checksum mismatch", "the model was",
          "labels.tier", "thresholds.", "expected a mapping", "format_version",
          # the service's own sentences about a model that does not fit the portfolio
          "the model predicts tiers", "the outcome model's tiers", "the portfolio ",
          "the outcome model orders", "this outcome model holds no", "lists no checksummed",
          "missing (metadata.json lists it)", "trained with features version", "not a tier-",
          "the check has", "the array ")


def refusal(exc: ConfigError) -> InvalidRequestError:
    """``exc`` as a 422 that names the file and the kind of problem only."""
    field = "model_dir" if isinstance(exc, ModelArtifactError) else "portfolio"
    log.warning("reload refused: %s", exc)  # the whole message: the operator's log
    problem = exc.problem
    if not problem.startswith(_PLAIN):
        if "invalid YAML" in problem:
            problem = "not valid YAML"
        elif problem.startswith(("cannot read", "unreadable", "cannot use this path")):
            problem = "cannot be read"
        elif problem.startswith("cannot load model"):
            problem = "the model file cannot be loaded"
        else:
            problem = ("not a valid portfolio" if field == "portfolio"
                       else "not a valid model folder")
        problem += " (`tier-router check` or the service log says where)"
    return InvalidRequestError(("body", field), f"{exc.path}: {problem}{KEEPS}", None)
