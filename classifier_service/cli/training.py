"""``train``, ``evaluate`` and ``calibrate``; with ``--outcomes``, of outcome models
(:mod:`.outcomes`).

They reach :mod:`tier_router_training` inside each command, so the service imports
and tests without the training package."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier_service.cli import outcomes
from classifier_service.cli.common import Commands
from classifier_service.errors import DataError
from classifier_service.portfolio.model import load_portfolio

TARGET_FLAGS = ("--min-share", "--objective", "--margin")


def add_train(sub: Commands) -> None:
    train = sub.add_parser("train", help="train a model on labelled prompts",
                           description="Train the classifier on labelled prompts (JSONL or "
                           "CSV). Without --data, rebuilds the default model from the "
                           "bundled corpus.")
    train.add_argument("--data", action="append", type=Path, metavar="FILE",
                       help="labelled data, JSONL or CSV, or a folder of them (its *.jsonl "
                       "and *.csv); repeatable (default: bundled corpus)")
    train.add_argument("--with-default-corpus", action="store_true",
                       help="train on the bundled corpus and --data together (default: "
                       "--data replaces the corpus)")
    train.add_argument("--out", type=Path, default=Path("model"),
                       help="output model folder (default ./model)")
    train.add_argument("--tiers", help="tier order, cheapest first, e.g. simple,medium,complex")
    train.add_argument("--portfolio", type=Path, metavar="FILE",
                       help="take the tier order from this portfolio")
    _add_column_args(train)
    train.add_argument("--feedback", action="append", type=Path, default=[], metavar="LOG",
                       help="add the service's feedback log as training rows; repeatable")
    train.add_argument("--folds", type=int, default=5,
                       help="cross-validation folds for metrics and the threshold (default 5)")
    train.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                       help="weigh tiers equally while fitting (balanced), or as they come "
                       "(none, default)")
    train.add_argument("--kind-weight", type=_unit_float, default=0.0, metavar="W",
                       help="blend in the tiers implied by the task-kind head, 0-1 (default 0: "
                       "the tier head alone; needs data with task kinds)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_outcome_args(train)
    train.add_argument("--base-model", type=Path, metavar="DIR",
                       help="with --outcomes: the classifier the outcome model reads and falls "
                       "back to, copied into --out (default: the bundled model)")
    train.add_argument("--max-share", action="append", metavar="TIER=SHARE",
                       help="with --outcomes: cap a tier's share at the calibrated point")
    train.add_argument("--match-tier", metavar="TIER",
                       help="with --outcomes: a point as good as always-TIER (which one: "
                       "--objective)")
    _add_target_args(train)
    train.set_defaults(handler=_train)


def add_evaluate(sub: Commands) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="measure a model on labelled prompts",
        description="Accuracy, macro-F1, per-tier precision/recall/F1 and the confusion matrix "
        "of a model on labelled data (or, with --cv K, of its recipe retrained on the data); "
        "writes report.json, confusion_matrix.png and traffic_share.png.")
    evaluate.add_argument("--model", type=Path, metavar="DIR",
                          help="model folder (default: the bundled default model)")
    evaluate.add_argument("--data", action="append", type=Path, metavar="FILE",
                          help="labelled data, JSONL or CSV; repeatable (or --outcomes)")
    evaluate.add_argument("--quiet", action="store_true",
                          help="no progress on standard error (--cv)")
    evaluate.add_argument("--cv", type=int, metavar="K",
                          help="K-fold cross-validation of the model's recipe on the data")
    evaluate.add_argument("--report-dir", type=Path, default=Path("report"),
                          help="where the report goes (default ./report)")
    _add_column_args(evaluate)
    _add_outcome_args(evaluate, bad_row=False)
    evaluate.add_argument("--portfolio", type=Path, metavar="FILE",
                          help="with --outcomes: tier costs from this portfolio (default: "
                          "those the model was trained with)")
    evaluate.set_defaults(handler=_evaluate)


def add_calibrate(sub: Commands) -> None:
    calibrate = sub.add_parser(
        "calibrate", help="cap the share of traffic per tier with the confidence threshold",
        description="Pick the lowest confidence threshold at which, on a reference set of "
        "prompts, no capped tier gets more than its share; store it in the model's metadata.")
    calibrate.add_argument("--model", type=Path, metavar="DIR", required=True,
                           help="model folder to calibrate (its metadata.json is rewritten)")
    calibrate.add_argument("--data", action="append", type=Path, metavar="FILE",
                           help="reference prompts, JSONL or CSV (labels optional); repeatable")
    calibrate.add_argument("--max-share", action="append", metavar="TIER=SHARE",
                           help="e.g. complex=0.3; repeatable")
    _add_outcome_args(calibrate, bad_row=True)
    calibrate.add_argument("--match-tier", metavar="TIER",
                           help="with --outcomes: a point (router and check thresholds) "
                           "whose expected quality is at least always-TIER's (which one: "
                           "--objective)")
    _add_target_args(calibrate)
    calibrate.add_argument("--portfolio", type=Path, metavar="FILE",
                           help="with --outcomes: tier costs from this portfolio (default: "
                           "those the model was trained with)")
    calibrate.add_argument("--quiet", action="store_true",
                           help="no progress on standard error")
    calibrate.add_argument("--text-column",
                           help="column with the prompt (default: prompt, else text)")
    calibrate.set_defaults(handler=_calibrate)


def _add_outcome_args(parser: argparse.ArgumentParser, bad_row: bool = False) -> None:
    parser.add_argument("--outcomes", action="append", type=Path, metavar="FILE|DIR",
                        help="outcome records (JSONL/CSV, or a folder of them, e.g. the "
                        "service's outcomes folder); repeatable: an outcome model")
    if bad_row:
        parser.add_argument("--on-bad-row", choices=["skip", "stop"], default="skip",
                            help="skip bad rows with a report, or stop at the first")


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    """``--min-share``, ``--objective`` and ``--margin``: outcome-model calibration only."""
    parser.add_argument("--min-share", action="append", metavar="TIER=SHARE",
                        help="with --outcomes: a floor on a tier's share at the calibrated "
                        "point, e.g. simple=0.65; repeatable; alone, the best quality above "
                        "the floors")
    parser.add_argument("--objective", choices=["share", "cost"],
                        help="with --match-tier: of the points as good as always-TIER, the one "
                        "with the most traffic on the cheapest tier (share, default) or the "
                        "cheapest (cost)")
    parser.add_argument("--margin", type=_margin, metavar="N",
                        help="with --match-tier: a point must beat always-TIER by N standard "
                        "errors of the paired difference (default 1; 0: on average)")


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a number >= 0 (standard errors)")
    return value


def _outcome_only(args: argparse.Namespace, command: str, flags: Sequence[str]) -> None:
    """Refuse outcome-model flags on the classifier's path, naming them."""
    given = [f for f in flags if getattr(args, f[2:].replace("-", "_"), None) is not None]
    if given:
        raise DataError(f"{', '.join(given)}: only for outcome models ({command} --outcomes "
                        f"FILE); the classifier's {command} does not take "
                        + ("it" if len(given) == 1 else "them"))


def _add_column_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column",
                        help="column with the prompt (default: prompt, else text)")
    parser.add_argument("--label-column", default="tier",
                        help="column with the tier (default tier)")
    parser.add_argument("--category-column", default="category",
                        help="column with the task kind (default category; optional)")
    parser.add_argument("--category-map", type=Path, metavar="FILE",
                        help="JSON/YAML kind -> tier map, for rows labelled by kind only")
    parser.add_argument("--on-bad-row", choices=["skip", "stop"], default="skip",
                        help="skip bad rows with a report, or stop at the first (default skip)")


def _columns(args: argparse.Namespace) -> Any:
    from tier_router_training.dataset import DEFAULT_TEXT_COLUMNS, Columns

    return Columns(
        text=(args.text_column,) if args.text_column else DEFAULT_TEXT_COLUMNS,
        label=getattr(args, "label_column", "tier"),
        category=getattr(args, "category_column", "category") or None,
    )


def _category_map(args: argparse.Namespace) -> dict[str, str] | None:
    from tier_router_training.dataset import load_category_map

    return load_category_map(args.category_map) if args.category_map else None


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside 0-1")
    return value


def _train(args: argparse.Namespace) -> int:
    if args.outcomes:
        return outcomes.train(args)
    _outcome_only(args, "train", ("--max-share", "--match-tier", *TARGET_FLAGS))
    from tier_router_training.dataset import LoadReport
    from tier_router_training.pipeline import Recipe
    from tier_router_training.train import summary_table, train

    tier_order: list[str] | None = None
    if args.tiers:
        tier_order = [t.strip() for t in args.tiers.split(",") if t.strip()]
    elif args.portfolio:
        tier_order = load_portfolio(args.portfolio).tier_names
    report = LoadReport()
    try:
        result = train(args.data, args.out, tier_order=tier_order, columns=_columns(args),
                       strict=args.on_bad_row == "stop", folds=args.folds,
                       recipe=Recipe(class_weight=args.class_weight,
                                     kind_weight=args.kind_weight),
                       category_map=_category_map(args),
                       feedback=args.feedback, progress=not args.quiet, report=report,
                       with_default_corpus=args.with_default_corpus)
    finally:  # list what was skipped, also when training then fails
        for line in report.skipped[:20]:
            print(f"skipped {line}", file=sys.stderr)
        if len(report.skipped) > 20:
            print(f"... and {len(report.skipped) - 20} more skipped rows", file=sys.stderr)
    for warning in result.warnings:
        print(f"tier-router: warning: {warning}", file=sys.stderr)
    print(summary_table(result))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.outcomes:
        return outcomes.evaluate(args)
    if not args.data:
        raise DataError("evaluate needs --data FILE (labelled prompts) or --outcomes FILE")
    from classifier_service.routing.artifact import bundled_model_dir
    from tier_router_training.evaluate import evaluate, summary

    report = evaluate(args.model or bundled_model_dir(), args.data, cv=args.cv,
                      report_dir=args.report_dir, columns=_columns(args),
                      category_map=_category_map(args), strict=args.on_bad_row == "stop",
                      progress=not args.quiet)
    print(summary(report))
    print(f"wrote {args.report_dir}/report.json, confusion_matrix.png, traffic_share.png")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    if args.outcomes:
        if args.data:
            raise DataError("calibrate takes --data (a classifier) or --outcomes (an outcome "
                            "model), not both")
        return outcomes.calibrate(args)
    _outcome_only(args, "calibrate", ("--match-tier", *TARGET_FLAGS))
    if not args.data or not args.max_share:
        raise DataError("calibrate needs --data FILE and --max-share TIER=SHARE (a classifier), "
                        "or --outcomes FILE with --max-share, --min-share or --match-tier "
                        "(an outcome model)")
    from classifier_service.routing.artifact import load_artifact
    from tier_router_training.calibrate import calibrate, parse_max_share

    tiers = load_artifact(args.model).tier_labels
    caps = parse_max_share(args.max_share, tiers)
    result = calibrate(args.model, args.data, caps, columns=_columns(args),
                       progress=not args.quiet)
    shares = ", ".join(f"{t} {result.before[t]:.1%} -> {s:.1%}" for t, s in result.shares.items())
    print(f"{result.rows} reference prompts; traffic {shares}")
    print(result.message())
    if not result.unchanged:
        print(f"written to {args.model}/metadata.json "
              "(applies unless the portfolio sets policy.confidence_threshold)")
    return 0
