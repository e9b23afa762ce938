"""Outcome records and models the outcome tests build: synthetic, written by the tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from classifier_service.cli import main
from classifier_service.feedback import read_records

TIERS = ("simple", "medium", "complex")
WORDS = ("apple", "river", "window", "garden", "pencil", "mountain", "candle", "bridge",
         "letter", "summer", "castle", "orange", "silver", "forest", "market", "planet")
EASY = "Translate the word '{}' into French."
HARD = "Prove rigorously the {} conjecture about quantum field theory renormalisation."
LONG = ("Here is a complete answer with the details the task needs, explained step by step "
        "so that it reads well and covers every part of the question that was asked. ") * 2
LOOPBACK = ("127.0.0.1", 50000)


def portfolio_text(tiers: tuple[str, ...] = TIERS) -> str:
    lines = ["version: 1", "tiers:"]
    for i, tier in enumerate(tiers):
        lines.append(f"  - {{name: {tier}, endpoints: [{{name: ep-{tier}, api: openai, base_url: "
                     f"'http://127.0.0.1:9/v1', model: m{i}, params_b: {7 * (i + 1)}}}]}}")
    return "\n".join(lines) + "\n"


def records(n: int = 120, simple_only: int | None = None, seed: int = 3) -> list[dict[str, object]]:
    """Easy prompts are good everywhere; hard ones fail at simple. A short answer (low logprob)
    is not good enough, a long one (high logprob) is; medium fails one prompt in seven."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        word = f"{rng.choice(WORDS)}{i}"
        hard = i % 3 == 0
        prompt = (HARD if hard else EASY).format(word)
        short = not hard and i % 4 == 1
        simple_good = 0.0 if hard or short else 1.0
        if simple_only is None or i < simple_only:
            out.append({"prompt": prompt, "tier": "simple", "score": simple_good,
                        "answer": "idk" if short or hard else LONG,
                        "avg_logprob": -2.5 if short or hard else -0.2, "source": "judge"})
        out.append({"prompt": prompt, "tier": "medium", "score": 1.0 if i % 7 else 0.0,
                    "answer": LONG if i % 7 else "idk", "avg_logprob": -0.3 if i % 7 else -2.5,
                    "source": "judge"})
        out.append({"prompt": prompt, "tier": "complex", "score": 1.0, "answer": LONG,
                    "avg_logprob": -0.25})
    return out


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def train(tmp: Path, rows: list[dict[str, object]], portfolio: Path, *extra: str) -> Path:
    data = write(tmp / "outcomes.jsonl", rows)
    out = tmp / "outcome-model"
    assert main(["train", "--outcomes", str(data), "--portfolio", str(portfolio), "--out",
                 str(out), *extra]) == 0
    return out


def outcome_lines(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        records, problems = read_records(path)
        assert problems == []
        rows.extend(r for _, r in records)
    return rows

