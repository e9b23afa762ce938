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

    python -m bench.bench_gateway --backend-url http://127.0.0.1:8081/v1 --backend-model smol-1024

measures the same against a real OpenAI-compatible server instead (e.g. a llama.cpp server of
``tier-router demo``), each request capped at ``--max-tokens`` (default 4) with temperature 0,
plus a fourth path, the endpoint pinned by name (no answer check, so no escalation: with one
server behind every tier, an escalated answer would be timed twice).
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


def timed(client: httpx.Client, paths: list[tuple[str, str]], n: int,
          extra: dict[str, object] | None = None) -> list[list[float]]:
    """Milliseconds per request for each (url, model) path, ``n`` rounds, interleaved.

    Each round sends one request on every path, so that the machine's speed, which drifts on
    a shared virtual machine, weighs on every path alike: the overhead is a difference of
    medians taken under the same conditions."""
    samples: list[list[float]] = [[] for _ in paths]
    for i in range(n):
        for k, ((url, model), out) in enumerate(zip(paths, samples, strict=True)):
            # a prompt of its own on each path: a real server reuses a cached prompt prefix
            body = {"model": model, "messages": [
                {"role": "user", "content": f"Is review {i}.{k} positive or negative? "
                                            f"'Lovely, {k}.{i}'"}],
                **(extra or {})}
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
    pinned: list[float] | None = None

    def rows(self) -> list[tuple[str, list[float]]]:
        pinned = [("gateway, model = endpoint (no check)", self.pinned)] if self.pinned else []
        return [("direct to the backend", self.direct), *pinned,
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


def measure_real(url: str, model: str, requests: int, max_tokens: int) -> GatewayTimings:
    """The same against a real server at ``url`` (``.../v1``) serving ``model``."""
    extra: dict[str, object] = {"max_tokens": max_tokens, "temperature": 0}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        text = PORTFOLIO.format(url=url.removesuffix("/v1"))
        path.write_text(text.replace("model: small", f"model: {model}"), encoding="utf-8")
        with tier_router_server(portfolio=path) as gateway, \
                httpx.Client(timeout=120) as client:
            via_url = f"{gateway}/v1/chat/completions"
            paths = [(f"{url}/chat/completions", model), (via_url, "small"),
                     (via_url, "simple"), (via_url, "auto")]
            timed(client, paths, 5, extra)
            direct, pinned, tier, auto = timed(client, paths, requests, extra)
    return GatewayTimings(direct=direct, tier=tier, auto=auto, pinned=pinned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--backend-url", metavar="URL",
                        help="a real OpenAI-compatible server (.../v1) instead of the double")
    parser.add_argument("--backend-model", default="smol-1024",
                        help="the model that server answers to (default smol-1024)")
    parser.add_argument("--max-tokens", type=int, default=4,
                        help="the answer's cap with --backend-url (default 4)")
    args = parser.parse_args()
    if args.backend_url:
        timings = measure_real(args.backend_url.rstrip("/"), args.backend_model, args.requests,
                               args.max_tokens)
        what = f"backend {args.backend_url} ({args.backend_model}), max_tokens {args.max_tokens}"
    else:
        timings = measure_gateway(args.requests)
        what = "backend answers at once"
    base = statistics.median(timings.direct)
    print(f"{args.requests} sequential requests each, the paths interleaved; {what}")
    print(f"{'path':<40}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50':>14}")
    for name, samples in timings.rows():
        p50 = statistics.median(samples)
        p99 = sorted(samples)[int(0.99 * len(samples))]
        print(f"{name:<40}{p50:>9.2f}{p99:>9.2f}{p50 - base:>14.2f}")
    print("target: gateway overhead p50 <= 2 ms")


if __name__ == "__main__":
    main()
