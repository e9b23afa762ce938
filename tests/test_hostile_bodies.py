"""Hostile bodies against every operation of the live OpenAPI document (issue 15, item 4).

For each operation with a JSON body (the gateways included: they document theirs), a body is
built from its schema, and each property (and each property of an array's or object's items)
is replaced in turn by a non-finite number, a lone surrogate, a deep nest and a huge string;
then hypothesis generates random JSON documents with hostile values at random places, and raw
hostile documents. The app must answer every one without a 500, with a well-formed error in
the shape of the API called; a body the policy refuses gets 400/422.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier_service.app import create_app
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.support.admin import ADMIN, ADMIN_KEY

JSON = {"content-type": "application/json", **ADMIN}
INF_TOKEN = "__tier_router_1e999__"
HUGE = "x" * 200_000


class Deep:
    """A value that serializes as arrays nested ``depth`` deep."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


POLICY = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"),
          "1e999": INF_TOKEN, "surrogate": "\ud800", "surrogate_tail": "ok \udfff",
          "deep": Deep(150)}
HOSTILE: dict[str, Any] = {**POLICY, "huge": HUGE}


def dumps(document: Any) -> str:
    def encode(value: Any) -> Any:
        if isinstance(value, Deep):
            return "@DEEP@"
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    text = json.dumps(encode(document))  # NaN/Infinity as Python writes them; \ud800 escaped
    text = text.replace(f'"{INF_TOKEN}"', "1e999")
    return text.replace('"@DEEP@"', "[" * 150 + "]" * 150)


def style(path: str) -> str:
    if path.startswith("/api/"):
        return "ollama"
    return "openai" if path == "/v1/chat/completions" else "detail"


def assert_well_formed(path: str, answer: Any) -> None:
    assert answer.status_code != 500, (path, answer.text[:300])
    body = answer.json()  # every answer is JSON that decodes (nothing unencodable echoed)
    if answer.status_code < 400:
        return
    kind = style(path)
    if answer.status_code == 413 and "detail" in body:  # the body limit, before any router
        assert isinstance(body["detail"], str)
    elif kind == "openai":
        assert isinstance(body["error"]["message"], str) and body["error"]["type"]
    elif kind == "ollama":
        assert isinstance(body["error"], str) and body["error"]
    else:
        assert isinstance(body["detail"], str | list) and body["detail"]
        if isinstance(body["detail"], list):
            assert all("loc" in e and "msg" in e for e in body["detail"])


@pytest.fixture(scope="module")
def app_client(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("hostile")
    settings = Settings(admin_keys=ADMIN_KEY, feedback_log=tmp / "f.jsonl",
                        outcomes_dir=tmp / "outcomes", feedback_rate=0)
    with TestClient(create_app(settings, runtime=runtime), raise_server_exceptions=False,
                    headers=ADMIN) as client:
        yield client


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(s, spec) for s in schema[key]]
            typed = [s for s in options if s.get("type") not in (None, "null")]
            return typed[0] if typed else options[0]
    return schema


def example(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value for ``schema``: enums' first member, required properties filled."""
    schema = _resolve(schema, spec)
    if "enum" in schema:
        return next((v for v in schema["enum"] if v not in ("", None)), schema["enum"][0])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: example(sub, spec, depth + 1) for name, sub in props.items()
                if depth < 3 and (name in schema.get("required", []) or depth == 0)}
    if kind == "array":
        return [example(schema.get("items", {}), spec, depth + 1)] if depth < 3 else []
    if kind == "integer":
        return 1
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return False
    return "hello"


def slots(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place a value sits: properties, and properties of array items."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from slots(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield (*prefix, i)
            yield from slots(value, (*prefix, i))


def replaced(document: Any, slot: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for part in slot[:-1]:
        target = target[part]
    target[slot[-1]] = value
    return copy


def operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, methods in spec["paths"].items():
        post = methods.get("post")
        content = (post or {}).get("requestBody", {}).get("content", {})
        if "application/json" in content:
            found.append((path.replace("{endpoint}", "llama3-8b").replace("{action}", "load"),
                          content["application/json"]["schema"]))
    return found


def test_every_property_of_every_operation_takes_each_hostile_value(
        app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    ops = operations(spec)
    assert {"/v1/route", "/v1/route/batch", "/v1/quality", "/v1/feedback",
            "/v1/feedback/batch", "/v1/chat/completions", "/api/chat", "/api/generate",
            "/v1/admin/reload"} <= {p for p, _ in ops}
    sent = 0
    for path, schema in ops:
        base = example(schema, spec)
        for slot in list(slots(base)):
            for name, value in HOSTILE.items():
                answer = app_client.post(path, content=dumps(replaced(base, slot, value)),
                                         headers=JSON)
                sent += 1
                assert_well_formed(path, answer)
                if name in POLICY:
                    assert answer.status_code in (400, 422), (path, slot, name, answer.text)
                    assert "\\ud800" not in answer.text or name.startswith("surrogate")
    assert sent > 300


RAW = ["NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"', "[" * 50_000,
       '{"a":' * 5_000 + "1" + "}" * 5_000, "9" * 5_000, '{"\\udfff": 1}']


@pytest.mark.parametrize("raw", RAW, ids=lambda r: r[:12])
def test_raw_hostile_documents(app_client: TestClient, raw: str) -> None:
    spec = app_client.get("/openapi.json").json()
    for path, _ in operations(spec):
        answer = app_client.post(path, content=raw, headers=JSON)
        assert_well_formed(path, answer)
        assert answer.status_code in (400, 422), (path, raw[:20], answer.status_code)


def test_a_huge_prompt_everywhere(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    for path, _ in operations(spec):
        answer = app_client.post(path, content='{"prompt": "' + "y" * 300_000 + '"}',
                                 headers=JSON)
        assert_well_formed(path, answer)


LEAF = st.one_of(st.sampled_from(list(HOSTILE.values())), st.integers(), st.booleans(),
                 st.none(), st.text(max_size=20),
                 st.floats(allow_nan=True, allow_infinity=True))
DOCUMENT = st.recursive(LEAF, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)
PATHS = ["/v1/route", "/v1/route/batch", "/v1/quality", "/v1/feedback", "/v1/feedback/batch",
         "/v1/chat/completions", "/api/chat", "/api/generate", "/v1/admin/reload"]


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), document=DOCUMENT,
       keys=st.lists(st.sampled_from(["prompt", "messages", "items", "records", "model",
                                      "min_tier", "response", "score", "tier", "portfolio"]),
                     max_size=3))
def test_generated_hostile_documents(app_client: TestClient, path: str, document: Any,
                                     keys: list[str]) -> None:
    body = {key: document for key in keys} if keys else document
    answer = app_client.post(path, content=dumps(body), headers=JSON)
    assert_well_formed(path, answer)


def test_the_fixture_writes_only_under_tmp(app_client: TestClient) -> None:
    settings_ = app_client.app.state.settings  # type: ignore[attr-defined]
    assert Path(settings_.feedback_log).parent.name.startswith("hostile")
