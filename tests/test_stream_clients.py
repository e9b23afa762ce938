"""Streams as real clients read them: tool calls and usage, through both gateways, from both
kinds of backend (the ``medium`` tier is a fake Ollama, ``complex`` a fake OpenAI-compatible
server that fragments tool-call arguments), with the official ``ollama`` and ``openai`` SDKs
and LangChain's ChatOllama and ChatOpenAI."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionChunk

from classifier_service.gateway.streams import ChatLines, OpenAIStream
from tests.doubles import Script
from tests.support.gateway import Stack

WEATHER = {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]
BACKENDS = pytest.mark.parametrize("tier", ["medium", "complex"])  # Ollama, OpenAI-compatible


def _chunks(stack: Stack, tier: str, **kw: Any) -> list[ChatCompletionChunk]:
    """A streamed ``/v1`` answer, every chunk, through the openai SDK."""
    return list(stack.client.chat.completions.create(
        model=tier, messages=cast(Any, ASK), stream=True, **kw))


def _script(stack: Stack, **kw: Any) -> None:
    stack.ollama.scripts["mid"] = Script(**kw)
    stack.openai.scripts["big-model"] = Script(**kw)


@BACKENDS
def test_ollama_sdk_gets_streamed_tool_calls(stack: Stack, tier: str) -> None:
    _script(stack, tool_call=WEATHER)
    with ollama.Client(host=stack.url) as client:
        parts = list(client.chat(model=tier, messages=ASK, tools=TOOLS, stream=True))
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == WEATHER["arguments"]  # parsed, not a string
    assert not any(p.done for p in parts[:-1])
    last = parts[-1]
    assert last.done and last.done_reason == "stop"  # what Ollama says after a tool call
    assert last.prompt_eval_count is not None and last.prompt_eval_count > 0
    assert last.eval_count is not None and last.eval_count > 0
    assert last.total_duration is not None and last.total_duration > 0


def test_ollama_stream_counts_come_from_the_backend(stack: Stack) -> None:
    _script(stack, content="Sunny and mild today")
    with ollama.Client(host=stack.url) as client:
        last = list(client.chat(model="medium", messages=ASK, stream=True))[-1]
        assert (last.prompt_eval_count, last.eval_count) == (12, 8)  # fake Ollama's counts
        last = list(client.chat(model="complex", messages=ASK, stream=True))[-1]
    assert stack.openai.requests[-1]["stream_options"] == {"include_usage": True}
    assert (last.prompt_eval_count, last.eval_count) == (6, 4)  # one token a word
    buffered = httpx.post(f"{stack.url}/api/chat", headers={"x-tier-router-stream": "buffered"},
                          json={"model": "complex", "messages": ASK})
    lines = [json.loads(line) for line in buffered.text.splitlines()]
    assert "stream_options" not in stack.openai.requests[-1]
    assert lines[-1]["done"] and (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (
        6, 4)


@BACKENDS
def test_openai_sdk_gets_streamed_tool_calls(stack: Stack, tier: str) -> None:
    _script(stack, tool_call=WEATHER)
    chunks = _chunks(stack, tier, tools=TOOLS)
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks
              if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].index == 0 and deltas[0].type == "function"
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == WEATHER["arguments"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls" and finishes.count(None) == len(finishes) - 1


@BACKENDS
@pytest.mark.parametrize("mode", ["direct", "buffered"])
def test_usage_in_every_stream_when_asked(stack: Stack, tier: str, mode: str) -> None:
    _script(stack, content="Sunny and mild today")
    headers = {"x-tier-router-stream": mode}
    chunks = _chunks(stack, tier, stream_options={"include_usage": True},
                     extra_headers=headers)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    expected = (12, 8) if tier == "medium" else (6, 4)  # the backend's own counts
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == expected
    assert chunks[-1].usage.total_tokens == sum(expected)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Sunny and mild today")
    unasked = _chunks(stack, tier, extra_headers=headers)
    assert all(c.usage is None and c.choices for c in unasked)


def test_usage_counted_when_the_backend_gives_none() -> None:
    relay = OpenAIStream({"messages": [{"role": "user", "content": "x" * 40}],
                          "stream_options": {"include_usage": True}}, 4.0)
    out = relay.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": "y" * 10},
                                              "finish_reason": "stop"}]})
    usage = relay.end()[0]["usage"]
    assert out[0]["choices"][0]["delta"]["content"] == "y" * 10
    assert usage == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                     "estimated": True}
    lines = ChatLines({"messages": [{"role": "user", "content": "x" * 40}]}, 4.0, "auto")
    lines.feed({"choices": [{"index": 0, "delta": {"content": "y" * 10},
                             "finish_reason": "stop"}]})
    last = lines.end()[-1]
    assert (last["prompt_eval_count"], last["eval_count"]) == (10, 3)


def test_fragmented_parallel_tool_calls_are_put_together() -> None:
    lines = ChatLines({"messages": []}, 4.0, "auto")
    pieces = [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g",
                                                                 "arguments": '{"n"'}},
        {"index": 0, "function": {"arguments": '{"x": '}},
        {"index": 1, "function": {"arguments": ": 2}"}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]
    out = [line for p in pieces for line in lines.feed(
        {"choices": [{"index": 0, "delta": {"tool_calls": [p]}, "finish_reason": None}]})]
    assert out == []
    out = lines.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    assert out[0]["message"]["tool_calls"] == [
        {"function": {"name": "f", "arguments": {"x": 1}}},
        {"function": {"name": "g", "arguments": {"n": 2}}}]
    assert lines.end()[-1]["done_reason"] == "stop"


@BACKENDS
def test_langchain_chat_ollama_streams_tool_calls_and_counts(stack: Stack, tier: str) -> None:
    _script(stack, tool_call=WEATHER)
    chat = ChatOllama(model=tier, base_url=stack.url)
    merged: AIMessageChunk | None = None
    try:
        for part in chat.bind_tools(TOOLS).stream("What is the weather in Oslo?"):
            assert isinstance(part, AIMessageChunk)
            merged = part if merged is None else merged + part
    finally:
        chat._client.close()  # type: ignore[no-untyped-call]  # its httpx client, else its socket is closed by the collector
    assert merged is not None
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("get_weather", WEATHER["arguments"])]
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] > 0


@BACKENDS
def test_langchain_chat_openai_streams_tool_calls_and_usage(stack: Stack, tier: str) -> None:
    _script(stack, tool_call=WEATHER)
    model = ChatOpenAI(model=tier, base_url=f"{stack.url}/v1", api_key="unused",  # type: ignore[arg-type]
                       stream_usage=True, max_retries=0).bind_tools(TOOLS)
    merged: AIMessageChunk | None = None
    for part in model.stream("What is the weather in Oslo?"):
        assert isinstance(part, AIMessageChunk)
        merged = part if merged is None else merged + part
    assert merged is not None
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("get_weather", WEATHER["arguments"])]
    assert merged.response_metadata.get("finish_reason") == "tool_calls"
    assert merged.usage_metadata is not None and merged.usage_metadata["total_tokens"] > 0
