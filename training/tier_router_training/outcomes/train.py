"""From records to a saved, calibrated outcome model, and a model's predictions on records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_service.feedback import OutcomeRecord
from classifier_service.routing.artifact import atomic_write, library_versions
from classifier_service.routing.outcome_model import (
    METADATA_FILE,
    ClassifierScores,
    OutcomeModel,
    metadata_text,
    model_version,
    save_model,
)
from tier_router_training.outcomes.calibrate import (
    MARGIN,
    MODES,
    choose,
    operating_points,
    router_scores,
)
from tier_router_training.outcomes.fit import FitResult, fit
from tier_router_training.outcomes.records import OutcomeTable

FloatArray = npt.NDArray[np.float64]


def calibrate_fit(result: FitResult, costs: Mapping[str, float],
                  max_share: Mapping[str, float] | None = None,
                  match_tier: str | None = None,
                  min_share: Mapping[str, float] | None = None, *,
                  objective: str = "share", margin: float = MARGIN) -> dict[str, Any]:
    """Choose the operating point on the fit's out-of-fold predictions of its own records.

    Both router modes are tried; the one whose chosen point does best on these out-of-fold
    predictions (target met, then quality for ``max_share``; for ``match_tier`` the cheapest
    tier's share or the cost, as ``objective`` says) is kept. See :func:`.calibrate.choose`.
    """
    tiers = result.table.tiers
    rows = result.table.complete_rows()
    if len(rows) == 0:
        raise ValueError("calibration needs prompts with a record at every tier; none have")
    cost = np.array([float(costs[t]) for t in tiers])
    fallback = [t in result.metadata["router"]["fallback"] for t in tiers]
    learned = [not f for f in fallback]
    scores = result.table.scores[rows]
    best: tuple[tuple[float, ...], dict[str, Any]] | None = None
    for mode in MODES:
        g = router_scores(result.p_good[rows], learned, mode)
        points = operating_points(scores, g, result.p_bad[rows], cost, fallback)
        point = choose(points, tiers, scores, max_share, match_tier, min_share,
                       objective=objective, margin=margin)
        point["router_mode"] = mode
        q, c = point["expected_quality"], point["cost"]
        cheap = round(point["shares"][tiers[0]], 9)
        if match_tier and objective == "share":
            key: tuple[float, ...] = (float(point["target_met"]), cheap, -c, q)
        elif match_tier:
            key = (float(point["target_met"]), -c, q)
        else:
            key = (float(point["target_met"]), q, -c)
        if best is None or key > best[0] + tuple(1e-9 for _ in key):
            best = (key, point)
    assert best is not None
    point = best[1]
    if result.p_bad_fit is not None and result.check_vocabulary is None:
        point["check_thresholds"] = carry_check_thresholds(
            point["check_thresholds"], tiers, result.p_bad[rows], result.p_bad_fit[rows])
    point["reference_prompts"] = len(rows)
    point["costs"] = {t: float(costs[t]) for t in tiers}
    return point


def carry_check_thresholds(thresholds: Mapping[str, float], tiers: Sequence[str],
                           oof: FloatArray, final: FloatArray) -> dict[str, float]:
    """Check thresholds chosen on out-of-fold p_bad, moved to the final check's scale.

    The models of the folds and the final one (fitted on every record) do not score on the same
    scale, so a p_bad threshold chosen on the folds' predictions escalates a different share of
    answers under the final check. Each threshold becomes the final check's p_bad that escalates
    the same share of these answers as the chosen threshold did out of fold.

    :func:`calibrate_fit` carries them only for a check of dense features. A check that weighs
    words scores the answers it was fitted on far more surely than new ones (it has seen their
    words), so its scores on them say nothing of the share it escalates of new answers; its
    out-of-fold thresholds stand (on AlpacaEval halves, carrying them scattered the 7B share
    from 56% to 95%).
    """
    out = dict(thresholds)
    for t, tier in enumerate(tiers):
        if tier not in thresholds:
            continue
        th = float(thresholds[tier])
        col, fin = oof[:, t], final[:, t]
        ok = ~np.isnan(col) & ~np.isnan(fin)
        if th >= 1.0 or not ok.any():
            continue
        rate = float(np.mean(col[ok] > th))
        if rate >= 1.0:
            out[tier] = float(np.nextafter(fin[ok].min(), -np.inf))
        elif rate > 0.0:
            out[tier] = float(np.quantile(fin[ok], 1.0 - rate))
        else:
            out[tier] = float(fin[ok].max())
    return out


def train_model(records: Iterable[OutcomeRecord], tiers: Sequence[str],
                costs: Mapping[str, float], out_dir: Path | None = None,
                classifier: Callable[[str], ClassifierScores] | None = None, *,
                max_share: Mapping[str, float] | None = None, match_tier: str | None = None,
                min_share: Mapping[str, float] | None = None, seed: int = 0,
                classifier_dir: Path | None = None,
                objective: str = "share", margin: float = MARGIN,
                **fit_options: Any) -> tuple[OutcomeModel, FitResult]:
    """Fit, calibrate on out-of-fold predictions, and (with ``out_dir``) save atomically;
    ``classifier_dir``: the classifier behind ``classifier``, copied into the folder."""
    result = fit(records, tiers, classifier, seed=seed, **fit_options)
    meta = dict(result.metadata)
    meta["operating_point"] = calibrate_fit(result, costs, max_share, match_tier,
                                             min_share, objective=objective, margin=margin)
    meta["router"] = dict(meta["router"], mode=meta["operating_point"]["router_mode"])
    meta["libraries"] = library_versions()
    meta["seed"] = seed
    meta["costs"] = {t: float(costs[t]) for t in tiers}
    if out_dir is not None:
        save_model(out_dir, result.arrays, result.vocabulary, meta, classifier_dir,
                   result.check_vocabulary)
        return OutcomeModel.load(out_dir), result
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in result.arrays.items()}
    return OutcomeModel(meta, arrays, result.vocabulary,
                        check_vocabulary=result.check_vocabulary), result


def predict(model: OutcomeModel, table: OutcomeTable,
            classifier: Callable[[str], ClassifierScores] | None = None
            ) -> tuple[FloatArray, FloatArray]:
    """The model's router score per tier (:func:`router_scores` in the model's mode; fallback
    tiers: 1 where the classifier accepts) and its check's P(not good) per recorded answer (NaN
    where no answer or no check)."""
    tiers = model.tiers
    n, nt = len(table), len(tiers)
    p_good = np.zeros((n, nt))
    p_bad = np.full((n, nt), np.nan)
    for i, prompt in enumerate(table.prompts):
        scores = classifier(prompt) if classifier is not None else None
        z = model.router_logits(prompt, scores)
        top = max(scores.tiers, key=scores.tiers.__getitem__) if scores is not None else None
        for t, tier in enumerate(tiers):
            if tier in model.fallback:
                p_good[i, t] = float(top in tiers and tiers.index(top) <= t)
            else:
                p_good[i, t] = 1 / (1 + np.exp(-z[t]))
            answer = table.answers[i][t]
            if model.has_check and answer is not None:
                p_bad[i, t] = model.check(prompt, answer, tier, table.finish[i][t],
                                          table.logprobs[i][t], scores)[0]
    learned = [t not in model.fallback for t in tiers]
    return router_scores(p_good, learned, model.router_mode), p_bad


def recalibrate(model_dir: Path, records: Iterable[OutcomeRecord],
                costs: Mapping[str, float] | None = None,
                classifier: Callable[[str], ClassifierScores] | None = None, *,
                max_share: Mapping[str, float] | None = None, match_tier: str | None = None,
                min_share: Mapping[str, float] | None = None, objective: str = "share",
                margin: float = MARGIN) -> dict[str, Any]:
    """Choose a saved model's operating point on reference outcomes and write it into its
    ``metadata.json`` atomically, with a new ``model_version``; returns the new metadata.

    Costs: ``costs``, else those the model was trained with. The router mode stays. The
    targets are :func:`.calibrate.choose`'s."""
    model_dir = Path(model_dir)
    model = OutcomeModel.load(model_dir)
    tiers = model.tiers
    costs = dict(costs or model.metadata.get("costs") or
                 model.metadata["operating_point"]["costs"])
    table = OutcomeTable.build(records, tiers)
    rows = table.complete_rows()
    if len(rows) == 0:
        raise ValueError("calibration needs prompts with a record at every tier "
                         f"({', '.join(tiers)}); none of the {len(table)} prompts have")
    ref = table.subset(rows)
    g, p_bad = predict(model, ref, classifier)
    fallback = [t in model.fallback for t in tiers]
    cost = np.array([float(costs[t]) for t in tiers])
    points = operating_points(ref.scores, g, p_bad, cost, fallback)
    point = choose(points, tiers, ref.scores, max_share, match_tier, min_share,
                   objective=objective, margin=margin)
    point.update(router_mode=model.router_mode, reference_prompts=len(rows),
                 costs={t: float(costs[t]) for t in tiers})
    meta = dict(model.metadata, operating_point=point, costs=point["costs"],
                calibrated_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
    meta["model_version"] = model_version(meta)
    text = metadata_text(meta)
    atomic_write(model_dir / METADATA_FILE, lambda p: p.write_text(text))
    return meta
