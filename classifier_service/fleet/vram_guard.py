"""The preload guard: refuse to load a model that would push its GPU over the alert line.

Before ``tier-router models load``, ``POST /v1/admin/models/{endpoint}/load`` and the
scheduler's preloads, the model's size is estimated with the VRAM planner
(:func:`classifier_service.fleet.vram.plan_endpoint`: weights + KV cache at the endpoint's context,
one session) and compared with its GPU's memory as read now
(:mod:`classifier_service.fleet.gpu_monitor`). The load is refused when

    used + estimate > alert_threshold x total

and goes ahead, saying why the check was skipped, when there is no reading of its GPU, the
model is already resident (Ollama's ``/api/ps``), it has no ``params_b`` or it runs on the CPU.
:func:`decide` is the pure decision; :func:`guarded_load` gathers its inputs and loads.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from classifier_service.errors import PreloadRefused
from classifier_service.fleet import gpu_monitor, residency
from classifier_service.fleet.vram import ModelPlan, plan_endpoint
from classifier_service.portfolio.model import Endpoint, Portfolio

Outcome = Literal["allowed", "refused", "skipped"]
__all__ = ["PreloadCheck", "PreloadRefused", "check", "decide", "guarded_load"]


@dataclass(frozen=True)
class PreloadCheck:
    outcome: Outcome
    detail: str

    @property
    def allowed(self) -> bool:
        return self.outcome != "refused"


def decide(model: ModelPlan, gpu: gpu_monitor.GpuState | None, *, resident: bool,
           no_gpu_detail: str = "no GPU reading") -> PreloadCheck:
    """Whether ``model`` may be loaded onto ``gpu`` as read now (GB = 10^9 bytes)."""
    name = model.endpoint
    if resident:
        return PreloadCheck("skipped", f"VRAM check skipped: {name} is already loaded")
    if model.device == "cpu":
        return PreloadCheck("skipped", f"VRAM check skipped: {name} is planned on the CPU")
    if not model.sized:
        return PreloadCheck("skipped", f"VRAM check skipped: {name} has no params_b to "
                            "estimate its size from")
    if gpu is None:
        return PreloadCheck("skipped", f"VRAM check skipped: {no_gpu_detail}")
    used = gpu.reading.used_bytes / 1e9
    total = gpu.reading.total_bytes / 1e9
    line = gpu.threshold * total
    after = used + model.total_gb
    figures = (f"{gpu.describe()}; {name} needs about {model.total_gb:.1f} GB (weights "
               f"{model.weights_gb:.1f} + KV cache {model.kv_cache_gb:.1f} at "
               f"{model.context_length} tokens), {after:.1f} GB in all, against the alert "
               f"threshold of {gpu.threshold:.0%} ({line:.1f} GB)")
    if after > line:
        return PreloadCheck("refused", f"refusing to load {name}: {figures}")
    return PreloadCheck("allowed", f"VRAM check passed: {figures}")


async def check(portfolio: Portfolio, endpoint: Endpoint, client: httpx.AsyncClient,
                source: gpu_monitor.GpuSource) -> PreloadCheck:
    """Read the GPU (in a thread) and the model's residency, then :func:`decide`."""
    loaded, snapshot = await asyncio.gather(
        residency.loaded_state(endpoint, client),
        asyncio.to_thread(gpu_monitor.read, source))
    gpu = gpu_monitor.state_for(snapshot, portfolio.gpus, endpoint.gpu)
    if snapshot.up and gpu is None:
        why = (f"{endpoint.name}'s gpu {endpoint.gpu!r} has no GPU in the reading"
               if endpoint.gpu else f"{endpoint.name} names no gpu and this machine has "
               f"{len(snapshot.gpus)} GPUs")
    else:
        why = snapshot.detail
    return decide(plan_endpoint(endpoint, sessions=1), gpu, resident=loaded == "loaded",
                  no_gpu_detail=why)


async def guarded_load(portfolio: Portfolio, endpoint: Endpoint, client: httpx.AsyncClient,
                       source: gpu_monitor.GpuSource, *, settle_s: float = 0.0
                       ) -> PreloadCheck:
    """Check, then load; raises :class:`PreloadRefused` when the check refuses.

    ``settle_s`` > 0 re-reads once a second for that long before refusing (the scheduler
    unloads before it loads, and a GPU frees its memory a moment after the unload).
    """
    deadline = time.monotonic() + settle_s
    verdict = await check(portfolio, endpoint, client, source)
    while not verdict.allowed and time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        verdict = await check(portfolio, endpoint, client, source)
    if not verdict.allowed:
        raise PreloadRefused(verdict.detail)
    await residency.load(endpoint, client)
    return verdict
