"""The VRAM monitor: GPU memory of this machine, an alert state, and Prometheus gauges.

Sources, tried in this order with ``TIER_ROUTER_GPU_SOURCE=auto`` (the default):

1. NVML through ``nvidia-ml-py`` (module ``pynvml``; optional, imported only when read). Not
   installed, or an ``NVMLError`` (no driver, no device): not available, try the next;
2. ``nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader,nounits``
   (the command found on ``PATH``, at most :data:`SMI_TIMEOUT_S`; memory in MiB). Lines that
   do not parse are skipped; no line that parses, a non-zero exit or a timeout: not available;
3. neither: the "no GPU" state (``source`` ``none``, no readings, ``detail`` says why).

``nvml`` or ``nvidia-smi`` use that source only, ``off`` reads nothing.

GPUs map to the portfolio's ``gpus`` in order: the GPU with the lowest index is the first
entry of ``gpus``, the next the second, and so on (``CUDA_VISIBLE_DEVICES`` does not change
what NVML and ``nvidia-smi`` list). Each GPU alerts above its portfolio entry's
``alert_threshold``; a GPU without an entry uses :data:`DEFAULT_THRESHOLD`.

:class:`GpuMonitor` polls in a thread (``nvidia-smi`` never blocks the event loop) every
``TIER_ROUTER_GPU_POLL_S`` seconds, logs a WARNING when a GPU crosses above its threshold and
an INFO when it is back below, and is a Prometheus collector (:meth:`GpuMonitor.collect`):

- ``tier_router_gpu_memory_used_bytes{gpu}``: memory in use, bytes (``gpu``: the index);
- ``tier_router_gpu_memory_total_bytes{gpu}``: memory of the card, bytes;
- ``tier_router_gpu_memory_alert_threshold{gpu}``: the alert threshold, a share of the total;
- ``tier_router_gpu_memory_alert{gpu}``: 1 while used / total is above the threshold, else 0;
- ``tier_router_gpu_info{gpu,model_name,portfolio_gpu}``: 1 per GPU, naming its model and the
  portfolio GPU it maps to (empty when none);
- ``tier_router_gpu_monitor_up{source}``: 1 when the last poll read a GPU, else 0; ``source``
  is ``nvml``, ``nvidia-smi`` or ``none``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from classifier_service.errors import GpuReadError
from classifier_service.portfolio.model import Gpu

log = logging.getLogger("tier_router")

GpuSource = Literal["auto", "nvml", "nvidia-smi", "off"]
Source = Literal["nvml", "nvidia-smi", "none"]
DEFAULT_THRESHOLD = 0.9
SMI_TIMEOUT_S = 5.0
SMI_QUERY = ("--query-gpu=index,name,memory.used,memory.total", "--format=csv,noheader,nounits")
MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuReading:
    """One GPU as read: its index, model name, and memory in bytes."""

    index: int
    name: str
    used_bytes: int
    total_bytes: int

    @property
    def used_share(self) -> float:
        return self.used_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class Snapshot:
    """What one read found: the source that answered, its GPUs, and why when none."""

    source: Source
    gpus: tuple[GpuReading, ...] = ()
    detail: str = ""

    @property
    def up(self) -> bool:
        return bool(self.gpus)


@dataclass(frozen=True)
class GpuState:
    """A reading with what the portfolio says about it."""

    reading: GpuReading
    portfolio_gpu: str | None
    threshold: float

    @property
    def alert(self) -> bool:
        return self.reading.used_share > self.threshold

    def describe(self) -> str:
        """``GPU 0 (gpu0, NVIDIA L4): 20.1 of 24.0 GB used (84%)``, GB = 10^9 bytes."""
        r = self.reading
        names = ", ".join(n for n in (self.portfolio_gpu, r.name) if n)
        return (f"GPU {r.index} ({names}): {r.used_bytes / 1e9:.1f} of "
                f"{r.total_bytes / 1e9:.1f} GB used ({r.used_share:.0%})")


# --- reading -------------------------------------------------------------------------------


def parse_nvidia_smi(text: str) -> tuple[list[GpuReading], list[str]]:
    """The GPUs in ``nvidia-smi``'s CSV (MiB, no header, no units), and the lines skipped.

    A line is ``index, name, used, total``; the name may itself hold commas. Lines with too
    few fields, non-numbers (``[N/A]``, ``[Not Supported]``) or a total of 0 are skipped.
    """
    readings: list[GpuReading] = []
    skipped: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            if len(fields) < 4:
                raise ValueError
            index, used, total = int(fields[0]), float(fields[-2]), float(fields[-1])
            if index < 0 or not (0 <= used < math.inf and 0 < total < math.inf):
                raise ValueError  # NaN, infinities and negatives fail these comparisons
        except ValueError:
            skipped.append(line.strip()[:120])
            continue
        readings.append(GpuReading(index, ", ".join(fields[1:-2]), round(used * MIB),
                                   round(total * MIB)))
    return sorted(readings, key=lambda g: g.index), skipped


def read_nvidia_smi(timeout_s: float = SMI_TIMEOUT_S) -> tuple[GpuReading, ...]:
    """Run ``nvidia-smi`` from ``PATH``; raises :class:`GpuReadError` saying why not."""
    command = shutil.which("nvidia-smi")
    if command is None:
        raise GpuReadError("nvidia-smi not found on PATH")
    try:
        done = subprocess.run([command, *SMI_QUERY], capture_output=True, text=True,
                              timeout=timeout_s, check=False, errors="replace")
    except subprocess.TimeoutExpired:
        raise GpuReadError(f"nvidia-smi took longer than {timeout_s:g} s") from None
    except OSError as exc:
        raise GpuReadError(f"nvidia-smi could not run: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise GpuReadError(f"nvidia-smi exited with {done.returncode}"
                           + (f": {why[0][:200]}" if why else ""))
    readings, skipped = parse_nvidia_smi(done.stdout)
    if not readings:
        sample = f" (e.g. {skipped[0]!r})" if skipped else " (no output)"
        raise GpuReadError(f"nvidia-smi printed no GPU line that parses{sample}")
    if skipped:
        log.debug("nvidia-smi lines skipped: %s", skipped)
    return tuple(readings)


def read_nvml() -> tuple[GpuReading, ...]:
    """Read every GPU through NVML; raises :class:`GpuReadError` when it is not available."""
    try:
        pynvml: Any = importlib.import_module("pynvml")
    except ImportError:
        raise GpuReadError("nvidia-ml-py is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise GpuReadError(f"NVML: {exc}") from None
    try:
        readings = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(GpuReading(
                index, name.decode(errors="replace") if isinstance(name, bytes) else str(name),
                int(memory.used), int(memory.total)))
    except pynvml.NVMLError as exc:
        raise GpuReadError(f"NVML: {exc}") from None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    if not readings:
        raise GpuReadError("NVML lists no GPU")
    return tuple(readings)


READERS: dict[Source, Callable[[], tuple[GpuReading, ...]]] = {
    "nvml": read_nvml, "nvidia-smi": read_nvidia_smi}


def read(source: GpuSource = "auto") -> Snapshot:
    """GPU memory from ``source`` (``auto``: NVML, else ``nvidia-smi``); never raises."""
    if source == "off":
        return Snapshot("none", detail="the VRAM monitor is off (TIER_ROUTER_GPU_SOURCE=off)")
    order: tuple[Source, ...] = ("nvml", "nvidia-smi") if source == "auto" else (source,)
    reasons = []
    for name in order:
        try:
            return Snapshot(name, READERS[name]())
        except GpuReadError as exc:
            reasons.append(str(exc))
    return Snapshot("none", detail="no GPU: " + "; ".join(reasons))


def states(snapshot: Snapshot, gpus: Mapping[str, Gpu]) -> list[GpuState]:
    """Each reading with its portfolio GPU (by position) and alert threshold."""
    names = list(gpus)
    result = []
    for position, reading in enumerate(snapshot.gpus):
        name = names[position] if position < len(names) else None
        threshold = gpus[name].alert_threshold if name else DEFAULT_THRESHOLD
        result.append(GpuState(reading, name, threshold))
    return result


def state_for(snapshot: Snapshot, gpus: Mapping[str, Gpu], portfolio_gpu: str | None
              ) -> GpuState | None:
    """The GPU a portfolio entry maps to (with no entry named: the only GPU, if just one)."""
    found = states(snapshot, gpus)
    if portfolio_gpu is None:
        return found[0] if len(found) == 1 else None
    return next((s for s in found if s.portfolio_gpu == portfolio_gpu), None)


# --- monitoring ----------------------------------------------------------------------------


def crossing(was_alert: bool | None, state: GpuState) -> str | None:
    """``"above"`` when a GPU goes into alert (also at the first reading), ``"below"`` when it
    leaves it, else None."""
    if state.alert and not was_alert:
        return "above"
    if not state.alert and was_alert:
        return "below"
    return None


class GpuMonitor:
    """Polls GPU memory in the background; a Prometheus collector of the last reading."""

    def __init__(self, source: GpuSource, gpus: Callable[[], Mapping[str, Gpu]],
                 reader: Callable[[GpuSource], Snapshot] = read) -> None:
        self.source = source
        self._gpus = gpus  # read at each poll, so a reloaded portfolio's thresholds apply
        self._reader = reader
        self.snapshot = Snapshot("none", detail="not read yet")
        self.states: list[GpuState] = []
        self._alerting: dict[int, bool] = {}
        self._polled = False

    async def poll(self) -> Snapshot:
        """Read once in a worker thread, update the alert states and log crossings."""
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(None, self._reader, self.source)
        if not self._polled or (snapshot.up, snapshot.source) != (self.snapshot.up,
                                                                   self.snapshot.source):
            if snapshot.up:
                log.info("VRAM monitor: reading %d GPU(s) through %s", len(snapshot.gpus),
                         snapshot.source)
            else:
                log.info("VRAM monitor: %s", snapshot.detail)
        self.snapshot, self._polled = snapshot, True
        self.states = states(snapshot, self._gpus())
        for state in self.states:
            index = state.reading.index
            change = crossing(self._alerting.get(index), state)
            if change == "above":
                log.warning("VRAM alert: %s, above the alert threshold of %.0f%%",
                            state.describe(), state.threshold * 100)
            elif change == "below":
                log.info("VRAM back below the alert threshold of %.0f%%: %s",
                         state.threshold * 100, state.describe())
            self._alerting[index] = state.alert
        return snapshot

    async def run(self, interval_s: float) -> None:
        """Poll every ``interval_s`` until cancelled; a failing poll is logged, not fatal."""
        while True:
            try:
                await self.poll()
            except Exception:
                log.exception("VRAM monitor: poll failed")
            await asyncio.sleep(interval_s)

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily("tier_router_gpu_memory_used_bytes",
                                 "GPU memory in use, bytes.", labels=["gpu"])
        total = GaugeMetricFamily("tier_router_gpu_memory_total_bytes",
                                  "GPU memory of the card, bytes.", labels=["gpu"])
        threshold = GaugeMetricFamily("tier_router_gpu_memory_alert_threshold",
                                      "Share of GPU memory above which it alerts.",
                                      labels=["gpu"])
        alert = GaugeMetricFamily("tier_router_gpu_memory_alert",
                                  "1 while used / total memory is above the alert threshold.",
                                  labels=["gpu"])
        info = GaugeMetricFamily("tier_router_gpu_info",
                                 "1 per GPU: its model name and portfolio GPU.",
                                 labels=["gpu", "model_name", "portfolio_gpu"])
        for state in self.states:
            gpu = str(state.reading.index)
            used.add_metric([gpu], state.reading.used_bytes)
            total.add_metric([gpu], state.reading.total_bytes)
            threshold.add_metric([gpu], state.threshold)
            alert.add_metric([gpu], 1.0 if state.alert else 0.0)
            info.add_metric([gpu, state.reading.name, state.portfolio_gpu or ""], 1.0)
        up = GaugeMetricFamily("tier_router_gpu_monitor_up",
                               "1 when the last poll read GPU memory, else 0.",
                               labels=["source"])
        up.add_metric([self.snapshot.source], 1.0 if self.snapshot.up else 0.0)
        yield from (used, total, threshold, alert, info, up)
