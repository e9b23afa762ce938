"""``train --outcomes``, ``calibrate --outcomes`` and ``evaluate --outcomes``: outcome models.

Each reaches :mod:`tier_router_training` inside the command, so the service imports and
tests without the training package. Outcome files are read by
:func:`tier_router_training.outcome_records.read_outcomes` (JSONL, CSV, folders; bad rows
listed with file and line, skipped or, with ``--on-bad-row stop``, the first one stops: exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from classifier_service.errors import DataError
from classifier_service.portfolio.model import load_portfolio
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.routing.classifier import Scores, TierClassifier
from classifier_service.routing.outcome_model import OutcomeModel


def _classifier(model_dir: Path) -> Callable[[str], Scores]:
    return TierClassifier(load_artifact(model_dir)).score


def _records(paths: Sequence[Path], tiers: Sequence[str], on_bad_row: str) -> list[Any]:
    from tier_router_training.outcome_records import read_outcomes

    records, report = read_outcomes(paths, tiers, "stop" if on_bad_row == "stop" else "skip")
    for line in report.skipped[:20]:
        print(f"skipped {line}", file=sys.stderr)
    if len(report.skipped) > 20:
        print(f"... and {len(report.skipped) - 20} more skipped rows", file=sys.stderr)
    if not records:
        raise DataError(f"no usable outcome records in {', '.join(map(str, paths))} "
                        f"({report.rows} rows, {len(report.skipped)} skipped)")
    print(f"{len(records)} outcome records from {report.rows} rows "
          f"({len(report.skipped)} skipped)", file=sys.stderr)
    return records


def parse_shares(values: Sequence[str] | None, tiers: Sequence[str], flag: str
                 ) -> dict[str, float]:
    """``TIER=SHARE`` pairs; a clear error naming the flag and the bad pair."""
    out: dict[str, float] = {}
    for value in values or []:
        tier, sep, share = value.partition("=")
        if not sep or tier not in tiers:
            raise DataError(f"{flag} {value!r}: expected TIER=SHARE with TIER one of "
                            f"{', '.join(tiers)}")
        try:
            number = float(share)
        except ValueError:
            raise DataError(f"{flag} {value!r}: {share!r} is not a number") from None
        if not 0 <= number <= 1:
            raise DataError(f"{flag} {value!r}: the share must be 0-1")
        out[tier] = number
    return out


def targets(args: argparse.Namespace, tiers: Sequence[str]) -> dict[str, Any]:
    """The calibration target of ``--max-share``, ``--min-share``, ``--match-tier``,
    ``--objective`` and ``--margin``, checked, as keywords of ``train_model`` and
    ``recalibrate``."""
    if args.match_tier is not None and args.match_tier not in tiers:
        raise DataError(f"--match-tier {args.match_tier!r}: not a tier ({', '.join(tiers)})")
    caps = parse_shares(args.max_share, tiers, "--max-share")
    floors = parse_shares(args.min_share, tiers, "--min-share")
    for tier, floor in floors.items():
        if tier in caps and floor > caps[tier]:
            raise DataError(f"--min-share {tier}={floor:g} is above --max-share "
                            f"{tier}={caps[tier]:g}: no point can meet both")
    if sum(floors.values()) > 1 + 1e-9:
        raise DataError(f"--min-share: the floors add up to {sum(floors.values()):g}, more "
                        "than 1: no point can meet them")
    out: dict[str, Any] = {"max_share": caps or None, "min_share": floors or None,
                           "match_tier": args.match_tier}
    given = {f: v for f, v in (("objective", args.objective), ("margin", args.margin))
             if v is not None}
    if given and args.match_tier is None:
        raise DataError(" and ".join(f"--{f} {v}" for f, v in given.items()) + ": only with "
                        "--match-tier TIER (they choose among the points as good as "
                        "always-TIER)")
    return out | given


def describe_target(target: dict[str, Any]) -> str:
    """What a point was asked for, in words."""
    parts = [f"at most {t} {s:.1%}" for t, s in (target.get("max_share") or {}).items()]
    parts += [f"at least {t} {s:.1%}" for t, s in (target.get("min_share") or {}).items()]
    if target.get("match_tier"):
        parts.append(f"as good as always-{target['match_tier']} (objective "
                     f"{target.get('objective', 'share')}, margin {target.get('margin', 1):g} "
                     "SE)")
    return "target: " + ("; ".join(parts) if parts else "none (the highest quality)")


def describe_point(point: dict[str, Any], tiers: Sequence[str]) -> str:
    """The point for a person: thresholds, expected quality, shares, cost (tiers in order)."""
    lines = [
        describe_target(point.get("target") or {}),
        "operating point: router thresholds " + ", ".join(
            f"{t} {point['router_thresholds'][t]:.3f}" for t in tiers[:-1]) +
        "; check thresholds " + ", ".join(
            f"{t} {point['check_thresholds'][t]:.3f}" for t in tiers[:-1]),
        f"expected quality {point['expected_quality']:.3f}"
        + (f" (to match: {point['target']['quality_to_match']:.3f})"
           if point.get("target", {}).get("quality_to_match") is not None else "")
        + f"; target met: {'yes' if point.get('target_met') else 'no'}",
        "shares answered: " + ", ".join(f"{t} {point['shares'][t]:.1%}" for t in tiers),
        f"cost per request {point['cost']:.3f} (relative; every call counted; costs "
        + ", ".join(f"{t} {c:g}" for t in tiers if (c := point.get("costs", {}).get(t)))
        + ")",
    ]
    return "\n".join(lines)


def train(args: argparse.Namespace) -> int:
    from tier_router_training.outcomes.train import train_model

    if args.portfolio is None:
        raise DataError("train --outcomes needs --portfolio FILE (its tiers and their costs)")
    portfolio = load_portfolio(args.portfolio)
    tiers = portfolio.tier_names
    base = args.base_model or bundled_model_dir()
    target = targets(args, tiers)
    records = _records(args.outcomes, tiers, args.on_bad_row)
    costs = portfolio.tier_costs()
    try:
        model, _ = train_model(records, tiers, costs, args.out, _classifier(base),
                               classifier_dir=base, **target)
    except ValueError as exc:
        raise DataError(f"cannot train on these outcomes: {exc}") from None
    meta = model.metadata
    for tier in tiers:
        counts = meta["records"][tier]
        why = meta["router"]["fallback"].get(tier)
        print(f"{tier}: {counts['records']:.0f} records, {counts['good']:.0f} good; "
              + (f"falls back to the classifier ({why})" if why else "learned"))
    print("answer check: " + (_check_line(meta["check"]) if meta.get("check")
                              else "none (no answers in the records)"))
    print(describe_point(meta["operating_point"], tiers))
    print(f"model {model.model_version} written to {args.out} "
          f"(classifier {meta['classifier']['model_version']} copied into "
          f"{args.out}/classifier)")
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from tier_router_training.outcomes.train import recalibrate

    model = OutcomeModel.load(args.model)
    tiers = list(model.tiers)
    target = targets(args, tiers)
    if not (target["max_share"] or target["min_share"] or target["match_tier"]):
        raise DataError("calibrate --outcomes needs a target: --max-share TIER=SHARE, "
                        "--min-share TIER=SHARE and/or --match-tier TIER")
    costs = load_portfolio(args.portfolio).tier_costs() if args.portfolio else None
    records = _records(args.outcomes, tiers, args.on_bad_row)
    before = model.model_version
    base = model.classifier_dir
    try:
        meta = recalibrate(args.model, records, costs,
                           _classifier(base) if base is not None else None, **target)
    except ValueError as exc:
        raise DataError(f"cannot calibrate on these outcomes: {exc}") from None
    point = meta["operating_point"]
    print(f"{point['reference_prompts']} reference prompts with a score at every tier")
    print(describe_point(point, tiers))
    print(f"written to {args.model}/metadata.json: model_version {before} -> "
          f"{meta['model_version']} (a running service picks it up on reload)")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from tier_router_training.outcomes.records import OutcomeTable
    from tier_router_training.outcomes.report import evaluate_model

    if args.model is None:
        raise DataError("evaluate --outcomes needs --model DIR (an outcome model)")
    model = OutcomeModel.load(args.model)
    records = _records(args.outcomes, list(model.tiers), args.on_bad_row)
    costs = (load_portfolio(args.portfolio).tier_costs() if args.portfolio else
             model.metadata.get("costs") or model.metadata["operating_point"]["costs"])
    base = model.classifier_dir
    table = OutcomeTable.build(records, model.tiers)
    try:
        report = evaluate_model(model, table, costs, args.report_dir,
                                _classifier(base) if base is not None else None)
    except ValueError as exc:
        raise DataError(f"cannot evaluate on these outcomes: {exc}") from None
    always = ", ".join(f"{t} {v['quality']:.3f}" for t, v in report["always"].items())
    print(f"{report['prompts']} reference prompts; always-tier quality: {always}; "
          f"oracle {report['oracle']['quality']:.3f}")
    cal = report.get("calibrated")
    if cal:
        print(f"calibrated point: quality {cal['expected_quality']:.3f}, cost "
              f"{cal['cost']:.3f}, random router with the same mix "
              f"{cal['random_same_mix']:.3f} (delta {cal['delta_vs_random']:+.3f})")
    print(f"wrote {args.report_dir}/report.json, cost_quality.png")
    return 0


def _check_line(check: dict[str, Any]) -> str:
    words = check.get("words")
    if not words:
        return f"learned on {check['answers']} answers; weighs no words"
    lead = ", ".join(f'"{t}"' for t in words["towards_not_good"][:5])
    return (f"learned on {check['answers']} answers; weighs {words['terms']} answer terms "
            f"(most towards not good: {lead})")
