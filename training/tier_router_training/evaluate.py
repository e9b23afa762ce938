"""``tier-router evaluate``: how well a model, or its recipe, sorts labelled prompts into tiers.

Two modes:

- held-out (default): the model in ``--model`` scores every row of ``--data``;
- ``--cv K``: the model's recipe is retrained K times on ``--data`` (stratified folds) and each
  row is scored by the fit that did not see it: how well the recipe learns *this* data.

Either way the report gives accuracy, macro-F1, per-tier precision/recall/F1/support and the
confusion matrix of the classifier's top tier, plus what the routing policy does with the
scores: the share of traffic per tier at the model's confidence threshold, and across all
thresholds (the curve behind ``traffic_share.png``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from classifier_service.routing.artifact import atomic_write, load_artifact
from classifier_service.routing.classifier import TierClassifier
from tier_router_training.dataset import (
    MIN_EXAMPLES_PER_TIER,
    Columns,
    Example,
    LoadReport,
    load_examples,
    sort_key,
)
from tier_router_training.pipeline import Recipe, cross_validate, default_to_cheaper
from tier_router_training.progress import Progress

CURVE_THRESHOLDS = tuple(float(round(x, 2)) for x in np.arange(0.0, 1.001, 0.02))


def score_examples(classifier: TierClassifier, examples: Sequence[Example],
                   order: Sequence[str]) -> np.ndarray:
    """(n, tiers) probabilities from the served classifier, columns in ``order``."""
    proba = np.zeros((len(examples), len(order)))
    for i, example in enumerate(examples):
        tiers = classifier.score(example.prompt).tiers
        proba[i] = [tiers.get(t, 0.0) for t in order]
    return proba


def tier_metrics(truth: Sequence[str], predicted: Sequence[str], order: Sequence[str]
                 ) -> dict[str, Any]:
    labels = list(order)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    present = [t for t in labels if t in set(truth)]
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=present, average="macro",
                                         zero_division=0)), 4),
        "per_tier": {
            t: {"precision": round(float(p), 4), "recall": round(float(r), 4),
                "f1": round(float(f), 4), "support": int(s)}
            for t, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
        },
    }


def traffic_shares(proba: np.ndarray, order: Sequence[str], threshold: float) -> dict[str, float]:
    routed = default_to_cheaper(proba, threshold)
    return {t: round(float((routed == i).mean()), 4) for i, t in enumerate(order)}


def evaluate(
    model_dir: Path | str,
    data: Sequence[Path | str],
    *,
    cv: int | None = None,
    report_dir: Path | str | None = "report",
    columns: Columns | None = None,
    category_map: Mapping[str, str] | None = None,
    strict: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate and, unless ``report_dir`` is None, write report.json and the PNG plots;
    ``progress`` shows the folds of ``cv`` on standard error."""
    artifact = load_artifact(model_dir)
    order = artifact.tier_labels
    load = LoadReport()
    examples = load_examples(data, columns, strict=strict, report=load, tiers=set(order),
                             category_map=category_map,
                             min_per_tier=MIN_EXAMPLES_PER_TIER if cv else 1)
    threshold = artifact.confidence_threshold
    if cv:
        examples = sorted(examples, key=sort_key)
        recipe = Recipe(**artifact.metadata.get("recipe", {}))
        bar = Progress(cv, "cross-validation folds", enabled=progress)
        proba = cross_validate(examples, order, folds=cv, recipe=recipe,
                               on_fold=lambda _: bar.advance()).out_of_fold
    else:
        proba = score_examples(TierClassifier(artifact), examples, order)
    truth = [e.tier for e in examples]
    predicted = [order[i] for i in proba.argmax(axis=1)]
    routed = [order[i] for i in default_to_cheaper(proba, threshold)]
    report: dict[str, Any] = {
        "model_version": artifact.model_version,
        "mode": f"{cv}-fold cross-validation of the model's recipe" if cv else "held-out",
        "rows": len(examples),
        "skipped_rows": len(load.skipped),
        **tier_metrics(truth, predicted, order),
        "policy": {
            "confidence_threshold": threshold,
            "accuracy": round(float(accuracy_score(truth, routed)), 4),
            "macro_f1": round(float(f1_score(truth, routed, average="macro", zero_division=0)),
                              4),
            "traffic_share": traffic_shares(proba, order, threshold),
        },
        "threshold_curve": [
            {"threshold": t, "traffic_share": traffic_shares(proba, order, t)}
            for t in CURVE_THRESHOLDS
        ],
    }
    if report_dir is not None:
        write_report(Path(report_dir), report)
    return report


def write_report(report_dir: Path, report: dict[str, Any]) -> None:
    from tier_router_training.plots import plot_confusion, plot_traffic

    text = json.dumps(report, indent=2) + "\n"
    atomic_write(report_dir / "report.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    atomic_write(report_dir / "confusion_matrix.png", lambda tmp: plot_confusion(report, tmp))
    atomic_write(report_dir / "traffic_share.png", lambda tmp: plot_traffic(report, tmp))


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"model {report['model_version']}, {report['mode']}, {report['rows']} rows",
        f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f}",
        "",
        f"{'tier':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
    ]
    for tier, m in report["per_tier"].items():
        lines.append(f"{tier:<16}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}"
                     f"{m['support']:>9}")
    policy = report["policy"]
    shares = ", ".join(f"{t} {s:.1%}" for t, s in policy["traffic_share"].items())
    lines += ["", f"routing policy at threshold {policy['confidence_threshold']:.2f}: "
                  f"macro-F1 {policy['macro_f1']:.3f}; traffic {shares}"]
    return "\n".join(lines)
