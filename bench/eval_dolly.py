"""Generalisation of a model to real prompts: tier macro-F1 on shared/data/dolly-dev.jsonl.

    python bench/eval_dolly.py [--model DIR] [--data FILE] [--full-share S]

Prints accuracy and macro-F1 of the classifier's top tier and of the routing policy's tier
(default-to-cheaper below the model's confidence threshold), the tier log-loss, per-tier F1
and the confusion matrix. ``--full-share`` replaces the model's tempering (see
:mod:`classifier_service.classifier`; 0 turns it off) to measure its effect, the confidence
threshold unchanged. The data is only read, never copied into the project.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from sklearn.metrics import classification_report, confusion_matrix, f1_score, log_loss

from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.routing.classifier import TierClassifier
from classifier_service.routing.policy import classifier_choice

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dolly-dev.jsonl"
ORDER = ["simple", "medium", "complex"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--full-share", type=float, default=None)
    args = parser.parse_args()
    artifact = load_artifact(args.model or bundled_model_dir())
    if args.full_share is not None:
        bundle = {k: v for k, v in artifact.bundle.items() if k != "temper"}
        if args.full_share > 0:
            bundle["temper"] = {"full_share": args.full_share}
        artifact = dataclasses.replace(artifact, bundle=bundle)
    clf = TierClassifier(artifact)
    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    truth = [r["tier"] for r in rows]
    top, policy, proba = [], [], []
    for r in rows:
        scores = clf.score(r["text"])
        top.append(scores.top_tier)
        proba.append([scores.tiers[t] for t in sorted(ORDER)])
        policy.append(classifier_choice(scores.tiers, ORDER, artifact.confidence_threshold)[0])
    print(f"model {artifact.model_version} on {args.data.name}: {len(rows)} prompts")
    for name, pred in (("classifier top tier", top), ("routing policy", policy)):
        acc = sum(p == t for p, t in zip(pred, truth, strict=True)) / len(truth)
        f1 = f1_score(truth, pred, labels=ORDER, average="macro")
        print(f"{name:<20} accuracy {acc:.3f}  macro-F1 {f1:.3f}")
    print(f"tier log-loss {log_loss(truth, proba, labels=sorted(ORDER)):.3f}")
    print(classification_report(truth, top, labels=ORDER, digits=3))
    print("confusion (rows truth, cols predicted):", ORDER)
    print(confusion_matrix(truth, top, labels=ORDER))


if __name__ == "__main__":
    main()
