"""Client latency of the OpenAI gateway with judge sampling off and on.

    python -m bench.bench_judge [--requests N]     (from the repository root)

The service runs in-process over real uvicorn before the wire doubles of ``tests/test_judge.py``
(a fake Ollama for tiers simple and medium, a fake judge). Sequential non-streaming requests
with ``model: simple``, after five to warm up: once without a judge section, once with
``sample_rate: 1`` and a judge that takes 6 s per verdict, so every request starts a sample
that is still running when the next request comes. The client's latency should not move.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.test_judge import judge_stack

SLOW_S = 6.0


def measure(section: dict[str, Any] | None, requests: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder, judge_stack(Path(folder), section) as stack:
        stack.judge.delay_s = SLOW_S
        for _ in range(5):
            stack.ask()
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            stack.ask()
            times.append((time.perf_counter() - started) * 1000)
        stack.judge.delay_s = 0.0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    on = {"sample_rate": 1.0, "timeout_s": 30, "max_concurrent": 1000, "daily_budget": 10**6}
    for name, section in (("judge off", None), (f"judge on, {SLOW_S:g} s per verdict", on)):
        times = measure(section, args.requests)
        print(f"{name:32s} p50 {statistics.median(times):6.1f} ms   "
              f"p90 {statistics.quantiles(times, n=10)[-1]:6.1f} ms   ({len(times)} requests)")


if __name__ == "__main__":
    main()
