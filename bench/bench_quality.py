"""Cost of the quality check on typical answers.

    python bench/bench_quality.py

Times :func:`classifier_service.routing.quality.check` (the signals only, no classifier) on answers
of typical lengths, and prints p50 and p99 per length. Target: well under 1 ms.
"""

from __future__ import annotations

import statistics
import time

from classifier_service.portfolio.quality import QualityPolicy
from classifier_service.routing.quality import check

SENTENCE = ("The committee reviewed the proposal in detail and agreed to fund a pilot in two "
            "regions, with a report due in the spring. ")
CASES = {
    "label (8 chars)": "Positive",
    "short answer (~120 chars)": SENTENCE.strip(),
    "paragraph (~600 chars)": SENTENCE * 5,
    "long answer (~2,400 chars)": SENTENCE * 20,
    "code answer (~800 chars)": "Here you go:\n```python\n" + "x = compute(x)\n" * 50 + "```\n",
    "very long (~12,000 chars)": SENTENCE * 100,
}


def main() -> None:
    policy = QualityPolicy()
    check("warm up the compiled markers", policy)
    print(f"{'answer':<30}{'p50 us':>10}{'p99 us':>10}")
    for name, text in CASES.items():
        samples = []
        for i in range(2000):
            variant = f"{text} {i}"  # distinct inputs
            start = time.perf_counter()
            check(variant, policy, kind="analysis", finish_reason="stop", avg_logprob=-0.3)
            samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        p99 = samples[int(0.99 * len(samples))]
        print(f"{name:<30}{statistics.median(samples):>10.1f}{p99:>10.1f}")
    print("target: well under 1,000 us for a typical answer")


if __name__ == "__main__":
    main()
