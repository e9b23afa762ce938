"""The data plane's edge cases: servers that answer in broken ways, and the client's setup."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from classifier_service.app import create_app
from classifier_service.errors import BackendError
from classifier_service.gateway.backends import Backends
from classifier_service.portfolio.model import Endpoint
from classifier_service.settings import Settings
from tests.doubles import running
from tests.support.admin import ADMIN, ADMIN_KEY

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}


def broken_server() -> FastAPI:
    """An OpenAI-compatible server whose model name says how it misbehaves."""
    app = FastAPI()
    seen: list[dict[str, str]] = []
    app.state.seen = seen

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        seen.append(dict(request.headers))
        mode = body["model"]
        if mode == "no-choices":
            return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
        if mode == "long-line":
            async def events() -> AsyncIterator[bytes]:
                yield f"data: {json.dumps(CHUNK)}\n\n".encode()
                yield b"data: " + b"x" * (3 * 1024 * 1024) + b"\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        if mode in ("no-done", "nothing"):  # llama-cpp-python on a prompt over its context
            async def cut() -> AsyncIterator[bytes]:
                if mode == "no-done":
                    yield f"data: {json.dumps(CHUNK)}\n\n".encode()
            return StreamingResponse(cut(), media_type="text/event-stream")
        if mode == "slow":
            await asyncio.sleep(1.5)
        if body.get("stream"):
            async def answer() -> AsyncIterator[bytes]:
                chunk = {**CHUNK, "choices": [{"index": 0, "finish_reason": None,
                                               "delta": {"content": "The answer is 42."}}]}
                yield f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            return StreamingResponse(answer(), media_type="text/event-stream")
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                             "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                 "role": "assistant", "content": "The answer is 42."}}]})

    return app


PORTFOLIO = """
version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: first, api: openai, base_url: "{url}/v1", model: {model}}}
      - {{name: second, api: openai, base_url: "{url}/v1", model: ok}}
  - name: medium
    endpoints: [{{name: mid, api: openai, base_url: "{url}/v1", model: ok}}]
  - name: complex
    endpoints: [{{name: big, api: openai, base_url: "{url}/v1", model: ok}}]
policy: {{backend_timeout_s: {timeout}, failover_cooldown_s: 60}}
"""


@pytest.fixture
def server() -> Iterator[tuple[FastAPI, str]]:
    app = broken_server()
    with running(app) as url:
        yield app, url


def gateway(tmp_path: Path, url: str, model: str, timeout: float = 10) -> FastAPI:
    path = tmp_path / "p.yaml"
    path.write_text(PORTFOLIO.format(url=url, model=model, timeout=timeout), encoding="utf-8")
    return create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                               admin_keys=ADMIN_KEY, portfolios_dir=tmp_path))


def ask(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "first", "messages": [{"role": "user", "content": "hi"}], **body})


def test_an_answer_without_choices_fails_over(server: tuple[FastAPI, str],
                                              tmp_path: Path) -> None:
    _, url = server
    app = gateway(tmp_path, url, "no-choices")
    with running(app) as gw:
        r = httpx.post(f"{gw}/v1/chat/completions", timeout=30, json={
            "model": "simple", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    route = r.json()["tier_router"]["route"]
    assert route[0]["outcome"] == "failed" and "without choices" in route[0]["detail"][0]
    assert route[1]["endpoint"] == "second"


def test_a_stream_that_breaks_off_ends_cleanly_and_cools_the_endpoint_down(
        server: tuple[FastAPI, str], tmp_path: Path) -> None:
    _, url = server
    app = gateway(tmp_path, url, "long-line")
    with running(app) as gw:
        r = ask(gw, stream=True)
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hi"
        assert "broken stream" in json.loads(events[1])["error"]["message"]
        assert events[-1] == "[DONE]"
        again = httpx.post(f"{gw}/v1/chat/completions", timeout=30, json={
            "model": "simple", "messages": [{"role": "user", "content": "hi"}]})
        assert again.json()["tier_router"]["route"][0] == {
            "endpoint": "first", "tier": "simple", "outcome": "cooling_down",
            "detail": ["sent a broken stream (LineTooLong)"]}
        metrics = httpx.get(f"{gw}/metrics").text
    assert 'tier_router_failovers_total{endpoint="first"} 1.0' in metrics


def test_a_stream_without_done_is_broken_not_an_empty_answer(
        server: tuple[FastAPI, str], tmp_path: Path) -> None:
    _, url = server
    with running(gateway(tmp_path, url, "nothing")) as gw:  # nothing at all: fail over
        r = ask(gw, stream=True)
        assert r.headers["x-tier-router-route"] == "first:failed,second:answered"
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert "The answer" in events[0] and events[-1] == "[DONE]"
    with running(gateway(tmp_path, url, "no-done")) as gw:  # cut after a chunk: an error event
        r = ask(gw, stream=True)
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert "ended its stream without data: [DONE]" in json.loads(events[1])["error"]["message"]
        assert events[-1] == "[DONE]"


def test_the_timeout_follows_a_reload(server: tuple[FastAPI, str], tmp_path: Path) -> None:
    _, url = server
    app = gateway(tmp_path, url, "slow", timeout=10)
    with running(app) as gw:
        assert ask(gw).status_code == 200  # 1.5 s < 10 s
        short = tmp_path / "short.yaml"
        short.write_text(PORTFOLIO.format(url=url, model="slow", timeout=0.5), encoding="utf-8")
        assert httpx.post(f"{gw}/v1/admin/reload", json={"portfolio": str(short)},
                          headers=ADMIN, timeout=30).status_code == 200
        r = ask(gw)
    first = r.json()["tier_router"]["route"][0]  # then the next endpoint answered
    assert first["endpoint"] == "first" and first["detail"] == ["timed out"]


def test_netrc_and_proxy_variables_are_not_used(server: tuple[FastAPI, str],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    app, url = server
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password secret\n",
                                     encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a dead proxy
    monkeypatch.setenv("KEY", "sk-mine")
    endpoint = Endpoint(name="e", api="openai", base_url=f"{url}/v1", model="ok",
                        api_key_env="KEY")

    async def call() -> str:
        backends = Backends.open(5)
        try:
            completion = await backends.complete(endpoint, {"messages": []})
        finally:
            await backends.close()
        return completion.content

    assert asyncio.run(call()) == "The answer is 42."
    assert app.state.seen[-1]["authorization"] == "Bearer sk-mine"


def test_a_client_that_leaves_mid_body_is_not_a_crash(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(feedback_log=tmp_path / "f.jsonl"))
    with caplog.at_level("DEBUG", logger="tier_router"), running(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/route HTTP/1.1\r\nhost: x\r\ncontent-type: "
                         b"application/json\r\ncontent-length: 100\r\n\r\n{\"prompt")
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_backend_errors_name_the_endpoint() -> None:
    error = BackendError("small", "timed out")
    assert str(error) == "small: timed out" and error.problem == "timed out"
