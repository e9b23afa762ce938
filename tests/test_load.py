"""Load: 64 concurrent clients for 60 s against ``POST /v1/route`` on a real server process.

Asserts outcomes only: no request fails, and the server's memory (RSS, read with psutil)
stays flat between the end of a warm-up and the end of the run. Throughput and latency are
printed (``-s`` shows them) and measured properly by the benchmarks, never asserted.
Marked ``load``: part of the plain ``python -m pytest`` run; ``-m "not load"`` skips it.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import serve, stop

CLIENTS = 64
DURATION_S = 60.0
WARMUP_S = 10.0
MAX_GROWTH_MB = 20.0

TEMPLATES = (
    "Translate '{w}' into French.",
    "Is this review positive or negative? 'The {w} arrived broken.'",
    "Summarize the history of {w} in three paragraphs for a museum leaflet.",
    "Write a Python function that sorts a list of {w} records by date, with tests.",
    "Compare the economic effects of {w} on small towns and large cities, step by step.",
    "Extract every date from this note: 'Meet about {w} on 3 May, then on 12 June.'",
    "Draft a polite email declining the {w} invitation.",
    "Why do {w} matter to ecologists?",
)
WORDS = ("lanterns", "otters", "tariffs", "glaciers", "compilers", "sonnets", "ferries",
         "vaccines", "ledgers", "satellites", "orchards", "protocols")


@dataclass
class Tally:
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


async def client(url: str, n: int, stop_at: float, tally: Tally) -> None:
    """One client on its own connection, one request after another until ``stop_at``."""
    rng = random.Random(n)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        i = 0
        while time.monotonic() < stop_at:
            word = rng.choice(WORDS)
            prompt = rng.choice(TEMPLATES).format(w=f"{word}-{n}-{i}" if i % 3 else word)
            start = time.perf_counter()
            try:
                response = await http.post("/v1/route", json={"prompt": prompt})
            except httpx.HTTPError as exc:
                tally.errors.append(f"client {n}: {exc!r}")
                continue
            tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code == 200 and response.json().get("tier"):
                tally.ok += 1
            else:
                tally.errors.append(f"client {n}: {response.status_code} {response.text[:100]}")
            i += 1


async def run_load(url: str, server: psutil.Process) -> tuple[Tally, float, float]:
    """Drive the clients; RSS (MB) at the end of the warm-up and at the end of the run."""
    tally = Tally()
    begin = time.monotonic()
    tasks = [asyncio.create_task(client(url, n, begin + DURATION_S, tally))
             for n in range(CLIENTS)]
    await asyncio.sleep(WARMUP_S)
    warm_rss = server.memory_info().rss / 1e6
    await asyncio.gather(*tasks)
    return tally, warm_rss, server.memory_info().rss / 1e6


@pytest.mark.load
def test_64_clients_for_60_seconds_no_errors_and_flat_memory(tmp_path: Path) -> None:
    proc, url = serve("--log-level", "warning", "--feedback-log", str(tmp_path / "f.jsonl"),
                      log=tmp_path / "serve.log")
    try:
        server = psutil.Process(proc.pid)
        tally, warm_rss, end_rss = asyncio.run(run_load(url, server))
        assert proc.poll() is None, "the server died under load"
    finally:
        stop(proc)
    latencies = sorted(tally.latencies_ms)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"\n{CLIENTS} clients, {DURATION_S:.0f} s: {tally.ok} routed "
          f"({tally.ok / DURATION_S:.0f}/s), {len(tally.errors)} errors, "
          f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms (client and server share the machine); "
          f"server RSS {warm_rss:.1f} MB after warm-up, {end_rss:.1f} MB at the end")
    assert tally.errors == []
    assert tally.ok > CLIENTS * 10  # the run did happen
    assert end_rss - warm_rss < MAX_GROWTH_MB
