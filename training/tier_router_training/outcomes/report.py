"""Evaluation of an outcome model on reference outcomes: report.json and cost_quality.png.

``report.json`` keys:

- ``tiers``, ``costs``, ``prompts`` (complete rows replayed);
- ``always``: per tier, ``quality`` and ``cost`` of sending everything there;
- ``oracle``: the cheapest tier with the best score, per prompt (``quality``, ``cost``, ``shares``);
- ``random``: a random router at every mix of two cost-adjacent tiers (``mix``, ``quality``,
  ``cost``, ``cheapest_share``), i.e. the straight lines between the always-tier points;
- ``operating_points``: the model's cost-quality frontier over its threshold grid;
- ``calibrated``: the model's own operating point replayed here, with ``random_same_mix``
  (a random router with the same answered shares) and ``delta_vs_random``;
- for two tiers, ``pgr``: PGR = (q - q_weak) / (q_strong - q_weak) of the router alone at 20, 30
  and 50% strong calls, ``apgr``: PGR averaged over strong shares 0, 0.01, ... 1 (random: 0.5),
  ``calibrated_pgr`` and its strong share.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_service.routing.outcome_model import ClassifierScores, OutcomeModel
from tier_router_training.outcomes.calibrate import (
    describe,
    frontier,
    operating_points,
    point_arrays,
    replay,
)
from tier_router_training.outcomes.records import OutcomeTable
from tier_router_training.outcomes.train import predict

FloatArray = npt.NDArray[np.float64]
PGR_SHARES = (0.2, 0.3, 0.5)
APGR_GRID = np.linspace(0.0, 1.0, 101)


def pgr_curve(scores: FloatArray, p_weak_good: FloatArray, shares: FloatArray) -> FloatArray:
    """PGR when the prompts least likely to be fine at the weak tier go to the strong one."""
    n = len(scores)
    qw, qs = scores[:, 0].mean(), scores[:, 1].mean()
    order = np.argsort(p_weak_good, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum(scores[order, 1] - scores[order, 0])]) / n
    q = qw + np.interp(shares * n, np.arange(n + 1), gain)
    gap = qs - qw
    result: FloatArray = (q - qw) / gap if abs(gap) > 1e-12 else np.zeros_like(q)
    return result


def evaluate(scores: FloatArray, p_good: FloatArray, p_bad: FloatArray, tiers: tuple[str, ...],
             costs: Mapping[str, float], calibrated: Mapping[str, Any] | None,
             fallback: list[bool]) -> dict[str, Any]:
    """The report of one model's predictions on complete rows (``scores``: prompts x tiers)."""
    cost = np.array([float(costs[t]) for t in tiers])
    n, nt = scores.shape
    q = scores.mean(axis=0)
    report: dict[str, Any] = {"tiers": list(tiers), "costs": dict(zip(tiers, cost.tolist(),
                                                                      strict=True)),
                              "prompts": n}
    report["always"] = {t: {"quality": float(q[i]), "cost": float(cost[i])}
                        for i, t in enumerate(tiers)}
    best = scores.max(axis=1, keepdims=True)
    pick = np.argmax(scores >= best - 1e-12, axis=1)
    report["oracle"] = {"quality": float(best.mean()), "cost": float(cost[pick].mean()),
                        "shares": (np.bincount(pick, minlength=nt) / n).tolist()}
    by_cost = np.argsort(cost)
    rnd = []
    for a, b in itertools_pairs(by_cost):
        for m in np.linspace(0, 1, 11):
            mix = np.zeros(nt)
            mix[a], mix[b] = 1 - m, m
            rnd.append({"mix": mix.tolist(), "quality": float(mix @ q), "cost": float(mix @ cost),
                        "cheapest_share": float(mix[by_cost[0]])})
    report["random"] = rnd
    points = operating_points(scores, p_good, p_bad, cost, fallback)
    report["operating_points"] = [describe(p, tiers) for p in frontier(points)]
    if calibrated is not None:
        rt, ct = point_arrays(calibrated, tiers)
        r = replay(scores, p_good, p_bad, cost, rt, ct)
        same = float(r.shares @ q)
        report["calibrated"] = describe({"router": rt, "check": ct, "quality": r.quality,
                                         "cost": r.cost, "shares": r.shares.tolist(),
                                         "calls": r.calls.tolist()}, tiers,
                                        dict(calibrated.get("target") or {}))
        report["calibrated"]["random_same_mix"] = same
        report["calibrated"]["delta_vs_random"] = r.quality - same
        if nt == 2:
            gap = q[1] - q[0]
            report["calibrated_pgr"] = float((r.quality - q[0]) / gap) if abs(gap) > 1e-12 else 0.0
            report["calibrated_strong_share"] = float(r.shares[1])
    if nt == 2:
        curve = pgr_curve(scores, p_good[:, 0], APGR_GRID)
        report["pgr"] = {f"{s:.2f}": float(pgr_curve(scores, p_good[:, 0], np.array([s]))[0])
                         for s in PGR_SHARES}
        report["apgr"] = float(curve.mean())
        report["random_apgr"] = float(APGR_GRID.mean())
    return report


def itertools_pairs(order: npt.NDArray[np.intp]) -> list[tuple[int, int]]:
    return [(int(order[i]), int(order[i + 1])) for i in range(len(order) - 1)]


def evaluate_model(model: OutcomeModel, table: OutcomeTable, costs: Mapping[str, float],
                   report_dir: Path | None = None,
                   classifier: Callable[[str], ClassifierScores] | None = None
                   ) -> dict[str, Any]:
    """Evaluate a loaded model on reference outcomes; with ``report_dir``, write the files."""
    rows = table.complete_rows()
    if len(rows) == 0:
        raise ValueError("evaluation needs prompts with a record at every tier; none have")
    ref = table.subset(rows)
    p_good, p_bad = predict(model, ref, classifier)
    fallback = [t in model.fallback for t in model.tiers]
    report = evaluate(ref.scores, p_good, p_bad, model.tiers, costs,
                      model.metadata.get("operating_point"), fallback)
    if report_dir is not None:
        write_report(report, Path(report_dir))
    return report


def write_report(report: dict[str, Any], report_dir: Path) -> None:
    from classifier_service.routing.artifact import atomic_write

    atomic_write(report_dir / "report.json",
                 lambda p: p.write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(report_dir / "cost_quality.png", lambda p: plot(report, p))


def plot(report: dict[str, Any], path: Path) -> None:
    """Quality against cost (left) and against the cheapest tier's share (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = report["tiers"]
    cheapest = int(np.argmin([report["costs"][t] for t in tiers]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    pts = report["operating_points"]
    for ax in axes:
        key = "cost" if ax is axes[0] else None
        xs = [p["cost"] if key else p["shares"][tiers[cheapest]] for p in pts]
        ax.plot(xs, [p["expected_quality"] for p in pts], ".-",
                color="tab:blue", label="outcome model (operating points)")
        rx = [r["cost"] if ax is axes[0] else r["cheapest_share"] for r in report["random"]]
        ax.plot(rx, [r["quality"] for r in report["random"]], "--", color="grey",
                label="random router")
        for t in tiers:
            a = report["always"][t]
            x = a["cost"] if ax is axes[0] else float(t == tiers[cheapest])
            ax.plot([x], [a["quality"]], "s", label=f"always {t}")
        o = report["oracle"]
        ax.plot([o["cost"] if ax is axes[0] else o["shares"][cheapest]], [o["quality"]], "*",
                markersize=12, color="gold", label="oracle")
        c = report.get("calibrated")
        if c:
            ax.plot([c["cost"] if ax is axes[0] else c["shares"][tiers[cheapest]]],
                    [c["expected_quality"]], "o", markersize=10, mfc="none", color="red",
                    label="calibrated point")
        ax.set_ylabel("expected quality (mean score of the answers kept)")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("cost per request (relative units, every call counted)")
    axes[1].set_xlabel(f"share answered by the cheapest tier ({tiers[cheapest]})")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Cost and quality on {report['prompts']} reference prompts")
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
