"""``tier-router calibrate``: a confidence threshold that caps the share of expensive traffic.

Given a reference set of prompts (labels optional), the policy's default-to-cheaper rule sends
less traffic up as the confidence threshold rises. Calibration picks the lowest threshold at
which no capped tier receives more than its share (``--max-share complex=0.3``): the least
change to the classifier's choices that keeps within budget. The threshold is stored in the
model's metadata, where it applies unless the portfolio sets ``policy.confidence_threshold``.

When the model's own threshold already keeps every capped tier under its cap, nothing is
written ("already under the cap; threshold unchanged"): the lowest threshold that meets the
caps could be 0.000, which would switch default-to-cheaper off. A calibrated model gets a new
``model_version`` (``<version>-cal-<hash of the thresholds>``), so logs and feedback tell it
from the uncalibrated one; the metadata is written to a temporary file and renamed over.
"""

from __future__ import annotations

import hashlib
import json
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
from tier_router_training.progress import Progress

GRID = tuple(float(round(x, 3)) for x in np.arange(0.0, 1.0005, 0.005))


@dataclass(frozen=True)
class Calibration:
    threshold: float
    shares: dict[str, float]
    before: dict[str, float]
    rows: int
    previous: float = 0.0
    """The model's threshold before calibration."""
    unchanged: bool = False
    """True when the model already met the caps: nothing was written."""
    model_version: str = ""

    def message(self) -> str:
        """What happened to the threshold, in one line."""
        if self.unchanged:
            return (f"already under the cap; threshold unchanged ({self.previous:.3f}), "
                    "metadata not rewritten")
        line = (f"confidence threshold {self.previous:.3f} -> {self.threshold:.3f}, "
                f"model_version {self.model_version}")
        if self.threshold == 0.0:
            line += ("; threshold 0.000 turns default-to-cheaper off: every prompt goes to "
                     "the classifier's top tier")
        return line


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
    progress: bool = False,
) -> Calibration:
    artifact = load_artifact(model_dir)
    order = artifact.tier_labels
    prompts = load_prompts(data, columns)
    classifier = TierClassifier(artifact)
    bar = Progress(len(prompts), "prompts scored", enabled=progress)
    rows = []
    for i, prompt in enumerate(prompts, 1):
        rows.append([classifier.score(prompt).tiers.get(t, 0.0) for t in order])
        if i % 200 == 0 or i == len(prompts):
            bar.advance(i - bar.done)
    proba = np.array(rows)
    previous = artifact.confidence_threshold
    before = traffic_shares(proba, order, previous)
    if all(before[t] <= cap for t, cap in max_share.items()):
        return Calibration(threshold=previous, shares=before, before=before, rows=len(prompts),
                           previous=previous, unchanged=True,
                           model_version=artifact.model_version)
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
    thresholds: dict[str, Any] = {
        "confidence_threshold": chosen,
        "source": "calibration",
        "max_share": dict(max_share),
        "reference": {"rows": len(prompts), "traffic_share": shares,
                      "sources": [Path(p).name for p in data]},
    }
    version = calibrated_version(artifact.model_version, thresholds)
    if write:  # update_metadata writes a temporary file and renames it over metadata.json
        update_metadata(model_dir, {"thresholds": thresholds, "model_version": version})
    return Calibration(threshold=chosen, shares=shares, before=before, rows=len(prompts),
                       previous=previous, model_version=version)


def calibrated_version(version: str, thresholds: Mapping[str, Any]) -> str:
    """``tier-ab61211ac07c`` -> ``tier-ab61211ac07c-cal-1a2b3c``; a recalibration replaces
    the suffix rather than stacking another."""
    base = version.split("-cal-")[0]
    digest = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()
    return f"{base}-cal-{digest[:6]}"
