"""Two fields the gateway fills in for OpenAI-compatible servers (llama-cpp-python's needs):
``max_tokens`` from ``max_completion_tokens``, ``top_logprobs`` when ``logprobs`` is asked.

Against the wire double; ``tests/test_real_servers.py`` checks the same against the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from classifier_service.app import create_app
from classifier_service.gateway.backends import openai_body
from classifier_service.portfolio.model import Endpoint
from classifier_service.settings import Settings
from tests.doubles import Double, Script, fake_openai, running

PORTFOLIO = """
version: 1
tiers:
  - name: simple
    endpoints: [{{name: a, api: openai, base_url: "{url}/v1", model: m, context_length: 4096}}]
  - name: medium
    endpoints: [{{name: b, api: openai, base_url: "{url}/v1", model: m, context_length: 4096}}]
  - name: complex
    endpoints: [{{name: c, api: openai, base_url: "{url}/v1", model: m, context_length: 8192}}]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, Double]]:
    double = fake_openai()
    double.scripts["m"] = Script(content="one two three four five six seven")
    tmp = tmp_path_factory.mktemp("fields")
    with running(double.app) as url:
        path = tmp / "portfolio.yaml"
        path.write_text(PORTFOLIO.format(url=url), encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp / "f.jsonl"))
        with running(app) as gw, openai.OpenAI(base_url=f"{gw}/v1", api_key="unused",
                                               max_retries=0) as client:
            yield client, double


def ask(client: openai.OpenAI, stream: bool, **fields: Any) -> None:
    messages = [{"role": "user", "content": "Say hello"}]
    if stream:
        with client.chat.completions.create(model="simple", messages=messages,  # type: ignore
                                            stream=True, **fields) as chunks:
            for _ in chunks:
                pass
    else:
        client.chat.completions.create(model="simple", messages=messages,  # type: ignore
                                       **fields)


@pytest.mark.parametrize("stream", [False, True])
def test_max_completion_tokens_is_also_sent_as_max_tokens(
        gateway: tuple[openai.OpenAI, Double], stream: bool) -> None:
    client, double = gateway
    ask(client, stream, max_completion_tokens=5)
    sent = double.requests[-1]
    assert sent["max_completion_tokens"] == 5 and sent["max_tokens"] == 5
    ask(client, stream, max_tokens=7, max_completion_tokens=5)  # the client's own max_tokens
    assert double.requests[-1]["max_tokens"] == 7
    ask(client, stream)
    assert "max_tokens" not in double.requests[-1]


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_without_top_logprobs_sends_top_logprobs_0(
        gateway: tuple[openai.OpenAI, Double], stream: bool) -> None:
    client, double = gateway
    ask(client, stream, logprobs=True)
    assert double.requests[-1]["top_logprobs"] == 0
    ask(client, stream, logprobs=True, top_logprobs=3)
    assert double.requests[-1]["top_logprobs"] == 3
    ask(client, stream, logprobs=False)
    assert "top_logprobs" not in double.requests[-1]


def test_openai_body_leaves_the_request_alone() -> None:
    endpoint = Endpoint(name="e", api="openai", base_url="http://127.0.0.1:1/v1", model="real")
    request = {"model": "auto", "messages": [], "max_completion_tokens": 9, "logprobs": True}
    body = openai_body(endpoint, request, stream=True)
    assert body == {**request, "model": "real", "stream": True, "max_tokens": 9,
                    "top_logprobs": 0}
    assert request == {"model": "auto", "messages": [], "max_completion_tokens": 9,
                       "logprobs": True}
    assert openai_body(endpoint, {"max_tokens": None, "max_completion_tokens": None},
                       stream=False) == {"max_tokens": None, "max_completion_tokens": None,
                                         "model": "real", "stream": False}


def test_the_ollama_path_is_not_affected() -> None:
    """``openai_body`` is for ``api: openai`` only; Ollama's mapping stays num_predict."""
    from classifier_service.gateway.ollama_wire import ollama_request

    endpoint = Endpoint(name="o", api="ollama", base_url="http://127.0.0.1:1", model="m")
    body = ollama_request(endpoint, {"messages": [], "max_completion_tokens": 4}, stream=False)
    assert body["options"]["num_predict"] == 4
