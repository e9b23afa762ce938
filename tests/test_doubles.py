"""The test doubles speak the real wire formats: checked with the official clients."""

from __future__ import annotations

import json
from collections.abc import Iterator

import ollama
import openai
import pytest

from tests.doubles import Double, Script, fake_ollama, fake_openai, running


@pytest.fixture(scope="module")
def ollama_double() -> Iterator[Double]:
    double = fake_ollama()
    double.scripts["m"] = Script(content="Hello there friend")
    with running(double.app) as url:
        double.url = url
        yield double


@pytest.fixture(scope="module")
def openai_double() -> Iterator[Double]:
    double = fake_openai()
    double.scripts["m"] = Script(content="Hello there friend")
    with running(double.app) as url:
        double.url = url
        yield double


def test_ollama_client_chat(ollama_double: Double) -> None:
    with ollama.Client(host=ollama_double.url) as client:
        reply = client.chat(model="m", messages=[{"role": "user", "content": "hi"}])
        assert reply.message.content == "Hello there friend"
        assert reply.done_reason == "stop"
        parts = [c.message.content for c in client.chat(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True)]
        assert "".join(parts) == "Hello there friend"
        assert [m.model for m in client.list().models] == ["m"]
        client.generate(model="m", prompt="", keep_alive=0)
    assert ollama_double.requests[-1]["keep_alive"] == 0


def test_ollama_client_tools(ollama_double: Double) -> None:
    ollama_double.scripts["tooler"] = Script(
        tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}})
    with ollama.Client(host=ollama_double.url) as client:
        reply = client.chat(model="tooler", messages=[{"role": "user", "content": "weather?"}])
    assert reply.message.tool_calls is not None
    assert reply.message.tool_calls[0].function.name == "get_weather"


def test_openai_client_chat(openai_double: Double) -> None:
    with openai.OpenAI(base_url=f"{openai_double.url}/v1", api_key="unused") as client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello there friend"
        assert reply.choices[0].finish_reason == "stop"
        with client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True) as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream)
        assert text == "Hello there friend"
        assert [m.id for m in client.models.list()] == ["m"]


WEATHER = {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}


def test_ollama_double_streams_a_tool_call_as_ollama_does(ollama_double: Double) -> None:
    ollama_double.scripts["tooler"] = Script(tool_call=WEATHER)
    with ollama.Client(host=ollama_double.url) as client:
        parts = list(client.chat(model="tooler", messages=[
            {"role": "user", "content": "weather?"}], stream=True))
    assert [bool(p.message.tool_calls) for p in parts] == [True, False]
    assert not parts[0].done and parts[-1].done and parts[-1].done_reason == "stop"
    call = parts[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == WEATHER["arguments"]
    assert parts[-1].eval_count == 8 and parts[-1].prompt_eval_count == 12


def test_openai_double_streams_tool_calls_in_fragments_and_usage(openai_double: Double
                                                                  ) -> None:
    openai_double.scripts["tooler"] = Script(tool_call=WEATHER)
    with openai.OpenAI(base_url=f"{openai_double.url}/v1", api_key="unused") as client:
        chunks = list(client.chat.completions.create(
            model="tooler", messages=[{"role": "user", "content": "weather?"}], stream=True,
            stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.tool_calls[0] for c in chunks
              if c.choices and c.choices[0].delta.tool_calls]
    assert len(pieces) > 2 and pieces[0].id == "call_1" and pieces[1].id is None
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert json.loads(arguments) == WEATHER["arguments"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
