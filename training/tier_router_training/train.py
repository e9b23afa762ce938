"""``tier-router train``: labelled examples in, a verified model folder out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier_service.errors import DataError
from classifier_service.routing.artifact import Artifact, save_artifact
from tier_router_training.dataset import (
    MIN_EXAMPLES_PER_TIER,
    Columns,
    Example,
    LoadReport,
    bundled_corpus_files,
    data_hash,
    load_examples,
    recommendations,
)
from tier_router_training.feedback import load_feedback_examples
from tier_router_training.pipeline import (
    Recipe,
    choose_threshold,
    cross_validate,
    fit_bundle,
    has_categories,
    head_classes,
)
from tier_router_training.progress import Progress

STANDARD_TIERS = ("simple", "medium", "complex")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainResult:
    artifact: Artifact
    report: LoadReport
    tier_counts: dict[str, int]
    feedback_rows: int = 0
    warnings: tuple[str, ...] = ()
    """Tiers with fewer rows than recommended (:func:`~.dataset.recommendations`)."""


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
    category_map: Mapping[str, str] | None = None,
    feedback: Sequence[Path | str] = (),
    progress: bool = False,
    report: LoadReport | None = None,
    with_default_corpus: bool = False,
) -> TrainResult:
    """Train on ``data`` (default: the bundled corpus; with ``with_default_corpus``, the
    bundled corpus and ``data``) plus feedback logs; write ``out_dir``.

    ``report``, when given, collects what loading skipped even if training then fails.
    """
    recipe = recipe or Recipe()
    paths: list[Path | str] = list(data) if data else []
    if with_default_corpus or not paths:
        paths = [*bundled_corpus_files(), *paths]
    report = report if report is not None else LoadReport()
    allowed = set(tier_order) if tier_order is not None else None
    examples = load_examples(paths, columns, strict=strict, report=report, tiers=allowed,
                             category_map=category_map, min_per_tier=MIN_EXAMPLES_PER_TIER)
    feedback_rows = 0
    if feedback:
        known = allowed if allowed is not None else {e.tier for e in examples}
        learned = load_feedback_examples(feedback, report, tiers=known, strict=strict)
        seen = {e.prompt.strip().lower() for e in examples}
        fresh = [e for e in learned if e.prompt.strip().lower() not in seen]
        report.duplicates += len(learned) - len(fresh)
        feedback_rows = len(fresh)
        examples = examples + fresh
        report.kept = len(examples)
    if recipe.kind_weight > 0 and not has_categories(examples):
        raise DataError("--kind-weight needs a task kind on every row, and at least two "
                        "kinds (--category-column; feedback rows carry none)")
    order = resolve_tier_order(examples, tier_order)
    counts = Counter(e.tier for e in examples)

    metrics: dict[str, Any] = {}
    threshold = DEFAULT_THRESHOLD
    k = min(folds, min(counts.values()))
    steps = (k if k >= 2 else 0) + 1
    bar = Progress(steps, "training", enabled=progress)
    if k >= 2:
        cv = cross_validate(examples, order, folds=k, recipe=recipe,
                            on_fold=lambda _: bar.advance())
        threshold, policy_f1 = choose_threshold(cv.out_of_fold, cv.labels, order)
        metrics = {
            "cv_folds": cv.folds,
            "cv_macro_f1": round(cv.macro_f1, 4),
            "cv_accuracy": round(cv.accuracy, 4),
            "cv_policy_macro_f1": round(policy_f1, 4),
        }

    bundle = fit_bundle(examples, recipe)
    bar.advance()
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
            "sources": [Path(p).name for p in [*paths, *feedback]],
        },
        "metrics": metrics,
    }
    artifact = save_artifact(Path(out_dir), bundle, metadata)
    return TrainResult(artifact=artifact, report=report, tier_counts=dict(counts),
                       feedback_rows=feedback_rows, warnings=tuple(recommendations(examples)))


def summary_table(result: TrainResult) -> str:
    """The end-of-run summary: rows, per-tier counts, metrics, threshold, output."""
    meta = result.artifact.metadata
    report = result.report
    lines = [
        f"rows read {report.rows}, kept {report.kept}, duplicates {report.duplicates}, "
        f"skipped {len(report.skipped)}"
        + (f", from feedback {result.feedback_rows}" if result.feedback_rows else ""),
        "",
        f"{'tier':<16}{'examples':>10}{'share':>8}",
    ]
    total = sum(result.tier_counts.values())
    for tier in meta["labels"]["tier"]:
        n = result.tier_counts.get(tier, 0)
        lines.append(f"{tier:<16}{n:>10}{n / total:>8.1%}")
    lines.append("")
    for key, value in meta["metrics"].items():
        lines.append(f"{key:<24}{value}")
    lines.append(f"{'confidence_threshold':<24}{meta['thresholds']['confidence_threshold']}")
    lines.append(f"{'model_version':<24}{result.artifact.model_version}")
    lines.append(f"wrote {result.artifact.path}")
    return "\n".join(lines)
