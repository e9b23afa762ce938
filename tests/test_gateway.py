"""The OpenAI-compatible gateway, through the official ``openai`` client, over real uvicorn.

Backends are the wire-format test doubles: a fake Ollama (two simple endpoints, the medium
one) and a fake OpenAI-compatible server (the complex one).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from classifier_service.app import create_app
from classifier_service.settings import Settings
from tests.doubles import Script, running
from tests.support.admin import ADMIN
from tests.support.gateway import ESSAY, Stack, ask, portfolio, route_of


def test_auto_routes_a_simple_prompt_to_the_small_model(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    reply = ask(stack, "Is this review positive or negative? 'Great phone, fast delivery.'")
    assert reply.choices[0].message.content == "Positive"
    info = route_of(reply)
    assert info["endpoint"] == "small-a" and info["tier"] == "simple"
    assert info["escalations"] == 0
    sent = stack.ollama.requests[-1]
    assert sent["model"] == "small-a" and sent["keep_alive"] == -1
    assert sent["options"]["num_ctx"] == 2048


def test_headers_say_which_endpoint_answered(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Negative")
    raw = stack.client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "positive or negative: 'awful'"}])
    assert raw.headers["x-tier-router-endpoint"] == "small-a"
    assert raw.headers["x-tier-router-tier"] == "simple"
    assert raw.headers["x-tier-router-route"] == "small-a:answered"


def test_uncertain_answer_escalates_to_the_next_tier(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="I'm not sure, maybe positive?")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    reply = ask(stack, "Is this review positive or negative? 'Great phone.'")
    info = route_of(reply)
    assert reply.choices[0].message.content == "Positive"
    assert info["endpoint"] == "mid" and info["escalations"] == 1
    route = info["route"]
    assert isinstance(route, list)
    assert route[0]["outcome"] == "escalated" and "uncertain" in route[0]["detail"]
    assert route[1] == {"endpoint": "mid", "tier": "medium", "outcome": "answered",
                        "detail": []}


def test_escalation_stops_at_max_escalations(stack: Stack) -> None:
    for model in ("small-a", "mid"):
        stack.ollama.scripts[model] = Script(content="I don't know.")
    stack.openai.scripts["big-model"] = Script(content="I don't know either.")
    reply = ask(stack, "positive or negative: 'fine'")
    info = route_of(reply)
    assert info["escalations"] == 2 and info["endpoint"] == "big"
    assert reply.choices[0].message.content == "I don't know either."


def test_failover_to_the_next_endpoint_then_cooldown(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(status=500)
    stack.ollama.scripts["small-b"] = Script(content="Positive")
    first = route_of(ask(stack, "positive or negative: 'love it'"))
    assert first["endpoint"] == "small-b"
    assert first["route"][0]["outcome"] == "failed"  # type: ignore[index]
    assert "HTTP 500" in first["route"][0]["detail"][0]  # type: ignore[index]
    calls = len(stack.ollama.requests)
    second = route_of(ask(stack, "positive or negative: 'hate it'"))
    assert second["route"][0]["outcome"] == "cooling_down"  # type: ignore[index]
    assert len(stack.ollama.requests) == calls + 1  # small-a was not called again


def test_every_endpoint_down_is_a_quick_503(stack: Stack) -> None:
    for model in ("small-a", "small-b", "mid"):
        stack.ollama.scripts[model] = Script(status=503)
    stack.openai.scripts["big-model"] = Script(status=500)
    start = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        ask(stack, "positive or negative: 'meh'")
    assert time.monotonic() - start < 5
    assert info.value.status_code == 503
    error = info.value.body
    assert isinstance(error, dict) and "no endpoint could answer" in error["message"]


def test_unreachable_specialist_fails_over(stack: Stack) -> None:
    stack.ollama.scripts["mid"] = Script(content=ESSAY)
    info = route_of(ask(stack, "Explain remote work trade-offs", model="ghost"))
    assert info["route"][0]["outcome"] == "failed"  # type: ignore[index]
    assert "unreachable" in info["route"][0]["detail"][0]  # type: ignore[index]
    assert info["endpoint"] == "mid"


def test_slow_backend_times_out_and_fails_over(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="late", delay_s=5)
    stack.ollama.scripts["small-b"] = Script(content="Positive")
    info = route_of(ask(stack, "positive or negative: 'great'"))
    assert info["endpoint"] == "small-b"
    assert info["route"][0]["detail"] == ["timed out"]  # type: ignore[index]


def test_model_can_name_a_tier_or_an_endpoint(stack: Stack) -> None:
    stack.openai.scripts["big-model"] = Script(content=ESSAY)
    assert route_of(ask(stack, "hi", model="complex"))["endpoint"] == "big"
    stack.ollama.scripts["small-b"] = Script(content="Fine.")
    pinned = route_of(ask(stack, "Write a long essay on Rome", model="small-b"))
    assert pinned["endpoint"] == "small-b"  # pinned: a short answer is not escalated
    assert pinned["escalations"] == 0
    with pytest.raises(openai.NotFoundError) as info:
        ask(stack, "hi", model="gpt-9")
    assert "model 'gpt-9' does not exist" in str(info.value)


def test_route_options_in_headers(stack: Stack) -> None:
    stack.ollama.scripts["mid"] = Script(content="Positive, clearly.")
    reply = stack.client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "positive or negative: 'ok'"}],
        extra_headers={"x-tier-router-min-tier": "medium"})
    assert route_of(reply)["endpoint"] == "mid"
    stack.ollama.scripts["small-a"] = Script(content=ESSAY)
    support = stack.client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "write an epic about Rome"}],
        extra_headers={"x-tier-router-agent": "support"})
    assert route_of(support)["tier"] == "simple"
    with pytest.raises(openai.UnprocessableEntityError):
        stack.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-tier-router-max-tier": "nope"})


def test_other_fields_pass_through_and_tools_work(stack: Stack) -> None:
    stack.openai.scripts["big-model"] = Script(
        tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}})
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    reply = stack.client.chat.completions.create(  # type: ignore[call-overload]
        model="complex", messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=tools, tool_choice="auto", temperature=0.2, seed=7, stop=["END"],
        response_format={"type": "text"})
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert route_of(reply)["escalations"] == 0  # a tool call is not judged as text
    sent = stack.openai.requests[-1]
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert sent["temperature"] == 0.2 and sent["seed"] == 7 and sent["stop"] == ["END"]
    assert sent["model"] == "big-model"
    stack.ollama.scripts["mid"] = Script(
        tool_call={"name": "get_weather", "arguments": {"city": "Rome"}})
    via_ollama = stack.client.chat.completions.create(
        model="medium", messages=[{"role": "user", "content": "weather in Rome?"}],
        tools=tools, temperature=0.1, max_tokens=50)  # type: ignore[arg-type]
    assert via_ollama.choices[0].finish_reason == "tool_calls"
    ollama_body = stack.ollama.requests[-1]
    assert ollama_body["tools"] == tools
    assert ollama_body["options"]["temperature"] == 0.1
    assert ollama_body["options"]["num_predict"] == 50


def test_streaming_from_both_kinds_of_backend(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive it is")
    with stack.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "positive or negative: 'yay'"}],
            stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Positive it is"
    stack.openai.scripts["big-model"] = Script(content="Once upon a time")
    with stack.client.chat.completions.create(
            model="complex", messages=[{"role": "user", "content": "a story"}],
            stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Once upon a time"
    raw = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": "complex", "stream": True,
        "messages": [{"role": "user", "content": "a story"}]})
    assert raw.text.rstrip().endswith("data: [DONE]")
    assert raw.headers["x-tier-router-endpoint"] == "big"


def test_streaming_fails_over_before_the_first_chunk(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(status=500)
    stack.ollama.scripts["small-b"] = Script(content="Fine")
    raw = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": "simple", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert raw.headers["x-tier-router-route"] == "small-a:failed,small-b:answered"
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_dify_validation_ping_is_a_plain_200(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Pong", finish="length")
    raw = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "ping"}]})
    assert raw.status_code == 200
    body = raw.json()
    assert body["object"] == "chat.completion"
    assert body["tier_router"]["escalations"] == 0


def _session(name: str) -> dict[str, dict[str, str]]:
    return {"extra_headers": {"x-tier-router-session": name}}


def test_a_session_keeps_its_tier(stack: Stack) -> None:
    stack.openai.scripts["big-model"] = Script(content=ESSAY)
    stack.ollama.scripts["small-a"] = Script(content="Yes")
    first = ask(stack, "Write a sonnet about a lighthouse keeper", **_session("conv-1"))
    assert route_of(first)["tier"] == "complex"
    follow_up = ask(stack, "is it positive? yes or no", **_session("conv-1"))
    assert route_of(follow_up)["tier"] == "complex"
    assert route_of(follow_up)["reason"] == "session"
    other = ask(stack, "is it positive? yes or no", **_session("conv-2"))
    assert route_of(other)["tier"] == "simple"


def test_the_user_field_is_no_session_unless_the_portfolio_says(stack: Stack,
                                                                tmp_path: Path) -> None:
    """Dify sends its end user in `user`: by default that pins nothing; with
    `policy.session_from: user` it is the session when no header names one."""
    stack.openai.scripts["big-model"] = Script(content=ESSAY)
    stack.ollama.scripts["small-a"] = Script(content="Yes")
    assert route_of(ask(stack, "Write a sonnet about a lighthouse keeper", user="u1")
                    )["tier"] == "complex"
    later = ask(stack, "is it positive? yes or no", user="u1")
    assert route_of(later)["tier"] == "simple" and route_of(later)["reason"] != "session"
    path = tmp_path / "by-user.yaml"
    path.write_text(portfolio(stack.ollama.url, stack.openai.url, "http://127.0.0.1:9").replace(
        "policy: {", "policy: {session_from: user, "), encoding="utf-8")
    assert httpx.post(f"{stack.url}/v1/admin/reload", json={"portfolio": str(path)},
                      headers=ADMIN).status_code == 200
    ask(stack, "Write a sonnet about a lighthouse keeper", user="u2")
    pinned = ask(stack, "is it positive? yes or no", user="u2")
    assert route_of(pinned)["tier"] == "complex" and route_of(pinned)["reason"] == "session"
    own = ask(stack, "is it positive? yes or no", user="u2", **_session("fresh"))
    assert route_of(own)["tier"] == "simple"  # the header wins over the user field


def test_models_and_bad_requests(stack: Stack) -> None:
    ids = [m.id for m in stack.client.models.list()]
    assert ids[:4] == ["auto", "simple", "medium", "complex"]
    assert {"small-a", "big", "ghost"} <= set(ids)
    bad = httpx.post(f"{stack.url}/v1/chat/completions", json={"model": "auto"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("messages:")
    broken = httpx.post(f"{stack.url}/v1/chat/completions", content=b"{",
                        headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "error" in broken.json()


def test_buffered_streaming_checks_before_sending(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="I'm not sure.")
    stack.ollama.scripts["mid"] = Script(content="Positive")
    with stack.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "positive or negative: 'ok'"}],
            stream=True, extra_headers={"x-tier-router-stream": "buffered"}) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Positive"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # unbuffered, the first answer goes out as it comes
    stack.ollama.scripts["small-a"] = Script(content="I'm not sure.")
    with stack.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "positive or negative: 'ok'"}],
            stream=True) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "I'm not sure."


def test_a_backend_4xx_goes_back_to_the_client_without_failover(stack: Stack) -> None:
    stack.openai.scripts["big-model"] = Script(status=400)
    with pytest.raises(openai.BadRequestError) as info:
        ask(stack, "hi", model="complex")
    assert "big rejected the request (HTTP 400)" in str(info.value)
    stack.openai.scripts["big-model"] = Script(content=ESSAY)
    assert route_of(ask(stack, "hi", model="complex"))["endpoint"] == "big"  # no cooldown


def test_a_stream_that_breaks_off_ends_with_an_error_event(stack: Stack) -> None:
    stack.openai.scripts["big-model"] = Script(corrupt_stream=True)
    raw = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": "complex", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    events = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "invalid JSON" in json.loads(events[-2])["error"]["message"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"model": "simple", "messages": [{"role": "user", "content": "x"}]},
         {"x-tier-router-max-tier": "nope"}, 422),
        ({"model": "auto", "messages": ["hi"]}, {}, 400),
        ({"model": "auto", "messages": [{"role": "user",
                                         "content": [{"type": "text", "text": None}]}]}, {}, 200),
        ({"model": "simple", "max_tokens": "5",
          "messages": [{"role": "user", "content": "positive or negative: 'ok'"}]}, {}, 200),
        ({"model": "complex", "messages": [{"role": "user", "content": "x" * 70_000}]}, {}, 413),
    ],
)
def test_odd_gateway_input_never_500s(stack: Stack, body: dict[str, object],
                                      headers: dict[str, str], status: int) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == status, response.text
    if status != 200:
        assert "error" in response.json()


def test_sticky_session_with_a_bad_bound_is_422(stack: Stack) -> None:
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    ask(stack, "positive or negative: 'ok'", **_session("s1"))
    response = httpx.post(f"{stack.url}/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-tier-router-min-tier": "nope", "x-tier-router-session": "s1"})
    assert response.status_code == 422


def test_round_robin_spreads_gateway_traffic(stack: Stack, tmp_path: Path) -> None:
    text = portfolio(stack.ollama.url, stack.openai.url, "http://127.0.0.1:9").replace(
        "  - name: simple\n", "  - name: simple\n    balance: round_robin\n")
    path = tmp_path / "rr.yaml"
    path.write_text(text, encoding="utf-8")
    app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f2.jsonl"))
    stack.ollama.scripts["small-a"] = Script(content="Positive")
    stack.ollama.scripts["small-b"] = Script(content="Positive")
    with running(app) as url:
        answered = [httpx.post(f"{url}/v1/chat/completions", json={
            "model": "simple", "messages": [{"role": "user", "content": "positive? 'yes'"}]},
            ).json()["tier_router"]["endpoint"] for _ in range(4)]
    assert answered == ["small-a", "small-b", "small-a", "small-b"]
