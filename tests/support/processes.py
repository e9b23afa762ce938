"""`tier-router serve` in its own process group (workers included), and waiting on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.support.server import wait_ready


def serve(*args: str, log: Path, env: Mapping[str, str] | None = None
          ) -> tuple[subprocess.Popen[str], str]:
    """`tier-router serve` in its own process group, logging to ``log`` (never a full pipe);
    ``env`` is added to this process's environment."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "classifier_service", "serve", "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, timeout=60)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, url


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a server started by :func:`serve`, its workers included; kill it if it hangs."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def fresh_versions(url: str, n: int) -> set[str]:
    """model_version seen on ``n`` new connections (spread over the workers)."""
    return {httpx.get(f"{url}/readyz", timeout=10).json()["model_version"] for _ in range(n)}


def wait_for(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False
