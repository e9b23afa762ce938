"""Fitting the model: a TF-IDF vectorizer over the shared analyzer, one logistic head per label.

Everything here is deterministic for the same examples (fixed seeds, sorted input), so
``tier-router train`` rebuilds the shipped model byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from classifier_service.artifact import FORMAT_VERSION
from classifier_service.features import analyze
from tier_router_training.dataset import Example

SEED = 20261129
MIN_DF = 2
C_TIER = 4.0
C_CATEGORY = 4.0
THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.34, 0.91, 0.02))
THRESHOLD_TOLERANCE = 0.01
"""Calibration takes the highest confidence threshold whose macro-F1 stays this close to
the best one: the guide's "default to the small model" as far as quality allows."""


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    macro_f1: float
    accuracy: float
    category_accuracy: float | None
    out_of_fold: np.ndarray  # (n, n_tiers) tier probabilities, columns in tier order


def sort_examples(examples: Sequence[Example]) -> list[Example]:
    return sorted(examples, key=lambda e: (e.prompt, e.tier, e.category or ""))


def build_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyze, sublinear_tf=True, min_df=MIN_DF, norm="l2", dtype=np.float64
    )


def build_head(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=SEED)


def has_categories(examples: Sequence[Example]) -> bool:
    return all(e.category for e in examples)


def fit_bundle(examples: Sequence[Example]) -> dict[str, Any]:
    """Fit vectorizer and heads on ``examples``; a category head when every row has a kind."""
    examples = sort_examples(examples)
    vectorizer = build_vectorizer()
    x = vectorizer.fit_transform([e.prompt for e in examples])
    tier_head = build_head(C_TIER).fit(x, [e.tier for e in examples])
    category_head = None
    if has_categories(examples) and len({e.category for e in examples}) > 1:
        category_head = build_head(C_CATEGORY).fit(x, [e.category for e in examples])
    return {
        "format": FORMAT_VERSION,
        "vectorizer": vectorizer,
        "heads": {"tier": tier_head, "category": category_head},
    }


def cross_validate(
    examples: Sequence[Example], tier_order: Sequence[str], folds: int = 5
) -> CrossValidation:
    """Stratified k-fold estimate of the tier head, with out-of-fold probabilities."""
    examples = sort_examples(examples)
    tiers = np.array([e.tier for e in examples])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    oof = np.zeros((len(examples), len(tier_order)))
    cat_hits = 0
    with_cats = has_categories(examples)
    for train_idx, test_idx in splitter.split(np.zeros(len(tiers)), tiers):
        bundle = fit_bundle([examples[i] for i in train_idx])
        x = bundle["vectorizer"].transform([examples[i].prompt for i in test_idx])
        head = bundle["heads"]["tier"]
        proba = head.predict_proba(x)
        cols = [list(tier_order).index(str(c)) for c in head.classes_]
        oof[np.ix_(test_idx, cols)] = proba
        if with_cats and bundle["heads"]["category"] is not None:
            pred = bundle["heads"]["category"].predict(x)
            cat_hits += sum(p == examples[i].category for p, i in zip(pred, test_idx, strict=True))
    predicted = np.array(tier_order)[oof.argmax(axis=1)]
    return CrossValidation(
        folds=folds,
        macro_f1=float(f1_score(tiers, predicted, average="macro")),
        accuracy=float((predicted == tiers).mean()),
        category_accuracy=cat_hits / len(examples) if with_cats else None,
        out_of_fold=oof,
    )


def default_to_cheaper(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Tier indices the policy picks: argmax, or below ``threshold`` the cheaper of the top two.

    Columns of ``proba`` are in tier order, cheapest first. Mirrors
    :func:`classifier_service.policy.classifier_choice` for whole arrays.
    """
    top2 = np.argsort(-proba, axis=1, kind="stable")[:, :2]
    confident = proba.max(axis=1) >= threshold
    result: np.ndarray = np.where(confident, top2[:, 0], top2.min(axis=1))
    return result


def choose_threshold(
    proba: np.ndarray, labels: Sequence[str], tier_order: Sequence[str]
) -> tuple[float, float]:
    """The highest threshold within ``THRESHOLD_TOLERANCE`` of the best macro-F1."""
    truth = np.array(labels)
    order = np.array(tier_order)
    scores = {
        t: float(f1_score(truth, order[default_to_cheaper(proba, t)], average="macro"))
        for t in THRESHOLD_GRID
    }
    best = max(scores.values())
    chosen = max(t for t, s in scores.items() if s >= best - THRESHOLD_TOLERANCE)
    return chosen, scores[chosen]
