"""Operating points of an outcome model: router and check thresholds chosen together.

A point is one threshold per tier for the router (start at the cheapest tier whose P(good)
reaches it) and one per tier for the check (escalate to the next tier while P(not good) is
above it). Replayed on reference outcomes (prompts with a score at every tier) a point has an
expected quality (mean score of the answers kept), a cost (mean over prompts of the summed
relative cost of every call made: a cascade that calls 7B and then 13B pays both) and shares
(the fraction of prompts answered by each tier; ``calls`` counts every call).

Few free thresholds, so that a few hundred reference prompts choose them without fitting their
noise: with a check, the grid holds two families, the router alone (check off) and the cascade
alone (every prompt starts at the cheapest tier; one check threshold per tier), never both at
once. Without a check only the router family exists.

Targets: ``max_share`` caps and ``min_share`` floors tiers' answered shares; ``match_tier`` asks
for a point whose quality is at least that of sending everything to that tier, by a margin of
``margin`` standard errors of the per-prompt paired difference (so that a point that matches
only on the luck of the reference prompts is not taken). Among those, objective ``share`` (the
default) takes the point with the most traffic answered by the cheapest tier, cost breaking ties;
objective ``cost`` the cheapest point. With no ``match_tier``, the point of highest quality
within the caps and floors. Remaining ties go to the cheaper point.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MAX_POINTS = 20000
NEVER = 1.01  # a router threshold no score reaches; a check threshold of 1.0 never fires
ALWAYS = -1.01  # a router threshold every score reaches
MODES = ("level", "gain")
OBJECTIVES = ("share", "cost")
MARGIN = 1.0


def router_scores(p_good: FloatArray, learned: Sequence[bool], mode: str) -> FloatArray:
    """What the router thresholds: per tier, P(good) ("level"), or P(good) minus the best
    P(good) of a more expensive learned tier ("gain": how little going up would add).

    ``gain`` sends up the prompts where the expensive tier helps, not those where every tier
    fails. Fallback tiers keep their 1 / 0 (classifier accepts or not).
    """
    if mode == "level":
        return p_good
    if mode != "gain":
        raise ValueError(f"router mode {mode!r} is not one of {MODES}")
    out = p_good.copy()
    nt = p_good.shape[1]
    for t in range(nt - 1):
        above = [u for u in range(t + 1, nt) if learned[u]]
        if learned[t] and above:
            out[:, t] = p_good[:, t] - p_good[:, above].max(axis=1)
    return out


def default_costs(params_b: Mapping[str, float]) -> dict[str, float]:
    """Relative cost per call, proportional to parameter count (the cheapest tier costs 1)."""
    low = min(params_b.values())
    return {t: float(v) / low for t, v in params_b.items()}


@dataclass(frozen=True)
class Replay:
    quality: float
    cost: float
    shares: FloatArray  # (tiers,) answered
    calls: FloatArray  # (tiers,) called, per prompt
    kept: FloatArray | None = None  # (prompts,) the score of the answer each prompt keeps


def replay(scores: FloatArray, p_good: FloatArray, p_bad: FloatArray, costs: FloatArray,
           router_th: Sequence[float], check_th: Sequence[float]) -> Replay:
    """Replay one operating point on complete rows (a score at every tier)."""
    n, nt = scores.shape
    cur = np.full(n, nt - 1, dtype=np.intp)
    for t in range(nt - 2, -1, -1):
        cur[p_good[:, t] >= router_th[t]] = t
    called = np.zeros((n, nt), dtype=bool)
    for t in range(nt - 1):
        here = cur == t
        up = here & (np.nan_to_num(p_bad[:, t], nan=0.0) > check_th[t])
        called[up, t] = True
        cur[up] = t + 1
    called[np.arange(n), cur] = True
    shares = np.bincount(cur, minlength=nt) / n
    calls = called.mean(axis=0)
    kept = scores[np.arange(n), cur]
    return Replay(float(kept.mean()), float(calls @ costs), shares, calls, kept)


def paired_se(kept: FloatArray, scores: FloatArray) -> list[float]:
    """Per tier, the standard error of the mean of (kept score - that tier's score)."""
    n = len(kept)
    if n < 2:
        return [0.0] * scores.shape[1]
    d = kept[:, None] - scores
    return [float(v) for v in d.std(axis=0, ddof=1) / math.sqrt(n)]


def _candidates(values: FloatArray, k: int, never: float) -> list[float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return [never]
    qs = np.quantile(v, np.linspace(0, 1, k))
    return sorted({*(float(q) for q in qs), never})


def operating_points(scores: FloatArray, p_good: FloatArray, p_bad: FloatArray,
                     costs: FloatArray, fallback: Sequence[bool]) -> list[dict[str, Any]]:
    """The router family and (with a check) the cascade family over quantile grids, replayed.

    ``p_good`` here is the router's score (:func:`router_scores`). Each point carries its
    family, thresholds, quality, cost, shares, calls and ``se``: per tier, the standard error of
    its paired difference to always-that-tier on these prompts.
    """
    nt = scores.shape[1]
    has_check = [not np.isnan(p_bad[:, t]).all() for t in range(nt - 1)]
    families: list[tuple[str, list[list[float]], list[list[float]]]] = []
    router_dims = sum(not f for f in fallback[: nt - 1])
    k = max(3, min(51, int(MAX_POINTS ** (1 / max(router_dims, 1)))))
    router_axes = [[0.5] if fallback[t] else [ALWAYS, *_candidates(p_good[:, t], k, NEVER)]
                   for t in range(nt - 1)]
    families.append(("router", router_axes, [[1.0]] * (nt - 1)))
    if any(has_check):
        k = max(3, min(51, int(MAX_POINTS ** (1 / max(sum(has_check), 1)))))
        check_axes = [_candidates(p_bad[:, t], k, 1.0) if has_check[t] else [1.0]
                      for t in range(nt - 1)]
        # Start at the cheapest tier (a fallback tier keeps the classifier's say).
        start = [[0.5] if fallback[t] else [ALWAYS if t == 0 else NEVER] for t in range(nt - 1)]
        families.append(("cascade", start, check_axes))
    points = []
    for family, r_axes, c_axes in families:
        for combo in itertools.product(*r_axes, *c_axes):
            rt = [*combo[: nt - 1], 0.0]
            ct = [*combo[nt - 1:], 1.0]
            r = replay(scores, p_good, p_bad, costs, rt, ct)
            assert r.kept is not None
            points.append({"family": family, "router": rt, "check": ct, "quality": r.quality,
                           "cost": r.cost, "shares": r.shares.tolist(),
                           "calls": r.calls.tolist(), "se": paired_se(r.kept, scores)})
    return points


def choose(points: list[dict[str, Any]], tiers: Sequence[str], scores: FloatArray,
           max_share: Mapping[str, float] | None = None, match_tier: str | None = None,
           min_share: Mapping[str, float] | None = None, *, objective: str = "share",
           margin: float = MARGIN) -> dict[str, Any]:
    """The operating point a target asks for, described for metadata and the CLI.

    ``min_share`` (a floor on tiers' answered shares, e.g. "at least 65% on the small model")
    filters like ``max_share``; when no point meets the shares, all points are considered and
    ``target_met`` is false. With ``match_tier``, a point qualifies when its quality minus
    ``margin`` standard errors of its paired difference reaches always-``match_tier``'s; of
    those, ``objective`` picks (see the module's docstring); when none qualifies, the point of
    highest quality, and ``target_met`` is false.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
    if margin < 0:
        raise ValueError(f"margin {margin!r} is negative")
    caps = dict(max_share or {})
    floors = dict(min_share or {})
    for t in [*caps, *floors, *([match_tier] if match_tier else [])]:
        if t not in tiers:
            raise ValueError(f"tier {t!r} is not one of {list(tiers)}")
    ok = [p for p in points
          if all(p["shares"][tiers.index(t)] <= s + 1e-12 for t, s in caps.items())
          and all(p["shares"][tiers.index(t)] >= s - 1e-12 for t, s in floors.items())]
    met = bool(ok)
    pool = ok or points
    target: dict[str, Any] = {"max_share": caps, "min_share": floors, "match_tier": match_tier}
    if match_tier is not None:
        m = tiers.index(match_tier)
        goal = float(scores[:, m].mean())
        target.update(quality_to_match=round(goal, 4), objective=objective, margin=margin)
        good = [p for p in pool
                if p["quality"] - margin * p.get("se", [0.0] * len(tiers))[m] >= goal - 1e-12]
        if good and objective == "share":
            best = max(good, key=lambda p: (round(p["shares"][0], 9), -p["cost"], p["quality"]))
        elif good:
            best = min(good, key=lambda p: (p["cost"], -p["quality"]))
        else:
            met = False
            best = max(pool, key=lambda p: (p["quality"], -p["cost"]))
    else:
        best = max(pool, key=lambda p: (p["quality"], -p["cost"]))
    return describe(best, tiers, target, met)


def describe(point: dict[str, Any], tiers: Sequence[str], target: dict[str, Any] | None = None,
             met: bool = True) -> dict[str, Any]:
    return {
        # Thresholds unrounded: a confident check scores many answers within 1e-6 of one
        # another, and a rounded threshold would send a different share of them up.
        "router_thresholds": {t: float(point["router"][i]) for i, t in enumerate(tiers)},
        "check_thresholds": {t: float(point["check"][i]) for i, t in enumerate(tiers)},
        "expected_quality": _r(point["quality"]), "cost": _r(point["cost"]),
        "shares": {t: _r(point["shares"][i]) for i, t in enumerate(tiers)},
        "calls": {t: _r(point["calls"][i]) for i, t in enumerate(tiers)},
        "family": point.get("family", "router"),
        "target": target or {}, "target_met": met,
    }


def _r(x: float) -> float:
    return round(float(x), 6) if math.isfinite(x) else float(x)


def point_arrays(point: Mapping[str, Any], tiers: Sequence[str]) -> tuple[list[float], list[float]]:
    """Thresholds of a described point back as lists in tier order."""
    return ([float(point["router_thresholds"][t]) for t in tiers],
            [float(point["check_thresholds"][t]) for t in tiers])


def frontier(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both cost and quality, by cost."""
    out: list[dict[str, Any]] = []
    for p in sorted(points, key=lambda p: (p["cost"], -p["quality"])):
        if not out or p["quality"] > out[-1]["quality"] + 1e-12:
            out.append(p)
    return out
