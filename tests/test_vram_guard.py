"""The preload guard: a load that would cross the GPU's alert threshold is refused (admin
endpoint, CLI, scheduler); one under it goes ahead; no reading or a resident model skips it."""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.fleet.gpu_monitor import GpuReading, GpuState
from classifier_service.fleet.vram import plan_endpoint
from classifier_service.fleet.vram_guard import decide
from classifier_service.portfolio.model import load_portfolio
from classifier_service.settings import Settings
from tests.doubles import Double, FakeNvidiaSmi, fake_ollama, running
from tests.support.admin import ADMIN, ADMIN_KEY

MIB = 1024 * 1024
TOTAL_MIB = 24576  # 25.8 GB; the alert line at 0.9 is 23.2 GB


def portfolio_text(url: str, schedules: str = "[]") -> str:
    return f"""
version: 1
gpus:
  gpu0: {{memory_gb: 24, alert_threshold: 0.9}}
tiers:
  - name: simple
    endpoints:
      - {{name: small, api: ollama, base_url: "{url}", model: "llama3:8b", params_b: 8,
         quantization: q4_K_M, context_length: 2048, gpu: gpu0, keep_alive: "-1"}}
  - name: medium
    endpoints:
      - {{name: mid, api: ollama, base_url: "{url}", model: "llama2:13b", params_b: 13,
         quantization: q4_K_M, context_length: 4096, gpu: gpu0}}
  - name: complex
    endpoints:
      - {{name: big, api: ollama, base_url: "{url}", model: big, gpu: gpu0}}
schedules: {schedules}
"""


@pytest.fixture
def setup(tmp_path: Path, fake_smi: FakeNvidiaSmi,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Double, Path]]:
    monkeypatch.setenv("TIER_ROUTER_GPU_SOURCE", "nvidia-smi")
    double = fake_ollama()
    with running(double.app) as url:
        double.url = url
        path = tmp_path / "p.yaml"
        path.write_text(portfolio_text(url), encoding="utf-8")
        yield double, path


def mid_estimate_gb(path: Path) -> float:
    return plan_endpoint(load_portfolio(path).endpoint("mid"), sessions=1).total_gb


def gpu(used_gb: float, total_gb: float = 24.0, threshold: float = 0.9) -> GpuState:
    return GpuState(GpuReading(0, "NVIDIA L4", int(used_gb * 1e9), int(total_gb * 1e9)),
                    "gpu0", threshold)


def test_decide_refuses_over_the_line_and_allows_under_it(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(portfolio_text("http://127.0.0.1:9"), encoding="utf-8")
    portfolio = load_portfolio(path)
    mid = plan_endpoint(portfolio.endpoint("mid"), sessions=1)
    assert mid.total_gb == pytest.approx(11.74, abs=0.01)  # 8.38 weights + 3.36 KV at 4096
    refused = decide(mid, gpu(10.0), resident=False)  # 21.74 > 21.6
    assert refused.outcome == "refused" and not refused.allowed
    assert refused.detail == (
        "refusing to load mid: GPU 0 (gpu0, NVIDIA L4): 10.0 of 24.0 GB used (42%); mid needs "
        "about 11.7 GB (weights 8.4 + KV cache 3.4 at 4096 tokens), 21.7 GB in all, against "
        "the alert threshold of 90% (21.6 GB)")
    allowed = decide(mid, gpu(9.8), resident=False)
    assert allowed.outcome == "allowed" and allowed.detail.startswith("VRAM check passed: ")
    assert decide(mid, gpu(9.8, threshold=0.8), resident=False).outcome == "refused"
    assert decide(mid, gpu(23.0), resident=True).detail == (
        "VRAM check skipped: mid is already loaded")
    assert decide(mid, None, resident=False, no_gpu_detail="no GPU: nvidia-smi not found on "
                  "PATH").detail == "VRAM check skipped: no GPU: nvidia-smi not found on PATH"
    unsized = plan_endpoint(portfolio.endpoint("big"), sessions=1)
    assert decide(unsized, gpu(23.9), resident=False).outcome == "skipped"


def test_admin_load_refused_over_the_threshold(setup: tuple[Double, Path], tmp_path: Path,
                                               fake_smi: FakeNvidiaSmi) -> None:
    double, path = setup
    estimate = mid_estimate_gb(path)
    fake_smi.gpus((0, "NVIDIA L4", 12000, TOTAL_MIB))  # 12.6 + 11.7 > 23.2
    app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                              admin_keys=ADMIN_KEY))
    with TestClient(app, client=("127.0.0.1", 5000), headers=ADMIN) as client:
        refused = client.post("/v1/admin/models/mid/load")
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert detail.startswith("refusing to load mid: GPU 0 (gpu0, NVIDIA L4): 12.6 of "
                                 "25.8 GB used (49%); ")
        assert f"about {estimate:.1f} GB" in detail
        assert "alert threshold of 90% (23.2 GB)" in detail
        assert "llama2:13b" not in double.loaded and double.requests == []
        fake_smi.gpus((0, "NVIDIA L4", 8000, TOTAL_MIB))  # 8.4 + 11.7 < 23.2
        allowed = client.post("/v1/admin/models/mid/load")
        assert allowed.status_code == 200
        assert allowed.json()["vram_check"]["outcome"] == "allowed"
        assert "llama2:13b" in double.loaded
        # resident now: the check is skipped, however full the GPU
        fake_smi.gpus((0, "NVIDIA L4", 24000, TOTAL_MIB))
        again = client.post("/v1/admin/models/mid/load").json()["vram_check"]
        assert again == {"outcome": "skipped",
                         "detail": "VRAM check skipped: mid is already loaded"}
        # no reading: skipped, saying why
        fake_smi.show("garbage", code=3)
        cold = client.post("/v1/admin/models/small/load").json()["vram_check"]
        assert cold["outcome"] == "skipped"
        assert cold["detail"].startswith("VRAM check skipped: no GPU: nvidia-smi exited with 3")


def test_cli_load_refused_with_exit_2(setup: tuple[Double, Path], fake_smi: FakeNvidiaSmi,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    double, path = setup
    fake_smi.gpus((0, "NVIDIA L4", 12000, TOTAL_MIB))
    assert main(["models", "load", "mid", "--portfolio", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tier-router: error: refusing to load mid: GPU 0 (gpu0, NVIDIA L4): "
                          "12.6 of 25.8 GB used")
    assert "alert threshold of 90% (23.2 GB)" in err
    assert "llama2:13b" not in double.loaded
    fake_smi.gpus((0, "NVIDIA L4", 8000, TOTAL_MIB))
    assert main(["models", "load", "mid", "--portfolio", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VRAM check passed: GPU 0 (gpu0, NVIDIA L4): 8.4 of 25.8 GB used")
    assert out.rstrip().endswith("loaded mid") and "llama2:13b" in double.loaded


def test_scheduler_preload_refused_and_logged(setup: tuple[Double, Path], tmp_path: Path,
                                              fake_smi: FakeNvidiaSmi,
                                              caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    double, path = setup
    # re-reads, then refuses
    monkeypatch.setattr("classifier_service.fleet.scheduler.SETTLE_S", 0.5)
    path.write_text(portfolio_text(double.url, '[{name: always, start: "00:00", end: "00:00", '
                                               "load: [mid, small]}]"), encoding="utf-8")
    fake_smi.gpus((0, "NVIDIA L4", 12000, TOTAL_MIB))  # room for small (5.5 GB), not mid
    settings = Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl", scheduler=True)
    with caplog.at_level(logging.INFO, logger="tier_router"), TestClient(create_app(settings)):
        deadline = clock.monotonic() + 30
        while clock.monotonic() < deadline and not any(  # mid is refused, then small loads
                "loaded small" in r.getMessage() for r in caplog.records):
            clock.sleep(0.1)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(
        "schedule always: could not load mid: refusing to load mid: GPU 0 (gpu0, NVIDIA L4)")
    assert double.loaded == {"llama3:8b"}
    assert any(r.getMessage().startswith("schedule always: loaded small (VRAM check passed")
               for r in caplog.records)
