"""A wire-format double (``tests.doubles``) in its own process, so that a test can kill it.

``python -m tests.backend_process --api openai --port P --model M [--delay S] [--chunk-delay S]``
serves ``fake_openai()`` (or ``fake_ollama()``) on 127.0.0.1 with one scripted model.
:func:`backend_process` starts one for a test and :meth:`BackendProcess.wait_for_request`
says when a request is in flight there, so the test can SIGKILL it at that moment.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psutil
import uvicorn

from tests.conftest import free_port
from tests.doubles import Script, fake_ollama, fake_openai


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.backend_process")
    parser.add_argument("--api", choices=["ollama", "openai"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--content", default="The answer is 42.")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="seconds between streamed words")
    args = parser.parse_args(argv)
    double = fake_openai() if args.api == "openai" else fake_ollama()
    double.scripts[args.model] = Script(content=args.content, delay_s=args.delay,
                                        chunk_delay_s=args.chunk_delay)
    uvicorn.run(double.app, host="127.0.0.1", port=args.port, log_level="error")


@dataclass
class BackendProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_request(self, timeout: float = 30.0) -> None:
        """Block until a client holds an open connection to this backend."""
        deadline = time.monotonic() + timeout
        process = psutil.Process(self.proc.pid)
        while time.monotonic() < deadline:
            if any(c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
                   for c in process.net_connections(kind="tcp")):
                return
            time.sleep(0.05)
        raise AssertionError(f"no request reached the backend on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once and the kernel closes its sockets."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def backend_process(api: str, model: str, *, content: str = "The answer is 42.",
                    delay_s: float = 0.0, chunk_delay_s: float = 0.0) -> Iterator[BackendProcess]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.backend_process", "--api", api, "--port", str(port),
         "--model", model, "--content", content, "--delay", str(delay_s),
         "--chunk-delay", str(chunk_delay_s)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backend = BackendProcess(proc, port)
    probe = f"{backend.url}/v1/models" if api == "openai" else f"{backend.url}/api/tags"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"backend process exited with {proc.returncode}")
            try:
                if httpx.get(probe, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("backend process did not start")
            time.sleep(0.05)
        yield backend
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
