"""``tier-router calibrate``: a confidence threshold that caps the share of expensive traffic.

Given a reference set of prompts (labels optional), the policy's default-to-cheaper rule sends
less traffic up as the confidence threshold rises. Calibration picks the lowest threshold at
which no capped tier receives more than its share (``--max-share complex=0.3``): the least
change to the classifier's choices that keeps within budget. The threshold is stored in the
model's metadata, where it applies unless the portfolio sets ``policy.confidence_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier_service.errors import DataError
from classifier_service.routing.artifact import load_artifact, update_metadata
from classifier_service.routing.classifier import TierClassifier
from tier_router_training.dataset import Columns, load_prompts
from tier_router_training.evaluate import traffic_shares
from tier_router_training.pipeline import default_to_cheaper

GRID = tuple(float(round(x, 3)) for x in np.arange(0.0, 1.0005, 0.005))


@dataclass(frozen=True)
class Calibration:
    threshold: float
    shares: dict[str, float]
    before: dict[str, float]
    rows: int


def parse_max_share(items: Sequence[str], tiers: Sequence[str]) -> dict[str, float]:
    """``["complex=0.3", ...]`` -> ``{"complex": 0.3}``, checked against the model's tiers."""
    caps: dict[str, float] = {}
    for item in items:
        tier, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not 0.0 <= share <= 1.0:
            raise DataError(f"--max-share {item!r}: expected TIER=SHARE with SHARE in [0, 1]")
        if tier not in tiers:
            raise DataError(f"--max-share {item!r}: unknown tier {tier!r} "
                            f"(tiers: {', '.join(tiers)})")
        caps[tier] = share
    if not caps:
        raise DataError("give at least one --max-share TIER=SHARE")
    return caps


def calibrate(
    model_dir: Path | str,
    data: Sequence[Path | str],
    max_share: Mapping[str, float],
    *,
    columns: Columns | None = None,
    write: bool = True,
) -> Calibration:
    artifact = load_artifact(model_dir)
    order = artifact.tier_labels
    prompts = load_prompts(data, columns)
    classifier = TierClassifier(artifact)
    proba = np.array([[classifier.score(p).tiers.get(t, 0.0) for t in order] for p in prompts])
    before = traffic_shares(proba, order, artifact.confidence_threshold)
    chosen = None
    for threshold in GRID:
        routed = default_to_cheaper(proba, threshold)
        if all((routed == order.index(t)).mean() <= cap for t, cap in max_share.items()):
            chosen = threshold
            break
    if chosen is None:
        lowest = traffic_shares(proba, order, 1.0)
        raise DataError(
            "no threshold meets the caps " + ", ".join(f"{t}<={c}" for t, c in max_share.items())
            + "; at the highest threshold the shares are "
            + ", ".join(f"{t} {s:.1%}" for t, s in lowest.items())
        )
    shares = traffic_shares(proba, order, chosen)
    if write:
        thresholds: dict[str, Any] = {
            "confidence_threshold": chosen,
            "source": "calibration",
            "max_share": dict(max_share),
            "reference": {"rows": len(prompts), "traffic_share": shares,
                          "sources": [Path(p).name for p in data]},
        }
        update_metadata(model_dir, {"thresholds": thresholds})
    return Calibration(threshold=chosen, shares=shares, before=before, rows=len(prompts))
