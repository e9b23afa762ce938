"""Faults and their documented outcomes (README, "Faults and what happens").

Backends that die are real processes (``tests.backend_process``) killed with SIGKILL while a
request is in flight; the reload faults run against a real ``tier-router serve --workers 2``.
Each test bounds every wait, so a hang fails instead of blocking; none asserts a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifier_service.app import create_app
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.settings import Settings
from tests.backend_process import BackendProcess, backend_process
from tests.conftest import portfolio_yaml
from tests.doubles import Double, Script, fake_ollama, running
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.processes import fresh_versions, serve, stop, wait_for

SIMPLE = "Is this review positive or negative? 'Great phone.'"
LONG_ANSWER = " ".join(f"word{i}" for i in range(200))


def portfolio(first: tuple[str, str], second: tuple[str, str], steady_url: str,
              timeout_s: float = 30) -> str:
    """simple: ``first`` then ``second`` ((api, url) each); medium and complex: ``steady``."""
    def base(api: str, url: str) -> str:
        return f"{url}/v1" if api == "openai" else url

    return f"""
version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: first, api: {first[0]}, base_url: "{base(*first)}", model: first,
         context_length: 2048}}
      - {{name: second, api: {second[0]}, base_url: "{base(*second)}", model: second,
         context_length: 2048}}
  - name: medium
    endpoints:
      - {{name: mid, api: ollama, base_url: "{steady_url}", model: mid, context_length: 4096}}
  - name: complex
    endpoints:
      - {{name: big, api: ollama, base_url: "{steady_url}", model: big, context_length: 8192}}
policy: {{failover_cooldown_s: 60, backend_timeout_s: {timeout_s}}}
"""


def gateway(path: Path, text: str) -> Any:
    path.write_text(text, encoding="utf-8")
    return running(create_app(Settings(portfolio=path, feedback_log=path.with_suffix(".log"))))


def chat(url: str, *, model: str = "simple", max_tier: str | None = None) -> httpx.Response:
    headers = {"x-tier-router-max-tier": max_tier} if max_tier else {}
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": SIMPLE}]})


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


@pytest.fixture
def steady() -> Iterator[Double]:
    double = fake_ollama()
    with running(double.app) as url:
        double.url = url
        yield double


@pytest.mark.parametrize("stream", [False, True])
def test_backend_killed_before_answering_fails_over_then_503(
    tmp_path: Path, steady: Double, stream: bool
) -> None:
    steady.scripts["mid"] = Script(content="Positive, clearly.")
    with backend_process("ollama", "first", delay_s=600) as doomed, \
            backend_process("ollama", "second", content="Positive") as second, \
            gateway(tmp_path / "p.yaml", portfolio(("ollama", doomed.url),
                                                   ("ollama", second.url), steady.url)) as url:
        def ask() -> httpx.Response:
            if not stream:
                return chat(url)
            return httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
                "model": "simple", "stream": True,
                "messages": [{"role": "user", "content": SIMPLE}]})

        thread, result = in_background(ask)
        doomed.wait_for_request()
        doomed.kill()
        thread.join(timeout=60)
        assert result, "the request hung after its backend died"
        answer = result[0]
        assert answer.status_code == 200, answer.text
        route = answer.headers["x-tier-router-route"]
        assert route.startswith("first:failed") and "second:answered" in route
        if stream:
            assert answer.text.rstrip().endswith("data: [DONE]") and "Positive" in answer.text
        else:
            info = answer.json()["tier_router"]
            assert info["endpoint"] == "second"
            assert info["route"][0]["detail"][0].startswith("unreachable")

        # the whole simple tier dead: a 503 in OpenAI's error format, naming each endpoint
        second.kill()
        down = chat(url, max_tier="simple")
        assert down.status_code == 503
        error = down.json()["error"]
        assert error["type"] == "api_error" and "no endpoint could answer" in error["message"]
        assert "first" in error["message"] and "second: unreachable" in error["message"]
        # without the bound, the chain goes on up to the next tier
        up = chat(url)
        assert up.status_code == 200 and up.json()["tier_router"]["endpoint"] == "mid"


def test_backend_killed_mid_stream_ends_the_stream_cleanly(
    tmp_path: Path, steady: Double
) -> None:
    steady.scripts["second"] = Script(content="Positive")
    with backend_process("openai", "first", content=LONG_ANSWER, chunk_delay_s=0.2) as doomed, \
            gateway(tmp_path / "p.yaml", portfolio(("openai", doomed.url),
                                                   ("ollama", steady.url), steady.url)) as url:
        events: list[str] = []
        with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=60, json={
                "model": "simple", "stream": True,
                "messages": [{"role": "user", "content": SIMPLE}]}) as response:
            assert response.status_code == 200
            assert response.headers["x-tier-router-endpoint"] == "first"
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                if len(events) == 3:  # the stream has started: kill its backend
                    doomed.kill()
        assert events[-1] == "[DONE]"
        last = json.loads(events[-2])
        assert last["error"]["type"] == "api_error" and "first" in last["error"]["message"]
        words = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                        for e in events[:-2])
        assert words and LONG_ANSWER.startswith(words) and words != LONG_ANSWER
        # the next request fails over past the dead backend
        after = chat(url)
        assert after.status_code == 200
        assert after.json()["tier_router"]["endpoint"] == "second"


def test_backends_slower_than_the_timeout_fail_over_then_503(
    tmp_path: Path, steady: Double
) -> None:
    # failing over from one slow endpoint to a quick one: test_gateway.py
    # ::test_slow_backend_times_out_and_fails_over; here every endpoint in reach is slow
    for model in ("first", "second"):
        steady.scripts[model] = Script(content="late", delay_s=4)
    steady.scripts["mid"] = Script(content="Positive, clearly.")
    text = portfolio(("ollama", steady.url), ("ollama", steady.url), steady.url, timeout_s=1)
    with gateway(tmp_path / "p.yaml", text) as url:
        down = chat(url, max_tier="simple")
        assert down.status_code == 503
        message = down.json()["error"]["message"]
        assert "first: timed out" in message and "second: timed out" in message
        # both now cool down; without the bound the medium tier answers
        up = chat(url)
        assert up.status_code == 200
        assert up.headers["x-tier-router-route"] == (
            "first:cooling_down,second:cooling_down,mid:answered")


def test_reload_faults_keep_the_old_model_serving_in_every_worker(tmp_path: Path) -> None:
    # the same refusals through the admin endpoint in-process: test_reload.py
    # ::test_broken_artifact_is_refused_and_the_old_model_keeps_serving
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    served = tmp_path / "portfolio.yaml"
    good_portfolio = portfolio_yaml()
    served.write_text(good_portfolio, encoding="utf-8")
    log = tmp_path / "serve.log"
    proc, url = serve("--workers", "2", "--model", str(model), "--portfolio", str(served),
                      "--feedback-log", str(tmp_path / "f.jsonl"), log=log,
                      env={"TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY})

    def refusals() -> int:
        return log.read_text().count("SIGHUP reload refused, the previous model keeps serving")

    def still_serving(version: set[str]) -> None:
        assert fresh_versions(url, 12) == version
        assert httpx.post(f"{url}/v1/route", json={"prompt": "hi"}, timeout=10).status_code == 200

    try:
        # both workers up (a SIGHUP before a worker installs its handler would end it)
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 2)
        before = fresh_versions(url, 1)
        good_model = (model / "model.joblib").read_bytes()

        # 1. the model file replaced with garbage, in place
        (model / "model.joblib").write_bytes(b"garbage")
        refused = httpx.post(f"{url}/v1/admin/reload", headers=ADMIN, timeout=30)
        assert refused.status_code == 422
        assert "checksum mismatch" in refused.json()["detail"][0]["msg"]
        os.kill(proc.pid, signal.SIGHUP)  # the parent passes it on to both workers
        assert wait_for(lambda: refusals() >= 2)
        still_serving(before)

        # 2. an invalid portfolio, in place
        (model / "model.joblib").write_bytes(good_model)
        served.write_text(good_portfolio.replace("{endpoint: coder-7b}", "{endpoint: nope}"),
                          encoding="utf-8")
        refused = httpx.post(f"{url}/v1/admin/reload", headers=ADMIN, timeout=30)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "portfolio"]
        assert "not a valid portfolio" in refused.json()["detail"][0]["msg"]
        assert "nope" not in refused.text  # the file's contents are not quoted
        assert "unknown endpoint 'nope'" in log.read_text()  # the log says where
        os.kill(proc.pid, signal.SIGHUP)
        assert wait_for(lambda: refusals() >= 4)
        still_serving(before)

        # 3. fixed files reload fine
        served.write_text(good_portfolio, encoding="utf-8")
        assert httpx.post(f"{url}/v1/admin/reload", headers=ADMIN, timeout=30).status_code == 200
        still_serving(before)
    finally:
        stop(proc)


def test_backend_process_helper_kills_for_real() -> None:
    """The fault tests rely on a kill closing the backend's port."""
    with backend_process("openai", "m") as backend:
        assert httpx.get(f"{backend.url}/v1/models", timeout=5).status_code == 200
        backend.kill()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{backend.url}/v1/models", timeout=5)
    assert isinstance(backend, BackendProcess) and backend.proc.returncode == -signal.SIGKILL
