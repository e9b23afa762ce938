"""Snapshots of a verified model folder and portfolio, so that every worker serves the same
bytes and a restarted worker starts whatever is on disk now.

With ``serve --workers N``, what a worker loads is first copied into the service's private
state folder (``snapshots/<id>/model/`` and ``snapshots/<id>/portfolio.yaml``) and loaded from
there; the shared state file names that snapshot. So

- a worker that follows a reload loads the snapshot the reloading worker verified, not the
  folder on disk, which may have changed since (all workers converge on one generation);
- a worker that uvicorn starts after a crash loads the snapshot of the current generation,
  even when the model folder or the portfolio on disk no longer loads (a bad edit that SIGHUP
  refused, a reloaded folder deleted).

A runtime loaded from a snapshot is labelled with its source paths (what ``/readyz`` shows and
what a SIGHUP reloads); errors name the source paths too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from classifier_service.errors import ConfigError, ModelArtifactError, PortfolioError
from classifier_service.runtime import Runtime

KEEP = 3
"""Snapshots kept: the current one and two before it (a follower may still be loading one)."""


@dataclass(frozen=True)
class Snapshot:
    model_dir: Path
    portfolio: Path


def take(portfolio: Path, model_dir: Path, root: Path) -> Snapshot:
    """Copy ``model_dir`` and ``portfolio`` under ``root``; a source that cannot be copied is
    reported by loading it (the loader's errors name what is wrong)."""
    target = root / uuid.uuid4().hex
    partial = target.with_name(target.name + ".partial")
    try:
        partial.mkdir(parents=True)
        shutil.copytree(model_dir, partial / "model")
        shutil.copyfile(portfolio, partial / "portfolio.yaml")
        partial.rename(target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        Runtime.load(portfolio, model_dir)  # raises the loader's own error
        raise ModelArtifactError(model_dir, "cannot be copied into the service's state folder"
                                 ) from None
    return Snapshot(target / "model", target / "portfolio.yaml")


def load(snapshot: Snapshot, portfolio: Path, model_dir: Path) -> Runtime:
    """The runtime in ``snapshot``, labelled with its sources ``portfolio`` and ``model_dir``."""
    try:
        runtime = Runtime.load(snapshot.portfolio, snapshot.model_dir)
    except PortfolioError as exc:
        raise PortfolioError(portfolio, exc.problem) from None
    except ModelArtifactError as exc:
        inside = _relative(exc.path, snapshot.model_dir)
        raise ModelArtifactError(model_dir / inside if inside else model_dir,
                                 exc.problem.replace(str(snapshot.portfolio), str(portfolio))
                                 ) from None
    runtime.portfolio_path = portfolio
    if runtime.outcome is not None:  # an outcome model: its folder holds the classifier's
        runtime.outcome.path = model_dir
        inside = _relative(runtime.artifact.path, snapshot.model_dir)
        runtime.artifact = replace(runtime.artifact,
                                   path=model_dir / inside if inside else model_dir)
    else:
        runtime.artifact = replace(runtime.artifact, path=model_dir)
    return runtime


def take_and_load(portfolio: Path, model_dir: Path, root: Path) -> tuple[Runtime, Snapshot]:
    snapshot = take(portfolio, model_dir, root)
    try:
        return load(snapshot, portfolio, model_dir), snapshot
    except ConfigError:
        discard(snapshot)
        raise


def discard(snapshot: Snapshot) -> None:
    shutil.rmtree(snapshot.model_dir.parent, ignore_errors=True)


def prune(root: Path, keep: Snapshot) -> None:
    """Remove all but the newest :data:`KEEP` snapshots (never ``keep``)."""
    with contextlib.suppress(OSError):
        folders = sorted((p for p in root.iterdir() if p.is_dir()),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in folders[KEEP:]:
            if old != keep.model_dir.parent:
                shutil.rmtree(old, ignore_errors=True)


def _relative(path: Path, folder: Path) -> Path | None:
    try:
        relative = Path(os.path.relpath(path, folder))
    except ValueError:
        return None
    return None if relative == Path() or str(relative).startswith("..") else relative
