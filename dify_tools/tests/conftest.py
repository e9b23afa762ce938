"""Fixtures: a real tier-router on loopback, the plugin as the SDK loads it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# dify_plugin monkey-patches the standard library with gevent when imported: first, before
# anything imports ssl or threading (pytest.ini also keeps anyio's pytest plugin out).
import dify_plugin  # noqa: F401
import httpx
import pytest
from dify_plugin import DifyPluginEnv, Tool
from dify_plugin.core.plugin_registration import PluginRegistration
from dify_plugin.entities.tool import ToolInvokeMessage

PLUGIN_DIR = Path(__file__).resolve().parent.parent
API_KEY = "dify-plugin-test-key"
PROVIDER = "tier_router"
MessageType = ToolInvokeMessage.MessageType

if str(PLUGIN_DIR) not in sys.path:  # the plugin's own modules, as `python -m main` sees them
    sys.path.insert(0, str(PLUGIN_DIR))


@dataclass(frozen=True)
class Service:
    url: str
    api_key: str
    outcomes_dir: Path  # TIER_ROUTER_OUTCOMES_DIR: where POST /v1/feedback stores outcomes

    @property
    def credentials(self) -> dict[str, str]:
        return {"service_url": self.url, "api_key": self.api_key}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_python() -> str:
    """The interpreter that has tier-router installed (its own 3.11+ environment)."""
    python = os.environ.get("TIER_ROUTER_PYTHON", "")
    if not python:
        pytest.fail("set TIER_ROUTER_PYTHON to the python of an environment where tier-router "
                    "is installed (dify_tools/ci.sh does)", pytrace=False)
    return python


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``tier-router serve`` in a subprocess on a free loopback port, with an API key."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("service")
    outcomes = workdir / "outcomes"
    env = {**os.environ, "TIER_ROUTER_API_KEYS": API_KEY, "TIER_ROUTER_OUTCOMES_DIR": str(outcomes)}
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [service_python(), "-m", "classifier_service", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("tier-router exited: " + (workdir / "serve.log").read_text())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("tier-router did not start within 60 s")
            time.sleep(0.1)
        yield Service(url, API_KEY, outcomes)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def stored_outcome(service: Service, request_id: str) -> dict[str, Any]:
    """The outcome record the service stored under ``request_id`` (its JSONL line)."""
    found = [record for path in sorted(service.outcomes_dir.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
             for record in [json.loads(line)] if record.get("request_id") == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


@pytest.fixture(scope="session")
def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class Package:
    path: Path  # the .difypkg
    unpacked: Path  # its contents, extracted


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The .difypkg built by build_package.py, and a folder it was unpacked into."""
    import zipfile

    from build_package import build

    out = tmp_path_factory.mktemp("dist")
    path = build(PLUGIN_DIR, out)
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(path) as archive:
        archive.extractall(unpacked)
    return Package(path, unpacked)


@pytest.fixture(scope="module")
def registration() -> Iterator[PluginRegistration]:
    """The plugin as the SDK loads it for `python -m main`: manifest, YAML, classes."""
    with contextlib.chdir(PLUGIN_DIR):
        yield PluginRegistration(DifyPluginEnv())


def invoke(registration: PluginRegistration, tool: str, credentials: dict[str, str],
           params: dict[str, Any]) -> dict[str, Any]:
    """Run one tool; its JSON message, variables and text, as Dify would receive them."""
    cls = registration.get_tool_cls(PROVIDER, tool)
    assert cls is not None and issubclass(cls, Tool)
    messages = list(cls.from_credentials(credentials, user_id="test").invoke(dict(params)))
    out: dict[str, Any] = {"json": [], "variables": {}, "text": []}
    for message in messages:
        if message.type == MessageType.JSON:
            out["json"].append(message.message.json_object)  # type: ignore[union-attr]
        elif message.type == MessageType.VARIABLE:
            variable = message.message
            out["variables"][variable.variable_name] = variable.variable_value  # type: ignore[union-attr]
        elif message.type == MessageType.TEXT:
            out["text"].append(message.message.text)  # type: ignore[union-attr]
    return out
