"""Retraining: quality on a user's labelled data, and training time at scale.

    python bench/bench_training.py [--data FILE] [--rows N]

1. 5-fold cross-validated tier macro-F1 when the classifier is retrained on the labelled real
   prompts of ``shared/data/dolly-dev.jsonl`` (read only), with the default recipe, with
   ``--class-weight balanced``, and with ``--kind-weight`` (the data's task kinds blended into
   the tiers); repeated over five fold shuffles, because one split alone moves the figure by
   about +-0.005;
2. wall time of ``tier-router train`` (5-fold cross-validation + final fit + save) on N
   distinct prompts (default 20,000), built from the bundled corpus and the data file: each is
   two real prompts joined, labelled with the first one's tier.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tier_router_training.dataset import Example, bundled_corpus_files, load_examples
from tier_router_training.pipeline import Recipe, cross_validate
from tier_router_training.train import train

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly-dev.jsonl"
ORDER = ["simple", "medium", "complex"]
SEEDS = (20261129, 1, 2, 3, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description="tier-router retraining benchmark")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    examples = load_examples([args.data])
    print(f"retrained on {args.data.name}: {len(examples)} distinct labelled prompts; "
          f"5-fold CV repeated with {len(SEEDS)} shuffles")
    print(f"{'recipe':<28}{'macro-F1 mean':>14}{'min':>8}{'max':>8}{'accuracy':>10}"
          f"{'s/run':>7}")
    for name, recipe in (("default", Recipe()),
                         ("--class-weight balanced", Recipe(class_weight="balanced")),
                         ("balanced, no naive Bayes", Recipe(class_weight="balanced",
                                                             lr_weight=1.0)),
                         ("--kind-weight 0.4", Recipe(kind_weight=0.4))):
        start = time.perf_counter()
        runs = [cross_validate(examples, ORDER, folds=5, recipe=recipe, seed=s) for s in SEEDS]
        f1s = [cv.macro_f1 for cv in runs]
        acc = statistics.mean(cv.accuracy for cv in runs)
        print(f"{name:<28}{statistics.mean(f1s):>14.4f}{min(f1s):>8.4f}{max(f1s):>8.4f}"
              f"{acc:>10.4f}{(time.perf_counter() - start) / len(SEEDS):>7.1f}")

    elapsed, cv_f1 = training_time(examples, args.rows)
    print(f"\ntier-router train on {args.rows} distinct prompts (5-fold CV + fit + save): "
          f"{elapsed:.1f} s (target <= 60 s); cv macro-F1 {cv_f1}")


def training_time(labelled: Sequence[Example], rows: int = 20_000) -> tuple[float, float]:
    """Seconds of ``tier-router train`` on ``rows`` distinct prompts, and its CV macro-F1.

    Each prompt is two real prompts (from the bundled corpus and ``labelled``) joined,
    labelled with the first one's tier.
    """
    pool = load_examples(bundled_corpus_files()) + list(labelled)
    rng = random.Random(20261129)
    data_rows: list[dict[str, str | None]] = []
    seen: set[str] = set()
    while len(data_rows) < rows:
        a, b = rng.choice(pool), rng.choice(pool)
        prompt = f"{a.prompt}\n{b.prompt}"
        if prompt not in seen:
            seen.add(prompt)
            data_rows.append({"prompt": prompt, "tier": a.tier, "category": a.category})
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in data_rows), encoding="utf-8")
        start = time.perf_counter()
        result = train([data], Path(tmp) / "model")
        elapsed = time.perf_counter() - start
    return elapsed, float(result.artifact.metadata["metrics"]["cv_macro_f1"])


if __name__ == "__main__":
    main()
