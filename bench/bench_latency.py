"""Decision latency and service memory.

    python bench/bench_latency.py [--requests N]

Measures, on distinct prompts from the bundled corpus (there is no result cache):

- the in-process decision (classifier scores + policy), p50 and p99;
- scikit-learn's own ``predict_proba`` for one prompt, for comparison with the lean path;
- ``POST /v1/route`` over a real ``tier-router serve`` (uvicorn) on loopback, one request at a
  time on a keep-alive connection, p50 and p99 as the client sees them;
- the server process's resident memory (RSS) after the run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import psutil

from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.runtime import Runtime
from tier_router_training.dataset import bundled_corpus_files, load_examples
from tier_router_training.pipeline import blend_proba


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def time_each(fn: Callable[[str], object], prompts: Sequence[str]) -> list[float]:
    out = []
    for prompt in prompts:
        start = time.perf_counter()
        fn(prompt)
        out.append((time.perf_counter() - start) * 1000)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_bench(prompts: Sequence[str]) -> tuple[list[float], float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "classifier_service", "serve", "--port", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            for prompt in prompts[:200]:  # warm-up
                client.post("/v1/route", json={"prompt": prompt})
            samples = time_each(
                lambda p: client.post("/v1/route", json={"prompt": p}).raise_for_status(),
                prompts,
            )
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return samples, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description="tier-router latency and memory benchmark")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    seen: set[str] = set()
    prompts = []
    for example in load_examples(bundled_corpus_files()):
        if example.prompt not in seen:
            seen.add(example.prompt)
            prompts.append(example.prompt)
    prompts = prompts[: args.requests]
    words = statistics.median(len(p.split()) for p in prompts)

    runtime = Runtime.load(bundled_portfolio_path(), bundled_model_dir())
    for prompt in prompts[:200]:
        runtime.route(prompt)
    decision = time_each(runtime.route, prompts)
    score = time_each(runtime.classifier.score, prompts)
    bundle = load_artifact(bundled_model_dir()).bundle
    vectorizer, head = bundle["vectorizer"], bundle["heads"]["tier"]
    sk = time_each(lambda p: blend_proba(head, vectorizer.transform([p])), prompts[:1000])
    http, rss = http_bench(prompts)

    print(f"{len(prompts)} distinct prompts (median {words:.0f} words), model "
          f"{runtime.model_version}, Python {sys.version.split()[0]}")
    print(f"{'measure':<44} {'p50 ms':>8} {'p99 ms':>8}")
    for name, samples in (
        ("in-process decision (score + policy)", decision),
        ("in-process score only (lean path)", score),
        ("scikit-learn, one prompt (tier head only)", sk),
        ("POST /v1/route over uvicorn, loopback", http),
    ):
        p50, p99 = percentiles(samples)
        print(f"{name:<44} {p50:>8.3f} {p99:>8.3f}")
    print(f"{'server RSS after the run':<44} {rss:>8.0f} MB")
    print(f"targets: decision p50 <= 0.5 ms, /v1/route p50 <= 3 ms, RSS <= 250 MB "
          f"({Path(__file__).name})")


if __name__ == "__main__":
    main()
