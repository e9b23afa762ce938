"""The body policy: non-finite numbers, lone surrogates and deep nesting are refused before any
handler runs, in the error shape of the API called, naming the field (issue 15, item 1)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.support.admin import ADMIN, ADMIN_KEY

JSON = {"content-type": "application/json"}
NAN_CASES = [
    ("/v1/route", '{"prompt": NaN}', ["body", "prompt"]),
    ("/v1/route", '{"prompt": "hi", "min_tier": Infinity}', ["body", "min_tier"]),
    ("/v1/route", '{"prompt": "hi", "agent": -Infinity}', ["body", "agent"]),
    ("/v1/route", '{"prompt": "hi", "max_tier": 1e999}', ["body", "max_tier"]),
    ("/v1/route/batch", '{"items": [{"prompt": "a"}, {"prompt": NaN}]}',
     ["body", "items", 1, "prompt"]),
    ("/v1/quality", '{"prompt": "a", "response": "b", "avg_logprob": NaN}',
     ["body", "avg_logprob"]),
    ("/v1/quality", '{"prompt": "a", "response": "b", "max_tokens": Infinity}',
     ["body", "max_tokens"]),
    ("/v1/feedback", '{"request_id": "x", "escalated": NaN, "final_tier": "simple"}',
     ["body", "escalated"]),
    ("/v1/feedback", '{"request_id": "x", "final_tier": NaN}', ["body", "final_tier"]),
    ("/v1/feedback", '{"prompt": "\\udfff", "tier": "simple", "score": 1}', ["body", "prompt"]),
    ("/v1/route", '{"prompt": "hi", "min_tier": "\\ud800"}', ["body", "min_tier"]),
    ("/v1/route", '{"prompt": "hi", "\\ud800": 1}', ["body", "\\ud800"]),
]


@pytest.mark.parametrize(("path", "body", "loc"), NAN_CASES)
def test_non_finite_and_surrogates_are_422_naming_the_field(
        client: TestClient, path: str, body: str, loc: list[object]) -> None:
    answer = client.post(path, content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == loc
    assert error["input"] is None  # never echoed


GATEWAY_CASES = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud800"}]},
     "messages.0.content"),
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": "\udfff"},
                                           {"role": "user", "content": "hi"}]},
     "messages.0.content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "temperature": float("nan")}, "temperature"),
    ("/api/chat", {"model": "auto", "messages": [{"role": "user", "content": "\ud800"}]},
     "messages.0.content"),
    ("/api/generate", {"model": "auto", "prompt": "hi", "options": {"seed": float("inf")}},
     "options.seed"),
]


def _raw(body: object) -> str:
    # json.dumps writes NaN/Infinity and escapes lone surrogates, as an attacker's client would
    return json.dumps(body)


@pytest.mark.parametrize(("path", "body", "field"), GATEWAY_CASES)
def test_gateways_refuse_in_their_own_shape(client: TestClient, path: str, body: object,
                                            field: str) -> None:
    answer = client.post(path, content=_raw(body), headers=JSON)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert message.startswith(f"{field}: ")
    if path.startswith("/v1/"):
        assert error["param"] == field and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/v1/route", "/v1/route/batch", "/v1/quality",
                                  "/v1/feedback", "/v1/chat/completions", "/api/chat",
                                  "/api/generate", "/v1/feedback/batch"])
@pytest.mark.parametrize("body", ["[" * 50_000, '{"a": ' * 200 + "1" + "}" * 200])
def test_deep_nesting_is_400_on_every_operation(client: TestClient, path: str,
                                                body: str) -> None:
    answer = client.post(path, content=body, headers=JSON)
    assert answer.status_code == 400, answer.text
    text = answer.text
    assert "nests deeper than 100 levels" in text


def test_unescaped_surrogate_bytes_are_400_not_utf8(client: TestClient) -> None:
    raw = b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'
    answer = client.post("/v1/chat/completions", content=raw, headers=JSON)
    assert answer.status_code == 400
    assert "not UTF-8" in answer.json()["error"]["message"]
    answer = client.post("/api/chat", content=raw, headers=JSON)
    assert answer.status_code == 400 and "not UTF-8" in answer.json()["error"]


def test_a_huge_integer_is_400(client: TestClient) -> None:
    answer = client.post("/v1/chat/completions", content='{"messages": [], "n": ' + "9" * 5000
                         + "}", headers=JSON)
    assert answer.status_code == 400
    assert "too many digits" in answer.json()["error"]["message"]


def test_ordinary_bodies_pass(client: TestClient) -> None:
    assert client.post("/v1/route", json={"prompt": "Summarise this: ✓ 😀"}).status_code == 200
    assert client.post("/v1/route", content="not json", headers=JSON).status_code == 422


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_non_ascii_tier_headers_are_422_not_500(client: TestClient, path: str) -> None:
    """Header values arrive as latin-1 (no surrogate can reach a tier), but bytes that would
    be one in UTF-8 must still be a clean 422 in the gateway's shape."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post(path, json=body,
                         headers=[(b"x-tier-router-min-tier", b"\xed\xa0\x80")])
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "min_tier" in (error["message"] if path.startswith("/v1/") else error)


def test_a_percent_encoded_surrogate_in_a_path_is_422(runtime: Runtime) -> None:
    app = create_app(Settings(admin_keys=ADMIN_KEY), runtime=runtime)
    with TestClient(app, headers=ADMIN) as c:
        answer = c.post("/v1/admin/models/%ED%A0%80/load")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["path", "endpoint"]
