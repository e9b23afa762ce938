"""`tier-router serve` as a user starts it: a real uvicorn process on loopback."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from classifier_service.routing.artifact import bundled_model_dir
from tests.conftest import free_port, portfolio_yaml
from tests.support.server import CLI, start, stop


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url = start()
    yield url
    stop(proc)


def test_serve_routes_over_real_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        data = c.post("/v1/route", json={"prompt": "translate 'thank you' into french"}).json()
        assert data["tier"] == "simple"
        assert data["endpoint"]["base_url"] == "http://127.0.0.1:11434"
        batch = c.post("/v1/route/batch",
                       json={"items": [{"prompt": "why do cats purr"}, {"prompt": " "}]}).json()
        assert batch["results"][0]["tier"] == "medium"
        assert batch["results"][1]["error"]["status"] == 422
        assert c.get("/healthz").status_code == 200
        spec = c.get("/openapi.json").json()
        assert spec["servers"][0]["url"] == server
        bad = c.post("/v1/route", content=b"{nope", headers={"content-type": "application/json"})
        assert bad.status_code == 422


def test_serve_takes_portfolio_and_model_flags(tmp_path: Path) -> None:
    portfolio = tmp_path / "mine.yaml"
    portfolio.write_text(portfolio_yaml(max_prompt_chars=100), encoding="utf-8")
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    proc, url = start("--portfolio", str(portfolio), "--model", str(model), "--host", "127.0.0.1")
    try:
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["portfolio"] == str(portfolio)
        too_long = httpx.post(f"{url}/v1/route", json={"prompt": "x" * 101})
        assert too_long.status_code == 413
    finally:
        stop(proc)


def test_invalid_portfolio_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    portfolio = tmp_path / "broken.yaml"
    portfolio.write_text(portfolio_yaml().replace("{endpoint: coder-7b}", "{endpoint: nope}"),
                         encoding="utf-8")
    result = subprocess.run([*CLI, "serve", "--port", str(free_port()), "--portfolio",
                             str(portfolio)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{portfolio}: agents.code-review.endpoint: unknown endpoint 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_model_stops_start_up(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    (model / "model.joblib").write_bytes(b"garbage")
    result = subprocess.run([*CLI, "serve", "--port", str(free_port()), "--model", str(model)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "checksum mismatch" in result.stderr
    assert "Traceback" not in result.stderr
