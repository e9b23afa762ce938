"""The Ollama-compatible gateway, through the official ``ollama`` client, over real uvicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.doubles import Script
from tests.support.admin import ADMIN
from tests.support.gateway import ESSAY, Stack, portfolio


@pytest.fixture
def client(stack: Stack) -> Iterator[ollama.Client]:
    with ollama.Client(host=stack.url) as c:
        yield c


def test_chat_routes_and_answers(stack: Stack, client: ollama.Client) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    reply = client.chat(model="auto", messages=[
        {"role": "user", "content": "positive or negative: 'great phone'"}])
    assert reply.message.content == "Positive"
    assert reply.done and reply.done_reason == "stop"
    assert stack.ollama.requests[-1]["model"] == "small-a"
    raw = httpx.post(f"{stack.url}/api/chat", json={"model": "auto", "stream": False, "messages": [
        {"role": "user", "content": "positive or negative: 'great phone'"}]})
    assert raw.headers["x-tier-router-endpoint"] == "small-a"
    assert raw.json()["tier_router"]["tier"] == "simple"


def test_chat_escalates_and_streams(stack: Stack, client: ollama.Client) -> None:
    stack.ollama.scripts["small-a"] = Script(content="I'm not sure.")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    reply = client.chat(model="auto", messages=[
        {"role": "user", "content": "positive or negative: 'fine'"}])
    assert reply.message.content == "Positive"  # the medium model's answer
    assert [r["model"] for r in stack.ollama.requests[-2:]] == ["small-a", "mid"]
    stack.openai.scripts["big-model"] = Script(content=ESSAY)
    parts = list(client.chat(model="complex", messages=[
        {"role": "user", "content": "essay on remote work"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == ESSAY
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_options_tools_and_format_pass_on(stack: Stack, client: ollama.Client) -> None:
    stack.openai.scripts["big-model"] = Script(
        tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}})
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    reply = client.chat(model="complex", messages=[{"role": "user", "content": "weather?"}],
                        tools=tools, options={"temperature": 0.3, "num_predict": 64},
                        format="json", stream=False)
    assert reply.message.tool_calls is not None
    assert reply.message.tool_calls[0].function.arguments == {"city": "Oslo"}
    sent = stack.openai.requests[-1]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 64
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_generate_and_tags(stack: Stack, client: ollama.Client) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Paris")
    reply = client.generate(model="simple", prompt="Capital of France? One word.",
                            system="Answer tersely.")
    assert reply.response == "Paris"
    sent = stack.ollama.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Answer tersely."}
    streamed = "".join(p.response or "" for p in client.generate(
        model="simple", prompt="Capital of France? One word.", stream=True))
    assert streamed == "Paris"
    loaded = client.generate(model="auto", prompt="")  # a preload: nothing to route
    assert loaded.done_reason == "load"
    names = [m.model for m in client.list().models]
    assert names[:4] == ["auto", "simple", "medium", "complex"]


def test_errors_in_ollama_format(stack: Stack, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert info.value.status_code == 404
    assert "model 'nope' does not exist" in info.value.error
    for model in ("small-a", "small-b", "mid"):
        stack.ollama.scripts[model] = Script(status=500)
    stack.openai.scripts["big-model"] = Script(status=500)
    down = httpx.post(f"{stack.url}/api/chat", json={
        "model": "auto", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert down.status_code == 503 and "no endpoint could answer" in down.json()["error"]


def test_buffered_ndjson_stream(stack: Stack, client: ollama.Client) -> None:
    stack.ollama.scripts["small-a"] = Script(content="I don't know.")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    raw = httpx.post(f"{stack.url}/api/chat", headers={"x-tier-router-stream": "buffered"},
                     json={"model": "auto", "messages": [
                         {"role": "user", "content": "positive or negative: 'ok'"}]})
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "Positive"
    assert lines[-1]["done"] is True
    assert raw.headers["x-tier-router-endpoint"] == "mid"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "auto", "stream": False, "messages": "hi"}, 400),
        ({"model": "auto", "stream": False, "messages": [1]}, 400),
        ({"model": "auto", "stream": False, "prompt": 5}, 400),
        ({"model": "simple", "stream": False, "messages": [
            {"role": "assistant", "content": "x", "tool_calls": [{}]},
            {"role": "user", "content": "positive or negative: 'ok'"}]}, 200),
    ],
)
def test_odd_ollama_input_never_500s(stack: Stack, body: dict[str, object], status: int) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    path = "/api/generate" if "prompt" in body else "/api/chat"
    response = httpx.post(f"{stack.url}{path}", json=body)
    assert response.status_code == status, response.text


def test_policy_buffer_streams_checks_plain_streaming_clients(
        stack: Stack, client: ollama.Client, tmp_path: Path) -> None:
    """n8n's Ollama Chat Model streams; with policy.buffer_streams it still gets checked
    answers, and the header `x-tier-router-stream: direct` opts one request out."""
    path = tmp_path / "buffering.yaml"
    path.write_text(portfolio(stack.ollama.url, stack.openai.url, "http://127.0.0.1:9").replace(
        "policy: {", "policy: {buffer_streams: true, "), encoding="utf-8")
    assert httpx.post(f"{stack.url}/v1/admin/reload", json={"portfolio": str(path)},
                      headers=ADMIN).status_code == 200
    stack.ollama.scripts["small-a"] = Script(content="I don't know.")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    ask = [{"role": "user", "content": "positive or negative: 'ok'"}]
    parts = list(client.chat(model="auto", messages=ask, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "Positive"
    direct = httpx.post(f"{stack.url}/api/chat", headers={"x-tier-router-stream": "direct"},
                        json={"model": "auto", "messages": ask})
    lines = [json.loads(line) for line in direct.text.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "I don't know."


def test_show_answers_as_ollama_does(stack: Stack, client: ollama.Client) -> None:
    auto = client.show("auto")
    assert auto.capabilities == ["completion", "tools"]  # clients check tool support here
    assert auto.modelinfo is not None
    assert auto.modelinfo["tier-router.context_length"] == 8192  # the largest reachable
    assert auto.details is not None and auto.details.family == "tier-router"
    assert auto.modelfile is not None and "FROM auto" in auto.modelfile
    assert auto.parameters == "num_ctx 8192"
    medium = client.show("medium")  # medium and complex: 4096 and 8192
    assert medium.modelinfo is not None and medium.modelinfo["tier-router.context_length"] == 8192
    small = client.show("small-a")
    assert small.modelinfo is not None and small.modelinfo["tier-router.context_length"] == 2048
    assert small.details is not None and small.details.parent_model == "small-a"
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert info.value.status_code == 404
    for body in ([1], {"model": 5}):
        bad = httpx.post(f"{stack.url}/api/show", json=body)
        assert bad.status_code == 400 and "error" in bad.json()


def test_ps_lists_what_is_loaded(stack: Stack, client: ollama.Client) -> None:
    before = {m.model: m for m in client.ps().models}
    assert "small-a" not in before
    assert before["big"].size == 0  # an OpenAI-compatible server: loaded, size unknown
    assert httpx.post(f"{stack.url}/v1/admin/models/small-a/load", headers=ADMIN).status_code == 200
    after = {m.model: m for m in client.ps().models}
    assert after["small-a"].size_vram == 4_900_000_000  # what its Ollama server reports
    assert after["small-a"].context_length == 2048
    assert after["small-a"].expires_at is not None
    assert "small-b" not in after and "mid" not in after


def test_version_and_langchain_model_check(stack: Stack) -> None:
    from langchain_ollama import ChatOllama

    answer = httpx.get(f"{stack.url}/api/version").json()
    assert answer["version"] == "0.8.0" and answer["tier_router"]
    # ChatOllama checks the model is in /api/tags (an unknown one would raise here)
    chat = ChatOllama(model="auto", base_url=stack.url, validate_model_on_init=True)
    chat._client.close()  # type: ignore[no-untyped-call]
