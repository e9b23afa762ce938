"""The VRAM monitor: reading GPU memory (NVML, nvidia-smi, none), alert states, log lines
and the gauges on ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time as clock
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.errors import GpuReadError
from classifier_service.fleet import gpu_monitor
from classifier_service.fleet.gpu_monitor import GpuMonitor, GpuReading, Snapshot, parse_nvidia_smi
from classifier_service.portfolio.model import Gpu
from classifier_service.settings import Settings
from tests.doubles import FakeNvidiaSmi, running
from tests.support.metrics import value

MIB = 1024 * 1024


def test_parse_nvidia_smi_csv() -> None:
    text = ("0, NVIDIA GeForce RTX 4090, 20480, 24564\n"
            "1, NVIDIA H200, 1, 143771\n")
    readings, skipped = parse_nvidia_smi(text)
    assert readings == [GpuReading(0, "NVIDIA GeForce RTX 4090", 20480 * MIB, 24564 * MIB),
                        GpuReading(1, "NVIDIA H200", MIB, 143771 * MIB)]
    assert skipped == []
    assert readings[0].used_share == pytest.approx(20480 / 24564)


def test_parse_nvidia_smi_skips_what_does_not_parse() -> None:
    text = ("\n"
            "1, Tesla T4, 100, 15360\n"           # out of order: sorted by index
            "0, Weird, Name, With Commas, 5, 10\n"  # commas in the name are kept
            "2, NVIDIA A100, [N/A], [N/A]\n"      # MIG or unsupported: not numbers
            "3, Broken, 10, 0\n"                  # no memory
            "4, Odd, nan, inf\n"
            "Failed to initialize NVML: Driver/library version mismatch\n"
            "garbage\n")
    readings, skipped = parse_nvidia_smi(text)
    assert [(r.index, r.name) for r in readings] == [(0, "Weird, Name, With Commas"),
                                                     (1, "Tesla T4")]
    assert len(skipped) == 5 and skipped[-1] == "garbage"


def test_nvidia_smi_through_path(fake_smi: FakeNvidiaSmi) -> None:
    fake_smi.gpus((0, "NVIDIA L4", 4096, 23034))
    snapshot = gpu_monitor.read("nvidia-smi")
    assert snapshot == Snapshot("nvidia-smi", (GpuReading(0, "NVIDIA L4", 4096 * MIB,
                                                          23034 * MIB),))
    assert fake_smi.calls == ["--query-gpu=index,name,memory.used,memory.total "
                              "--format=csv,noheader,nounits"]


@pytest.mark.parametrize(("output", "code", "why"), [
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9,
     "nvidia-smi exited with 9: NVIDIA-SMI has failed"),
    ("this is not csv\n\x00\x01\n", 0, "no GPU line that parses (e.g. 'this is not csv')"),
    ("", 0, "no GPU line that parses (no output)"),
])
def test_nvidia_smi_failures_mean_no_gpu(fake_smi: FakeNvidiaSmi, output: str, code: int,
                                         why: str) -> None:
    fake_smi.show(output, code)
    snapshot = gpu_monitor.read("nvidia-smi")
    assert snapshot.source == "none" and not snapshot.up and snapshot.gpus == ()
    assert why in snapshot.detail


def test_nvidia_smi_that_hangs_is_cut_off(fake_smi: FakeNvidiaSmi) -> None:
    fake_smi.show("0, GPU, 1, 2\n", delay_s=10)
    with pytest.raises(GpuReadError, match=r"longer than 0\.3 s"):
        gpu_monitor.read_nvidia_smi(timeout_s=0.3)


def test_missing_nvidia_smi_is_the_no_gpu_state(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    snapshot = gpu_monitor.read("nvidia-smi")
    assert snapshot == Snapshot("none", detail="no GPU: nvidia-smi not found on PATH")
    assert gpu_monitor.read("off").detail.startswith("the VRAM monitor is off")


class FakeNvml(types.ModuleType):
    """``pynvml`` as the monitor uses it (NVML's own camelCase names): two GPUs, or an
    NVMLError from ``nvmlInit``."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail: bool) -> None:
        super().__init__("pynvml")
        self.fail = fail
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.fail:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        return b"Tesla V100" if handle else "NVIDIA A10"  # old bindings answer bytes

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return types.SimpleNamespace(used=(handle + 1) * 10**9, total=24 * 10**9,
                                     free=0)


def test_nvml_first_then_nvidia_smi(fake_smi: FakeNvidiaSmi,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi.gpus((0, "from smi", 1, 2))
    nvml = FakeNvml(fail=False)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    snapshot = gpu_monitor.read("auto")
    assert snapshot.source == "nvml" and nvml.shut_down
    assert snapshot.gpus == (GpuReading(0, "NVIDIA A10", 10**9, 24 * 10**9),
                             GpuReading(1, "Tesla V100", 2 * 10**9, 24 * 10**9))
    assert fake_smi.calls == []
    # NVML installed but no driver: an NVMLError means "not available", nvidia-smi answers
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail=True))
    assert gpu_monitor.read("auto").source == "nvidia-smi"
    assert gpu_monitor.read("nvml").detail == "no GPU: NVML: Driver Not Loaded"


def test_gpus_map_to_the_portfolio_in_order() -> None:
    snapshot = Snapshot("nvidia-smi", (GpuReading(0, "A", 95, 100), GpuReading(1, "B", 85, 100),
                                       GpuReading(2, "C", 95, 100)))
    gpus = {"big": Gpu(memory_gb=80, alert_threshold=0.8), "small": Gpu(memory_gb=24)}
    found = gpu_monitor.states(snapshot, gpus)
    assert [(s.portfolio_gpu, s.threshold, s.alert) for s in found] == [
        ("big", 0.8, True), ("small", 0.9, False), (None, 0.9, True)]
    assert gpu_monitor.state_for(snapshot, gpus, "small") == found[1]
    assert gpu_monitor.state_for(snapshot, gpus, None) is None  # three GPUs: which one?
    one = Snapshot("nvml", (GpuReading(0, "A", 1, 100),))
    assert gpu_monitor.state_for(one, {}, None) is not None


def test_crossing_logs_a_warning_once_and_info_when_back(
        fake_smi: FakeNvidiaSmi, caplog: pytest.LogCaptureFixture) -> None:
    monitor = GpuMonitor("nvidia-smi", lambda: {"gpu0": Gpu(memory_gb=24,
                                                            alert_threshold=0.8)})

    def poll(used_mib: int) -> list[logging.LogRecord]:
        fake_smi.gpus((0, "NVIDIA L4", used_mib, 10000))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tier_router"):
            asyncio.run(monitor.poll())
        return [r for r in caplog.records if "VRAM" in r.getMessage()
                and "reading" not in r.getMessage()]

    assert poll(7000) == []
    above = poll(8500)
    assert [r.levelno for r in above] == [logging.WARNING]
    assert above[0].getMessage() == (
        "VRAM alert: GPU 0 (gpu0, NVIDIA L4): 8.9 of 10.5 GB used (85%), above the alert "
        "threshold of 80%")
    assert poll(9000) == []  # still above: no new warning
    below = poll(1000)
    assert [r.levelno for r in below] == [logging.INFO]
    assert "back below the alert threshold of 80%" in below[0].getMessage()
    assert monitor.states[0].alert is False


def test_gauges_on_metrics(fake_smi: FakeNvidiaSmi, tmp_path: Path) -> None:
    fake_smi.gpus((0, "NVIDIA L4", 20000, 23034), (1, "NVIDIA T4", 100, 15360))
    settings = Settings(feedback_log=tmp_path / "f.jsonl", gpu_source="nvidia-smi",
                        gpu_poll_s=0.1)
    app = create_app(settings)  # the bundled portfolio: one GPU, gpu0, threshold 0.9

    def metrics(url: str, until: Any) -> str:
        deadline = clock.monotonic() + 10
        text = httpx.get(f"{url}/metrics").text
        while not until(text) and clock.monotonic() < deadline:
            clock.sleep(0.05)
            text = httpx.get(f"{url}/metrics").text
        return text

    with running(app) as url:
        text = metrics(url, lambda t: value(t, "tier_router_gpu_monitor_up",
                                            source="nvidia-smi") == 1)
        assert value(text, "tier_router_gpu_memory_used_bytes", gpu="0") == 20000 * MIB
        assert value(text, "tier_router_gpu_memory_total_bytes", gpu="0") == 23034 * MIB
        assert value(text, "tier_router_gpu_memory_alert_threshold", gpu="0") == 0.9
        assert value(text, "tier_router_gpu_memory_alert", gpu="0") == 0  # 86.8%
        assert value(text, "tier_router_gpu_memory_alert", gpu="1") == 0
        assert value(text, "tier_router_gpu_info", gpu="0", model_name="NVIDIA L4",
                     portfolio_gpu="gpu0") == 1
        assert value(text, "tier_router_gpu_info", gpu="1", model_name="NVIDIA T4",
                     portfolio_gpu="") == 1
        fake_smi.gpus((0, "NVIDIA L4", 22000, 23034))
        text = metrics(url, lambda t: value(t, "tier_router_gpu_memory_alert", gpu="0") == 1)
        assert value(text, "tier_router_gpu_memory_used_bytes", gpu="0") == 22000 * MIB
        assert value(text, "tier_router_gpu_memory_used_bytes", gpu="1") == 0  # gone
        fake_smi.show("", code=9)
        text = metrics(url, lambda t: value(t, "tier_router_gpu_monitor_up", source="none")
                       == 0 and "tier_router_gpu_memory_used_bytes{" not in t)
        assert "tier_router_gpu_monitor_up{source=\"none\"} 0.0" in text


def test_bad_monitor_settings_are_named_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIER_ROUTER_GPU_SOURCE", "cuda")
    monkeypatch.setenv("TIER_ROUTER_GPU_POLL_S", "0")
    assert main(["models", "load", "llama3-8b"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["tier-router: error: TIER_ROUTER_GPU_SOURCE: Input should be 'auto', "
                   "'nvml', 'nvidia-smi' or 'off'",
                   "tier-router: error: TIER_ROUTER_GPU_POLL_S: Input should be greater than 0"]
