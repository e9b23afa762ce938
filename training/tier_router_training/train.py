"""``tier-router train``: labelled examples in, a verified model folder out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier_service.artifact import Artifact, save_artifact
from classifier_service.errors import DataError
from tier_router_training.dataset import (
    Columns,
    Example,
    LoadReport,
    bundled_corpus_files,
    data_hash,
    load_examples,
)
from tier_router_training.pipeline import (
    Recipe,
    choose_threshold,
    cross_validate,
    fit_bundle,
    head_classes,
)

STANDARD_TIERS = ("simple", "medium", "complex")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainResult:
    artifact: Artifact
    report: LoadReport
    tier_counts: dict[str, int]


def resolve_tier_order(examples: Sequence[Example], tier_order: Sequence[str] | None) -> list[str]:
    """The tiers, cheapest first: as given, or the standard three when the labels fit them."""
    present = {e.tier for e in examples}
    if tier_order is None:
        if not present <= set(STANDARD_TIERS):
            raise DataError(
                f"labels {sorted(present)} are not the standard tiers {list(STANDARD_TIERS)}; "
                "give their order, cheapest first, with --tiers a,b,c or --portfolio FILE"
            )
        tier_order = [t for t in STANDARD_TIERS if t in present]
    order = list(tier_order)
    unknown = present - set(order)
    if unknown:
        raise DataError(f"labels {sorted(unknown)} are not in the tier order {order}")
    if len(present) < 2:
        raise DataError(f"need at least two distinct tiers to train, found {sorted(present)}")
    return [t for t in order if t in present]


def train(
    data: Sequence[Path | str] | None,
    out_dir: Path | str,
    *,
    tier_order: Sequence[str] | None = None,
    columns: Columns | None = None,
    strict: bool = False,
    folds: int = 5,
    recipe: Recipe | None = None,
) -> TrainResult:
    """Train on ``data`` (default: the bundled corpus) and write the model to ``out_dir``."""
    recipe = recipe or Recipe()
    paths = list(data) if data else bundled_corpus_files()
    report = LoadReport()
    examples = load_examples(paths, columns, strict=strict, report=report)
    order = resolve_tier_order(examples, tier_order)
    counts = Counter(e.tier for e in examples)

    metrics: dict[str, Any] = {}
    threshold = DEFAULT_THRESHOLD
    smallest = min(counts.values())
    k = min(folds, smallest)
    if k >= 2:
        cv = cross_validate(examples, order, folds=k, recipe=recipe)
        threshold, policy_f1 = choose_threshold(cv.out_of_fold, cv.labels, order)
        metrics = {
            "cv_folds": cv.folds,
            "cv_macro_f1": round(cv.macro_f1, 4),
            "cv_accuracy": round(cv.accuracy, 4),
            "cv_policy_macro_f1": round(policy_f1, 4),
        }
        if cv.category_accuracy is not None:
            metrics["cv_category_accuracy"] = round(cv.category_accuracy, 4)

    bundle = fit_bundle(examples, recipe)
    category_head = bundle["heads"]["category"]
    metadata: dict[str, Any] = {
        "labels": {
            "tier": order,
            "category": head_classes(category_head) if category_head else None,
        },
        "recipe": recipe.as_dict(),
        "thresholds": {"confidence_threshold": threshold, "source": "cross-validation"},
        "training_data": {
            "sha256": data_hash(examples),
            "rows": len(examples),
            "tier_counts": dict(sorted(counts.items())),
            "sources": [Path(p).name for p in paths],
        },
        "metrics": metrics,
    }
    artifact = save_artifact(Path(out_dir), bundle, metadata)
    return TrainResult(artifact=artifact, report=report, tier_counts=dict(counts))
