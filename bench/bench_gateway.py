"""Added latency of the OpenAI-compatible gateway over calling the backend directly.

    python -m bench.bench_gateway [--requests N]     (from the repository root)

A wire-format test double (the fake OpenAI-compatible server of the test suite, answering at
once) serves as the backend, in its own process; tier-router runs as `tier-router serve
--log-level warning` (uvicorn, loopback, its own process). One client, keep-alive,
sequential non-streaming requests with distinct prompts, in rounds of three: direct to the
backend, through the gateway with ``model`` set to the tier (routing + forwarding + quality
check), and with ``auto`` (plus classification). The overhead is the difference of the
medians. Target: p50
overhead <= 2 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.service_process import tier_router_server
from tests.backend_process import backend_process

PORTFOLIO = """
version: 1
tiers:
  - name: simple
    endpoints: [{{name: small, api: openai, base_url: "{url}/v1", model: small}}]
  - name: medium
    endpoints: [{{name: mid, api: openai, base_url: "{url}/v1", model: small}}]
  - name: complex
    endpoints: [{{name: big, api: openai, base_url: "{url}/v1", model: small}}]
"""


def timed(client: httpx.Client, paths: list[tuple[str, str]], n: int) -> list[list[float]]:
    """Milliseconds per request for each (url, model) path, ``n`` rounds, interleaved.

    Each round sends one request on every path, so that the machine's speed, which drifts on
    a shared virtual machine, weighs on every path alike: the overhead is a difference of
    medians taken under the same conditions."""
    samples: list[list[float]] = [[] for _ in paths]
    for i in range(n):
        for (url, model), out in zip(paths, samples, strict=True):
            body = {"model": model, "messages": [
                {"role": "user", "content": f"Is review {i} positive or negative? 'Lovely, {i}'"}]}
            start = time.perf_counter()
            client.post(url, json=body).raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
    return samples


@dataclass(frozen=True)
class GatewayTimings:
    """Milliseconds per request of each path, in request order."""

    direct: list[float]
    tier: list[float]
    auto: list[float]

    def rows(self) -> list[tuple[str, list[float]]]:
        return [("direct to the backend", self.direct),
                ("gateway, model = tier", self.tier),
                ("gateway, model = auto (classifies)", self.auto)]


def measure_gateway(requests: int = 1000) -> GatewayTimings:
    """Time ``requests`` sequential requests on each path, interleaved (after a warm-up).

    Client, tier-router and backend each run in their own process, as they do in production
    (in one process they would share one interpreter lock and inflate every figure)."""
    with backend_process("openai", "small", content="Positive") as backend, \
            tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(PORTFOLIO.format(url=backend.url), encoding="utf-8")
        with tier_router_server(portfolio=path) as gateway, \
                httpx.Client(timeout=10) as client:
            direct_url = f"{backend.url}/v1/chat/completions"
            via_url = f"{gateway}/v1/chat/completions"
            paths = [(direct_url, "small"), (via_url, "simple"), (via_url, "auto")]
            timed(client, paths, 100)
            direct, tier, auto = timed(client, paths, requests)
    return GatewayTimings(direct=direct, tier=tier, auto=auto)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    timings = measure_gateway(args.requests)
    base = statistics.median(timings.direct)
    print(f"{args.requests} sequential requests each, the three paths interleaved; "
          "backend answers at once")
    print(f"{'path':<40}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50':>14}")
    for name, samples in timings.rows():
        p50 = statistics.median(samples)
        p99 = sorted(samples)[int(0.99 * len(samples))]
        print(f"{name:<40}{p50:>9.2f}{p99:>9.2f}{p50 - base:>14.2f}")
    print("target: gateway overhead p50 <= 2 ms")


if __name__ == "__main__":
    main()
