"""Model residency through Ollama's API: status, load, unload (CLI and admin endpoints)."""

from __future__ import annotations

import json
import time as clock
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.settings import Settings
from tests.doubles import Double, fake_ollama, running
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.gateway import portfolio


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Double, Path]]:
    double = fake_ollama()
    with running(double.app) as url:
        double.url = url
        path = tmp_path / "p.yaml"
        path.write_text(portfolio(url, "http://127.0.0.1:9", "http://127.0.0.1:9"),
                        encoding="utf-8")
        yield double, path


def test_the_double_speaks_ollamas_ps(setup: tuple[Double, Path]) -> None:
    double, _ = setup
    double.loaded.add("small-a")
    with ollama.Client(host=double.url) as client:
        assert [m.model for m in client.ps().models] == ["small-a"]


def test_admin_status_load_unload(setup: tuple[Double, Path], tmp_path: Path) -> None:
    double, path = setup
    app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                              admin_keys=ADMIN_KEY))
    with TestClient(app, client=("127.0.0.1", 5000), headers=ADMIN) as client:
        models = client.get("/v1/admin/models").json()["models"]
        states = {m["endpoint"]: m["state"] for m in models}
        assert states == {"small-a": "not_loaded", "small-b": "not_loaded", "mid": "not_loaded",
                          "big": "unknown", "ghost": "unknown"}
        assert client.post("/v1/admin/models/small-a/load").json()["status"] == "ok"
        # preloaded for its keep_alive ("-1": for good) at its own context length
        assert double.requests[-1] == {"model": "small-a", "keep_alive": -1,
                                       "options": {"num_ctx": 2048}}
        loaded = {m["endpoint"]: m for m in client.get("/v1/admin/models").json()["models"]}
        assert loaded["small-a"]["state"] == "loaded" and loaded["small-a"]["vram_gb"] == 4.9
        client.post("/v1/admin/models/small-b/load")
        assert double.requests[-1]["keep_alive"] == "10m"
        client.post("/v1/admin/models/small-a/unload")
        assert double.requests[-1] == {"model": "small-a", "keep_alive": 0}
        assert "small-a" not in double.loaded
        refused = client.post("/v1/admin/models/big/load")
        assert refused.status_code == 422 and "OpenAI-compatible" in refused.text
        assert client.post("/v1/admin/models/nope/load").status_code == 422
        assert client.post("/v1/admin/models/small-a/explode").status_code == 422


def test_models_command(setup: tuple[Double, Path], capsys: pytest.CaptureFixture[str]) -> None:
    double, path = setup
    assert main(["models", "load", "mid", "--portfolio", str(path)]) == 0
    assert "mid" in double.loaded
    assert main(["models", "status", "--portfolio", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    rows = {r["endpoint"]: r["state"] for r in json.loads(out[out.index("["):])}
    assert rows["mid"] == "loaded" and rows["small-a"] == "not_loaded"
    assert main(["models", "unload", "mid", "--portfolio", str(path)]) == 0
    assert "mid" not in double.loaded
    assert main(["models", "load", "--portfolio", str(path)]) == 2
    assert "name the endpoint" in capsys.readouterr().err


def test_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(portfolio("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9"),
                    encoding="utf-8")
    assert main(["models", "status", "--portfolio", str(path)]) == 0
    assert "unreachable" in capsys.readouterr().out
    assert main(["models", "load", "mid", "--portfolio", str(path)]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_untagged_names_match_ollamas_latest_tag(tmp_path: Path) -> None:
    double = fake_ollama()
    double.loaded.add("llama3:latest")
    with running(double.app) as url:
        path = tmp_path / "p.yaml"
        path.write_text(f"""
version: 1
tiers:
  - name: simple
    endpoints: [{{name: a, api: ollama, base_url: "{url}", model: Llama3}}]
  - name: medium
    endpoints: [{{name: b, api: ollama, base_url: "{url}", model: "llama3:8b"}}]
  - name: complex
    endpoints: [{{name: c, api: ollama, base_url: "{url}", model: other}}]
""", encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                              admin_keys=ADMIN_KEY))
        with TestClient(app, client=("127.0.0.1", 5000), headers=ADMIN) as client:
            states = {m["endpoint"]: m["state"]
                      for m in client.get("/v1/admin/models").json()["models"]}
    assert states == {"a": "loaded", "b": "not_loaded", "c": "not_loaded"}


def test_residency_aware_routing_is_opt_in(setup: tuple[Double, Path], tmp_path: Path) -> None:
    double, path = setup
    double.loaded.add("mid")
    text = path.read_text(encoding="utf-8").replace(
        "policy: {", "policy: {prefer_resident: true, residency_refresh_s: 0.1, "
        "confidence_threshold: 1.0, ")
    path.write_text(text, encoding="utf-8")
    app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                              admin_keys=ADMIN_KEY))
    with TestClient(app) as client:
        deadline = clock.monotonic() + 10
        while clock.monotonic() < deadline and "mid" not in app.state.residency.loaded:
            clock.sleep(0.05)
        data = client.post("/v1/route", json={
            "prompt": "Is this review positive or negative? 'Great phone.'"}).json()
    # threshold 1.0 makes every decision unsure; the warm medium model wins over the cold small
    assert data["reason"] == "residency" and data["endpoint"]["name"] == "mid"
    assert "not loaded" in data["reason_detail"]
