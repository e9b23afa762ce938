"""An endpoint that does not have the model fails over; the error says what to pull.

Ollama answers ``404 {"error": "model 'x' not found"}`` on ``/api/chat`` for a model never
pulled; OpenAI-compatible servers a 404 for a model they do not serve. Neither is the
client's fault, so the gateway moves on to the next endpoint, and names the model and the
``ollama pull`` to run in the route, the 503 and the log. An endpoint that refuses
connections says so while it cools down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from classifier_service.app import create_app
from classifier_service.settings import Settings
from tests.conftest import free_port
from tests.doubles import running

ANSWER = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "The answer is 42."}}]}


def servers() -> FastAPI:
    """Ollama's /api/chat and an OpenAI-compatible /v1: model ``present`` answers, any other
    is answered with each server's own 404."""
    app = FastAPI()

    @app.post("/api/chat")
    async def ollama_chat(request: Request) -> Any:
        body = await request.json()
        if body["model"] != "present":
            return JSONResponse(status_code=404,
                                content={"error": f"model '{body['model']}' not found"})
        return {"model": "present", "created_at": "2026-01-01T00:00:00Z", "done": True,
                "message": {"role": "assistant", "content": "The answer is 42."},
                "done_reason": "stop"}

    @app.post("/v1/chat/completions")
    async def openai_chat(request: Request) -> Any:
        body = await request.json()
        if body["model"] != "present":
            return JSONResponse(status_code=404, content={"error": {
                "message": f"The model `{body['model']}` does not exist.",
                "type": "invalid_request_error", "code": "model_not_found"}})
        return ANSWER

    return app


@pytest.fixture
def upstream() -> Iterator[str]:
    with running(servers()) as url:
        yield url


def gateway(tmp_path: Path, simple: str) -> FastAPI:
    path = tmp_path / "p.yaml"
    path.write_text(f"""
version: 1
tiers:
  - name: simple
    endpoints:
{simple}
  - name: medium
    endpoints: [{{name: mid, api: ollama, base_url: "http://127.0.0.1:1", model: m}}]
  - name: complex
    endpoints: [{{name: big, api: ollama, base_url: "http://127.0.0.1:1", model: b}}]
policy: {{failover_cooldown_s: 60}}
""", encoding="utf-8")
    return create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl"))


def ask(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "simple", "messages": [{"role": "user", "content": "hi"}]})


def test_a_model_never_pulled_fails_over_and_names_the_pull(upstream: str,
                                                             tmp_path: Path) -> None:
    app = gateway(tmp_path, f"""
      - {{name: unpulled, api: ollama, base_url: "{upstream}", model: "qwen2.5:7b"}}
      - {{name: unserved, api: openai, base_url: "{upstream}/v1", model: "llama3.1:8b"}}
      - {{name: ready, api: ollama, base_url: "{upstream}", model: present}}""")
    with running(app) as gw:
        r = ask(gw)
    assert r.status_code == 200, r.text
    route = r.json()["tier_router"]["route"]
    assert [s["outcome"] for s in route] == ["failed", "failed", "answered"]
    assert route[0]["detail"] == [f"model 'qwen2.5:7b' not found on {upstream}: "
                                  "run `ollama pull qwen2.5:7b`"]
    assert "model 'llama3.1:8b' not found" in route[1]["detail"][0]
    assert "`ollama pull llama3.1:8b`" in route[1]["detail"][0]


def test_all_down_names_the_pull_in_the_503_and_the_log(
        upstream: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = gateway(tmp_path, f"""
      - {{name: unpulled, api: ollama, base_url: "{upstream}", model: "qwen2.5:7b"}}""")
    with caplog.at_level(logging.WARNING, logger="tier_router.gateway"), running(app) as gw:
        r = ask(gw)
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "unpulled: model 'qwen2.5:7b' not found" in message
    assert "ollama pull qwen2.5:7b" in message
    assert any("ollama pull qwen2.5:7b" in rec.getMessage() for rec in caplog.records)


def test_an_unreachable_endpoint_says_so_while_cooling_down(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = gateway(tmp_path, f"""
      - {{name: gone, api: ollama, base_url: "{closed}", model: m}}""")
    with running(app) as gw:
        first = ask(gw)
        second = ask(gw)
    assert first.status_code == second.status_code == 503
    assert "gone: unreachable (connection refused)" in first.json()["error"]["message"]
    message = second.json()["error"]["message"]
    assert "gone: unreachable (connection refused) (cooling down)" in message
