"""API keys, admin keys, exposure, body limits, CORS, logs and upstream keys."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from fastapi.testclient import TestClient

from classifier_service.api.auth import KeyRing
from classifier_service.api.openapi import without_security
from classifier_service.app import create_app
from classifier_service.errors import ConfigError, PortfolioError
from classifier_service.logs import JsonFormatter
from classifier_service.portfolio.model import load_portfolio
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings, parse_keys
from tests.doubles import fake_ollama, fake_openai, running
from tests.support.gateway import portfolio

API, ADMIN = "key-for-workflows", "key-for-operators"
ROUTE = {"prompt": "Is this review positive or negative? 'Great soup.'"}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(runtime: Runtime, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(api_keys=f"{API}, other-key", admin_keys=ADMIN,
                        feedback_log=tmp_path / "f.jsonl")
    with TestClient(create_app(settings, runtime=runtime)) as c:
        yield c


def test_parse_keys_and_keyring() -> None:
    assert parse_keys(" a, b,,c ,") == {"a", "b", "c"}
    assert parse_keys(None) == frozenset()
    ring = KeyRing({"a"}, {"z"})
    assert ring.enabled and ring.is_api_key("a") and ring.is_api_key("z")  # admin is API too
    assert not ring.is_api_key("b") and not ring.is_admin_key("a") and ring.is_admin_key("z")
    assert not KeyRing().enabled


@pytest.mark.parametrize("path,method", [("/v1/route", "post"), ("/v1/quality", "post"),
                                         ("/v1/portfolio", "get"), ("/v1/plan", "get"),
                                         ("/v1/feedback", "post"), ("/v1/models", "get"),
                                         ("/api/tags", "get"), ("/v1/route/batch", "post")])
def test_every_api_endpoint_needs_a_key(keyed: TestClient, path: str, method: str) -> None:
    for headers in ({}, bearer("wrong"), {"authorization": API}):
        r = keyed.request(method, path, json={}, headers=headers)
        assert r.status_code == 401, (path, headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


def test_a_valid_key_is_served_and_an_admin_key_counts_as_one(keyed: TestClient) -> None:
    for key in (API, "other-key", ADMIN):
        r = keyed.post("/v1/route", json=ROUTE, headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.json()["tier"] == "simple"


def test_health_readiness_metrics_and_openapi_stay_open(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_401_bodies_speak_each_apis_error_shape(keyed: TestClient) -> None:
    plain = keyed.post("/v1/route", json=ROUTE)
    assert "Authorization: Bearer" in plain.json()["detail"]
    oa = keyed.post("/v1/chat/completions", json={"model": "auto", "messages": []},
                    headers=bearer("wrong"))
    assert oa.status_code == 401
    assert oa.json()["error"]["code"] == "invalid_api_key"
    assert oa.json()["error"]["type"] == "invalid_request_error"
    ol = keyed.post("/api/chat", json={"model": "auto", "messages": []})
    assert ol.status_code == 401 and "API key" in ol.json()["error"]


def test_admin_endpoints_need_an_admin_key(keyed: TestClient) -> None:
    assert keyed.get("/v1/admin/models").status_code == 401
    assert keyed.get("/v1/admin/models", headers=bearer("wrong")).status_code == 401
    forbidden = keyed.get("/v1/admin/models", headers=bearer(API))
    assert forbidden.status_code == 403 and "admin key" in forbidden.json()["detail"]
    ok = keyed.post("/v1/admin/reload", json={}, headers=bearer(ADMIN))
    assert ok.status_code == 200, ok.text


def test_without_an_admin_key_admin_is_off_even_on_loopback(runtime: Runtime) -> None:
    app = create_app(Settings(), runtime=runtime)
    for client in (("10.1.2.3", 5000), ("127.0.0.1", 5000)):
        with TestClient(app, client=client) as c:
            for method, path in (("post", "/v1/admin/reload"), ("get", "/v1/admin/models"),
                                 ("post", "/v1/admin/models/llama3-8b/load")):
                r = c.request(method, path, json={})
                assert r.status_code == 403, (client, path)
                assert "set TIER_ROUTER_ADMIN_KEYS to turn them on" in r.json()["detail"]


def test_api_keys_without_admin_keys_turn_admin_off(runtime: Runtime) -> None:
    app = create_app(Settings(api_keys=API), runtime=runtime)
    with TestClient(app, client=("127.0.0.1", 5000)) as local:
        for headers in ({}, bearer("wrong"), bearer(API)):
            r = local.post("/v1/admin/reload", json={}, headers=headers)
            assert r.status_code == 403, headers
            assert "TIER_ROUTER_ADMIN_KEYS" in r.json()["detail"]
        assert local.get("/v1/admin/models", headers=bearer(API)).status_code == 403


def test_openapi_declares_bearer_auth(keyed: TestClient) -> None:
    spec = keyed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/route"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "401" in spec["paths"]["/v1/route"]["post"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_openapi_declares_no_security_without_keys(keyed: TestClient, client: TestClient) -> None:
    """With no key configured every operation is open, and the document says so; keyed, it
    differs from the open one in the security declarations only."""
    open_spec = client.get("/openapi.json").json()
    assert "securitySchemes" not in open_spec.get("components", {})
    operations = [op for item in open_spec["paths"].values() for op in item.values()]
    assert operations and all("security" not in op for op in operations)
    keyed_spec = keyed.get("/openapi.json").json()
    assert without_security(keyed_spec) == open_spec
    guarded = {(path, method) for path, item in keyed_spec["paths"].items()
               for method, op in item.items() if op.get("security") == [{"HTTPBearer": []}]}
    assert ("/v1/route", "post") in guarded and ("/v1/chat/completions", "post") in guarded
    assert ("/api/chat", "post") in guarded and ("/healthz", "get") not in guarded


def test_official_clients_send_the_key(tmp_path: Path) -> None:
    fake = fake_ollama()
    with running(fake.app) as o_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio(o_url, o_url, "http://127.0.0.1:9"), encoding="utf-8")
        app = create_app(Settings(portfolio=path, api_keys=API, feedback_log=tmp_path / "f"))
        with running(app) as url:
            with openai.OpenAI(base_url=f"{url}/v1", api_key=API, max_retries=0) as good:
                reply = good.chat.completions.create(
                    model="simple", messages=[{"role": "user", "content": "Label: 'nice'"}])
            assert reply.choices[0].message.content
            with openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0) as bad, \
                    pytest.raises(openai.AuthenticationError):
                bad.chat.completions.create(model="auto",
                                            messages=[{"role": "user", "content": "hi"}])
            hi = [{"role": "user", "content": "hi"}]
            with ollama.Client(host=url, headers=bearer(API)) as client:
                assert client.chat(model="simple", messages=hi).message.content
            with ollama.Client(host=url) as anonymous, \
                    pytest.raises(ollama.ResponseError) as err:
                anonymous.chat(model="simple", messages=hi)
            assert err.value.status_code == 401


def test_non_loopback_without_keys_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="TIER_ROUTER_API_KEYS"):
        Settings(host="0.0.0.0").check_exposure()
    Settings(host="0.0.0.0", api_keys=API).check_exposure()
    Settings(host="0.0.0.0", allow_unauthenticated=True).check_exposure()
    Settings(host="127.0.0.1").check_exposure()
    Settings(host="::1").check_exposure()
    done = subprocess.run([sys.executable, "-m", "classifier_service", "serve", "--host",
                           "0.0.0.0", "--port", "1"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "--allow-unauthenticated" in done.stderr and "Traceback" not in done.stderr


def test_bodies_over_the_limit_get_413(runtime: Runtime) -> None:
    app = create_app(Settings(max_body_bytes=2000), runtime=runtime)
    with TestClient(app) as c:
        assert c.post("/v1/route", json=ROUTE).status_code == 200
        big = c.post("/v1/route", json={"prompt": "x" * 5000})
        assert big.status_code == 413 and "TIER_ROUTER_MAX_BODY_BYTES" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no content-length: chunked transfer
            yield b'{"prompt": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        chunked = c.post("/v1/route", content=chunks(),
                         headers={"content-type": "application/json"})
        assert chunked.status_code == 413

        def small() -> Iterator[bytes]:
            yield b'{"prompt": '
            yield b'"Translate hello to French"}'

        ok = c.post("/v1/route", content=small(), headers={"content-type": "application/json"})
        assert ok.status_code == 200, ok.text


def test_cors_is_off_by_default_and_on_for_listed_origins(runtime: Runtime) -> None:
    preflight = {"origin": "https://flows.example", "access-control-request-method": "POST"}
    with TestClient(create_app(Settings(), runtime=runtime)) as c:
        r = c.options("/v1/route", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    app = create_app(Settings(cors_origins="https://flows.example"), runtime=runtime)
    with TestClient(app) as c:
        r = c.options("/v1/route", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://flows.example"
        other = c.options("/v1/route", headers={**preflight, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        with_route_headers = c.options("/v1/chat/completions", headers={
            **preflight, "access-control-request-headers":
                "authorization, x-tier-router-max-tier, x-tier-router-session"})
        assert with_route_headers.status_code == 200, with_route_headers.text
        answer = c.post("/v1/route", json=ROUTE, headers={"origin": "https://flows.example"})
        assert "x-tier-router-tier" in answer.headers["access-control-expose-headers"]


def test_logs_are_json_and_free_of_prompts_unless_enabled(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Classify this confidential memo about Project Falcon"
    for enabled in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tier_router"), \
                TestClient(create_app(Settings(log_prompts=enabled), runtime=runtime)) as c:
            assert c.post("/v1/route", json={"prompt": secret}).status_code == 200
        routed = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "route"]
        assert len(routed) == 1
        line = json.loads(JsonFormatter().format(routed[0]))
        assert line["event"] == "route" and line["tier"] and line["request_id"]
        assert (secret in json.dumps(line)) is enabled


def test_upstream_keys_come_from_the_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = portfolio("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:9")
    leaked = tmp_path / "leaked.yaml"
    leaked.write_text(text.replace('model: big-model,', 'model: big-model, api_key: sk-1,'),
                      encoding="utf-8")
    with pytest.raises(PortfolioError, match="api_key_env"):
        load_portfolio(leaked)

    fake = fake_openai()
    with running(fake.app) as a_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio("http://127.0.0.1:9", a_url, "http://127.0.0.1:9").replace(
            "model: big-model,", "model: big-model, api_key_env: BIG_KEY,"), encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f"))
        with running(app) as url:
            ask = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}
            missing = httpx.post(f"{url}/v1/chat/completions", json=ask, timeout=10)
            assert missing.status_code == 503
            assert "BIG_KEY" in missing.json()["error"]["message"]
            monkeypatch.setenv("BIG_KEY", "sk-upstream")
            app.state.gateway._cooldown.clear()
            r = httpx.post(f"{url}/v1/chat/completions", json=ask, timeout=10)
            assert r.status_code == 200, r.text
            assert fake.headers[-1]["authorization"] == "Bearer sk-upstream"


def test_a_request_cannot_name_a_server(tmp_path: Path) -> None:
    """Endpoints come from the portfolio only: a URL as `model` is an unknown model."""
    fake = fake_openai()
    with running(fake.app) as a_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio("http://127.0.0.1:9", a_url, "http://127.0.0.1:9"),
                        encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f"))
        with running(app) as url:
            for model in (f"{a_url}/v1", "http://169.254.169.254/latest", "big-model"):
                r = httpx.post(f"{url}/v1/chat/completions", timeout=10, json={
                    "model": model, "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 404, (model, r.text)
            r = httpx.post(f"{url}/api/chat", timeout=10, json={
                "model": f"{a_url}/v1", "stream": False,
                "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 404
    assert fake.requests == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_that_trickles_in_gets_408(runtime: Runtime, chunked: bool) -> None:
    """A client cannot hold a request open by sending its body slowly (slowloris)."""
    app = create_app(Settings(body_timeout_s=0.5), runtime=runtime)
    with running(app) as url:
        port = int(url.rsplit(":", 1)[1])
        framing = (b"transfer-encoding: chunked\r\n\r\n5\r\n{\"pro\r\n" if chunked
                   else b"content-length: 100\r\n\r\n{\"pro")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/route HTTP/1.1\r\nhost: x\r\n"
                         b"content-type: application/json\r\n" + framing)
            answer = sock.recv(4096).decode()  # sent nothing more: the server answers anyway
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "TIER_ROUTER_BODY_TIMEOUT_S" in answer


def test_gateway_answers_are_logged_without_text_unless_enabled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_openai()
    with running(fake.app) as a_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio("http://127.0.0.1:9", a_url, "http://127.0.0.1:9"),
                        encoding="utf-8")
        for enabled in (False, True):
            caplog.clear()
            app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f",
                                      log_prompts=enabled))
            with caplog.at_level(logging.INFO, logger="tier_router"), running(app) as url:
                r = httpx.post(f"{url}/v1/chat/completions", timeout=10, json={
                    "model": "big", "messages": [{"role": "user", "content": "Secret plan X"}]})
                assert r.status_code == 200
            lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records
                     if getattr(rec, "fields", {}).get("event") == "gateway"]
            assert len(lines) == 1
            assert lines[0]["endpoint"] == "big" and lines[0]["route"] == "big:answered"
            text = json.dumps(lines[0])
            assert ("Secret plan X" in text) is enabled
            assert ("The answer is 42." in text) is enabled


def test_a_bug_is_a_plain_500_logged_without_its_message(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(), runtime=runtime)

    @app.get("/boom")
    async def boom(text: str) -> None:
        raise ValueError(f"could not route {text!r}")  # a message quoting user text

    with caplog.at_level(logging.INFO), TestClient(app) as c:
        r = c.get("/boom", params={"text": "Classify this confidential memo"})
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    crashes = [rec for rec in caplog.records if "unexpected ValueError" in rec.getMessage()]
    assert len(crashes) == 1 and "boom" in crashes[0].getMessage()
    ours = [rec.getMessage() for rec in caplog.records
            if rec.name.startswith(("tier_router", "uvicorn"))]
    assert ours and not any("confidential" in m for m in ours)
