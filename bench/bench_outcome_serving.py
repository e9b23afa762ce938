"""In-process latency of a served outcome model: the decision and the learned check.

  python -m bench.bench_outcome_serving --model DIR --portfolio FILE --outcomes FILE

``--outcomes``: outcome records (JSONL) whose prompts are routed and whose answers are checked
at the cheapest tier: per prompt its longest recorded answer, cut to ``--chars`` characters
(2,400 by default); one shorter than that is repeated to length, and the output says how many
were (a repeated answer also runs the repetition signal's slow path). Each
figure is the median of one call per record, repeated ``--repeat`` times; the outcome model's
cache of router logits is emptied before every call unless the figure says it is reused (the
gateway checks an answer right after its decision, so it finds the decision's logits).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from classifier_service.routing.answer_check import judge
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.routing.quality import check
from classifier_service.runtime import Runtime

T = TypeVar("T")


def median_ms(fn: Callable[[T], object], items: Sequence[T], repeat: int) -> float:
    return medians_ms([fn], items, repeat)[0]


def medians_ms(fns: Sequence[Callable[[T], object]], items: Sequence[T], repeat: int
               ) -> list[float]:
    """Each function's median time per call, the functions taking turns on every item (so
    that the machine's drift during the run falls on all of them alike), with the cyclic
    garbage collector paused as ``timeit`` pauses it."""
    times: list[list[float]] = [[] for _ in fns]
    gc.disable()
    try:
        for _ in range(repeat):
            for item in items:
                for fn, spent in zip(fns, times, strict=True):
                    start = time.perf_counter()
                    fn(item)
                    spent.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return [statistics.median(spent) * 1e3 for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an outcome model folder")
    parser.add_argument("--portfolio", type=Path, required=True)
    parser.add_argument("--outcomes", type=Path, required=True)
    parser.add_argument("--chars", type=int, default=2400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runtime = Runtime.load(args.portfolio, args.model)
    base = Runtime.load(args.portfolio, bundled_model_dir())
    outcome = runtime.outcome
    assert outcome is not None, f"{args.model} is not an outcome model"
    rows = [json.loads(line) for line in args.outcomes.open(encoding="utf-8") if line.strip()]
    longest: dict[str, str] = {}
    for row in rows:
        text = row.get("answer") or ""
        if text and len(text) > len(longest.get(row["prompt"], "")):
            longest[row["prompt"]] = text
    seen = {p: (text * (args.chars // len(text) + 1))[: args.chars]
            for p, text in longest.items()}
    repeated = sum(len(text) < args.chars for text in longest.values())
    cut = [(p, seen[p]) for p, text in longest.items() if len(text) >= args.chars]
    prompts = list(seen)
    pairs = list(seen.items())
    scores = {p: runtime.classifier.score(p) for p in prompts}
    tier = outcome.tiers[0]
    policy = runtime.portfolio.quality

    def fresh(fn: Callable[[T], object]) -> Callable[[T], object]:
        def call(item: T) -> object:
            outcome._logits.clear()
            return fn(item)
        return call

    def learned(pair: tuple[str, str]) -> object:
        return judge(outcome, policy, pair[0], pair[1], tier, scores=scores[pair[0]])

    n, r = len(prompts), args.repeat
    print(f"{n} prompts, answers of {args.chars} characters ({n - repeated} cut from longer "
          f"ones, {repeated} repeated to length), {r} repeats; median per call")
    whole, alone = medians_ms([fresh(runtime.route), base.route], prompts, r)
    print(f"route (classifier + outcome model + policy): {whole:.3f} ms; "
          f"the classifier alone: {alone:.3f} ms")
    print(f"outcome decision given the classifier's scores: "
          f"{median_ms(fresh(lambda p: outcome.choose(p, scores[p])), prompts, r):.3f} ms")
    print(f"learned check, router logit computed (/v1/quality): "
          f"{median_ms(fresh(learned), pairs, r):.3f} ms")
    for p in prompts:
        outcome.router_logits(p, scores[p])
    print(f"learned check after the decision (the gateway): {median_ms(learned, pairs, r):.3f} ms")
    if cut:
        print(f"  of the {len(cut)} answers cut from longer ones alone: "
              f"{median_ms(learned, cut, r):.3f} ms (/v1/quality: "
              f"{median_ms(fresh(learned), cut, r):.3f} ms)")
    print(f"the eight hand-written signals alone: "
          f"{median_ms(lambda pa: check(pa[1], policy, kind='open_qa'), pairs, r):.3f} ms")


if __name__ == "__main__":
    main()
