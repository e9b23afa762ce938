"""Hot reload: swap in a new model and re-read the portfolio without dropping requests.

The app's current :class:`Runtime` lives in ``app.state.runtime``. A reload builds a complete
new runtime off the event loop (load, verify, compile), and only if that succeeds replaces the
reference in one assignment: requests in flight finish on the runtime they started with, new
ones get the new one, and a broken or mismatched artifact leaves the old one serving.

Triggers: ``POST /v1/admin/reload`` and SIGHUP. With several worker processes, the worker that
reloads writes the new paths and a generation number to a shared state file; every other
worker checks that file once a second and follows, and a worker (re)started later reads it at
start-up. SIGHUP sent to the ``tier-router serve`` parent is passed on to every worker, which
reloads the service's current paths in place (no process restarts, no dropped connections) and
publishes the result, so that the workers end on one generation. "Current" is the last published
generation's, which a worker whose watcher lags has not loaded yet; and publishing is
compare-and-set (:meth:`Reloader.reload`), so that a slow reload cannot publish paths that a
reload finished meanwhile has replaced.

With a state file, what is loaded is first copied into a snapshot next to it
(:mod:`classifier_service.snapshots`) and the state file names the snapshot: followers and
restarted workers load those verified bytes, whatever the folder on disk holds by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from classifier_service import snapshots
from classifier_service.errors import ReloadNotPublished
from classifier_service.routing.artifact import atomic_write
from classifier_service.runtime import Runtime
from classifier_service.snapshots import Snapshot

log = logging.getLogger("tier_router")
WATCH_INTERVAL_S = 1.0
PUBLISH_TRIES = 3
"""Loads one reload may make while other workers keep publishing reloads that change what it
loads; after that it follows the newest generation."""


@dataclass(frozen=True)
class Reloaded:
    """What a reload swapped in, and its generation (the one it published, or followed; a
    count of reloads without a state file)."""

    runtime: Runtime
    generation: int


@dataclass(frozen=True)
class SharedState:
    generation: int
    model_dir: Path
    portfolio: Path
    snapshot: Snapshot | None = None

    def load(self) -> Runtime:
        """The snapshot when there is one and it loads, else the source paths."""
        if self.snapshot is not None:
            try:
                return snapshots.load(self.snapshot, self.portfolio, self.model_dir)
            except Exception as exc:
                log.error("snapshot of generation %d does not load (%s); trying %s and %s",
                          self.generation, exc, self.model_dir, self.portfolio)
        return Runtime.load(self.portfolio, self.model_dir)


def read_state(path: Path | None) -> SharedState | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        snapshot = (Snapshot(Path(data["snapshot_model_dir"]), Path(data["snapshot_portfolio"]))
                    if data.get("snapshot_model_dir") else None)
        return SharedState(int(data["generation"]), Path(data["model_dir"]),
                           Path(data["portfolio"]), snapshot)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable reload state %s: %s", path, exc)
        return None


def write_state(path: Path, state: SharedState) -> None:
    text = json.dumps({"generation": state.generation, "model_dir": str(state.model_dir),
                       "portfolio": str(state.portfolio),
                       "snapshot_model_dir": str(state.snapshot.model_dir)
                       if state.snapshot else None,
                       "snapshot_portfolio": str(state.snapshot.portfolio)
                       if state.snapshot else None})
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def publish_initial(state_file: Path, portfolio: Path, model_dir: Path) -> None:
    """Generation 0 for the workers ``serve`` is about to start: a snapshot of the start-up
    paths, so that a worker restarted later loads them whatever is on disk by then."""
    snapshot = snapshots.take(portfolio, model_dir, state_file.parent / "snapshots")
    write_state(state_file, SharedState(0, model_dir, portfolio, snapshot))


class RuntimeHolder(Protocol):
    """Where the current runtime lives (the app's state)."""

    runtime: Runtime


class Reloader:
    """Replaces ``state.runtime``; one reload at a time."""

    def __init__(self, state: RuntimeHolder, state_file: Path | None = None,
                 generation: int = 0) -> None:
        """``generation``: the shared generation that ``state.runtime`` was loaded from."""
        self._state = state
        self._state_file = state_file
        self._lock = threading.Lock()
        self.generation = generation
        self._snapshots = state_file.parent / "snapshots" if state_file is not None else None

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self._state.runtime
        return runtime

    def reload(self, model_dir: Path | None = None, portfolio: Path | None = None) -> Reloaded:
        """Load and swap in; on any error raise it and keep the current runtime.

        A path left ``None`` is the one the service serves now: with several workers, the last
        published generation's, whether or not this worker's watcher has followed it yet (a
        SIGHUP reaches every worker at once; one that re-read its own old paths would publish
        them, and every worker would follow it back to the model a reload had replaced).

        Publishing is compare-and-set: when another worker published while this one was
        loading, and that changes what this reload loads (a path it left to the service), what
        it loaded is thrown away and the reload runs again on top of that generation; after
        :data:`PUBLISH_TRIES` such turns it follows the newest generation instead. So a reload
        never publishes paths older than the last ones published. Two reloads that name their
        paths and overlap are both as asked: the one that finishes last is the service's.
        """
        with self._lock:
            if self._state_file is None:
                new = self._load(self._sources(None, model_dir, portfolio))[0]
                self._count("ok")
                self.generation += 1
            else:
                new = self._load_and_publish(model_dir, portfolio)
            self._state.runtime = new
            generation = self.generation
        log.info("reloaded: model %s from %s, portfolio %s (generation %d)",
                 new.model_version, new.model_dir, new.portfolio_path, generation)
        return Reloaded(new, generation)

    def _load(self, sources: tuple[Path, Path]) -> tuple[Runtime, Snapshot | None]:
        try:
            if self._snapshots is not None:
                return snapshots.take_and_load(*sources, self._snapshots)
            return Runtime.load(*sources), None
        except Exception:
            self._count("refused")
            raise

    def _load_and_publish(self, model_dir: Path | None, portfolio: Path | None) -> Runtime:
        """With a state file: load, then publish unless a newer generation changed the
        sources meanwhile (then again on top of it). Holds ``self._lock``."""
        for _ in range(PUBLISH_TRIES):
            base = read_state(self._state_file)
            sources = self._sources(base, model_dir, portfolio)
            new, snapshot = self._load(sources)

            def still_applies(shared: SharedState | None, base: SharedState | None = base,
                              sources: tuple[Path, Path] = sources) -> bool:
                """Nobody published since ``base``, or what they did leaves the sources."""
                return (shared is None
                        or (base is not None and shared.generation == base.generation)
                        or self._sources(shared, model_dir, portfolio) == sources)

            try:
                published = self._publish(new, snapshot, still_applies)
            except OSError as exc:
                if snapshot is not None:
                    snapshots.discard(snapshot)
                self._count("refused")
                raise ReloadNotPublished(
                    f"the reload loaded, but the state file {self._state_file} that shares it "
                    f"with the other workers could not be written ({exc}); the previous model "
                    "keeps serving") from None
            if published:
                self._count("ok")
                return new
            if snapshot is not None:
                snapshots.discard(snapshot)
            log.info("another worker published a reload while this one loaded %s and %s; "
                     "reloading on top of it", *sources)
        log.info("other workers kept publishing reloads: following the newest instead")
        self._catch_up(read_state(self._state_file))
        return self.runtime

    def _sources(self, shared: SharedState | None, model_dir: Path | None,
                 portfolio: Path | None) -> tuple[Path, Path]:
        """(portfolio, model folder) to load: those given, else the service's current ones
        (the shared state's where there is one, else this worker's own)."""
        if shared is not None:
            current = (shared.portfolio, shared.model_dir)
        else:
            current = (self.runtime.portfolio_path, self.runtime.model_dir)
        return Path(portfolio or current[0]), Path(model_dir or current[1])

    def follow(self) -> None:
        """Catch up with a reload another worker published."""
        shared = read_state(self._state_file)
        if shared is None or shared.generation <= self.generation:
            return
        with self._lock:
            self._catch_up(shared)

    def _catch_up(self, shared: SharedState | None) -> None:
        """Load ``shared`` if it is newer than what this worker serves. Holds ``self._lock``."""
        if shared is None or shared.generation <= self.generation:  # ours got there first
            return
        try:
            new = shared.load()
        except Exception as exc:
            log.error("could not follow reload generation %d: %s", shared.generation, exc)
            self.generation = shared.generation  # don't retry a broken generation forever
            return
        self._state.runtime = new
        self.generation = shared.generation
        log.info("followed reload generation %d: model %s", shared.generation,
                 new.model_version)

    def _count(self, outcome: str) -> None:
        metrics = getattr(self._state, "metrics", None)
        if metrics is not None:
            metrics.reloads.labels(outcome).inc()

    def _publish(self, runtime: Runtime, snapshot: Snapshot | None,
                 still_applies: Callable[[SharedState | None], bool]) -> bool:
        """Write the next generation, unless ``still_applies`` of the generation on file says
        the reload must be redone, or its snapshot was pruned meanwhile by other workers'
        publishes (False then). An flock makes the test and the write one step across
        processes, and keeps two workers' reloads in one order. ``self.generation`` moves
        only once the state is written."""
        assert self._state_file is not None
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self._state_file.with_name(self._state_file.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                shared = read_state(self._state_file)
                if not still_applies(shared) or (
                        snapshot is not None and not snapshot.model_dir.is_dir()):
                    return False
                generation = max(self.generation + 1, (shared.generation + 1) if shared else 1)
                write_state(self._state_file, SharedState(
                    generation, runtime.model_dir, runtime.portfolio_path, snapshot))
                self.generation = generation
                if snapshot is not None and self._snapshots is not None:
                    snapshots.prune(self._snapshots, snapshot)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return True

    async def watch(self) -> None:
        """Poll the shared state file (cheap: one small read a second) until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            await loop.run_in_executor(None, self.follow)

    def install_sighup(self) -> bool:
        """Reload the current paths on SIGHUP; False where signals cannot be handled here."""
        loop = asyncio.get_running_loop()

        def on_hup() -> None:
            loop.run_in_executor(None, self._reload_logged)

        try:
            loop.add_signal_handler(signal.SIGHUP, on_hup)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            return False
        return True

    def uninstall_sighup(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def _reload_logged(self) -> None:
        try:
            self.reload()  # published: the workers end on the last worker's snapshot
        except Exception as exc:
            log.error("SIGHUP reload refused, the previous model keeps serving: %s", exc)
