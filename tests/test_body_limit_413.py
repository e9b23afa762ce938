"""A body over the limit is answered 413 while the client is still sending it, and the client
reads that answer instead of a reset connection (issue 15, item 5)."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from classifier_service.app import create_app
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.conftest import free_port

LIMIT = 1 << 20
IMPLEMENTATIONS = ["h11", *(["httptools"] if importlib.util.find_spec("httptools") else [])]


@pytest.fixture(params=IMPLEMENTATIONS)
def server(request: pytest.FixtureRequest, runtime: Runtime) -> Iterator[int]:
    app = create_app(Settings(max_body_bytes=LIMIT, body_timeout_s=20), runtime=runtime)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                        http=request.param))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _send_slowly_then_read(port: int, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send the whole request a piece at a time (as curl does without Expect), then read."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)  # a reset here is what the client used to see
            time.sleep(0.001)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _pieces(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def test_a_declared_length_over_the_limit_is_read_as_413(server: int) -> None:
    total = 8 * LIMIT
    head = (f"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {total}\r\n\r\n").encode()
    answer = _send_slowly_then_read(server, head, _pieces(total))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"TIER_ROUTER_MAX_BODY_BYTES" in answer


def test_a_chunked_body_over_the_limit_is_read_as_413(server: int) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")

    def chunked() -> Iterator[bytes]:
        for piece in _pieces(8 * LIMIT):
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    answer = _send_slowly_then_read(server, head, chunked())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
