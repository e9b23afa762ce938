"""A real ``tier-router serve`` process on loopback, for load generators in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port

KEY_VARIABLES = ("TIER_ROUTER_API_KEYS", "TIER_ROUTER_ADMIN_KEYS")


@contextmanager
def tier_router_server(workers: int = 1, start_timeout_s: float = 120,
                       portfolio: Path | None = None) -> Iterator[str]:
    """Start ``tier-router serve`` (uvicorn) on 127.0.0.1 with the bundled model and portfolio
    (or ``portfolio``), logging warnings only (no access log).

    Yields the base URL once every worker answers ``/readyz``. API keys are taken out of the
    environment, so the load needs no credentials; the feedback log goes to a temporary folder.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "classifier_service", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning",
             "--feedback-log", str(Path(tmp) / "feedback.jsonl"),
             *(["--portfolio", str(portfolio)] if portfolio is not None else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, url, workers, start_timeout_s)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], url: str, workers: int, timeout_s: float) -> None:
    """Until ``/readyz`` answers 200 on enough fresh connections to have met every worker."""
    deadline = time.monotonic() + timeout_s
    ready = 0
    while ready < 4 * workers:
        if proc.poll() is not None:
            raise RuntimeError(f"tier-router serve exited with code {proc.returncode} at start")
        if time.monotonic() > deadline:
            raise RuntimeError(f"tier-router serve did not get ready within {timeout_s:.0f} s")
        try:
            ok = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            ok = False
        ready = ready + 1 if ok else 0
        time.sleep(0.25 if ok else 0.1)
