"""Fitting the model: TF-IDF over the shared analyzer, and per label a blend of two linear experts.

Each head (tier, and task kind when the data has kinds) is a log-linear blend, a product of
experts: ``lr_weight`` x the log-probabilities of a logistic regression plus
``1 - lr_weight`` x those of a multinomial naive Bayes with a uniform prior, both on the same
TF-IDF vector. Naive Bayes adds robust word evidence from few examples, logistic regression
the discriminative fit; both are linear in the features, so the blend is one linear model and
the serving path stays a single dot product.

Everything here is deterministic for the same examples and recipe (fixed seeds, sorted
input), so ``tier-router train`` rebuilds the shipped model exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import MultinomialNB

from classifier_service.features import analyze
from classifier_service.routing.artifact import FORMAT_VERSION
from classifier_service.routing.classifier import KindMix, known_share, temper, temper_factor
from tier_router_training.dataset import Example, sort_key

SEED = 20261129
THRESHOLD_GRID = tuple(float(round(x, 2)) for x in np.arange(0.34, 0.91, 0.02))
THRESHOLD_TOLERANCE = 0.01
"""The trained threshold is the highest one whose macro-F1 stays this close to the best:
the guide's "default to the small model" as far as quality allows."""

ClassWeight = Literal["none", "balanced"]


@dataclass(frozen=True)
class Recipe:
    """How a model is fitted; stored in the model's metadata."""

    c: float = 4.0
    class_weight: ClassWeight = "none"
    lr_weight: float = 0.7
    nb_alpha: float = 0.05
    min_df: int = 1
    keep_min_df: int = 2
    """Features seen in fewer training prompts than this take part in fitting, then are dropped.

    While fitting, a feature unique to one prompt acts as that prompt's own slack and keeps
    the shared weights general; afterwards it almost never fires again. Dropping such features
    shrinks the model about fivefold; on the real prompts of shared/data it changed tier
    macro-F1 by less than 0.005.
    """

    kind_weight: float = 0.0
    """Weight of the tier distribution implied by the task-kind head (see
    :class:`classifier_service.routing.classifier.KindMix`); 0 uses the tier head alone. Needs data
    with task kinds; ignored without them."""

    full_share: float = 0.5
    """Tempering (see :mod:`classifier_service.classifier`): a prompt of which the model knows
    fewer than this share of words gets its probabilities flattened by share / full_share;
    0 turns it off."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    macro_f1: float
    accuracy: float
    out_of_fold: np.ndarray  # (n, n_tiers) tier probabilities, columns in tier order
    labels: list[str]  # the true tier of each row of out_of_fold


def sort_examples(examples: Sequence[Example]) -> list[Example]:
    return sorted(examples, key=sort_key)


def build_vectorizer(recipe: Recipe, vocabulary: list[str] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyze,
        sublinear_tf=True,
        min_df=recipe.min_df,
        norm="l2",
        dtype=np.float64,
        vocabulary=vocabulary,
    )


def fit_head(
    x: Any, labels: Sequence[str], recipe: Recipe, *, weighted: bool = True
) -> list[tuple[float, Any]]:
    """The blend for one label set: ``[(weight, estimator), ...]``.

    Solvers, measured on this corpus against lbfgs (same optimum): for the few-class tier head,
    Newton-CG converges in a handful of iterations, with or without class weights (10x
    faster); for the many-class kind head, SAG (15x faster; it stalls with class weights, so
    that head is never weighted).
    """
    members: list[tuple[float, Any]] = []
    if recipe.lr_weight > 0:
        balanced = weighted and recipe.class_weight == "balanced"
        lr = LogisticRegression(
            C=recipe.c,
            solver="newton-cg" if weighted else "sag",
            tol=1e-4,
            max_iter=200 if weighted else 1000,
            random_state=SEED,
            class_weight="balanced" if balanced else None,
        )
        members.append((recipe.lr_weight, lr.fit(x, labels)))
    if recipe.lr_weight < 1:
        nb = MultinomialNB(alpha=recipe.nb_alpha, fit_prior=False)
        members.append((round(1.0 - recipe.lr_weight, 10), nb.fit(x, labels)))
    return members


def blend_proba(members: Sequence[tuple[float, Any]], x: Any) -> np.ndarray:
    """scikit-learn's own probabilities for a blend: softmax of the weighted log-probabilities."""
    logp = sum(w * est.predict_log_proba(x) for w, est in members)
    z = np.asarray(logp)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return result


def head_classes(members: Sequence[tuple[float, Any]]) -> list[str]:
    return [str(c) for c in members[0][1].classes_]


def has_categories(examples: Sequence[Example]) -> bool:
    return all(e.category for e in examples) and len({e.category for e in examples}) > 1


def fit_bundle(
    examples: Sequence[Example], recipe: Recipe | None = None, *, with_category: bool = True
) -> dict[str, Any]:
    """Fit vectorizer and heads on ``examples``; a category head when every row has a kind."""
    recipe = recipe or Recipe()
    examples = sort_examples(examples)
    vectorizer = build_vectorizer(recipe)
    x = vectorizer.fit_transform([e.prompt for e in examples])
    tier_head = fit_head(x, [e.tier for e in examples], recipe)
    category_head = None
    if (with_category or recipe.kind_weight > 0) and has_categories(examples):
        category_head = fit_head(x, [str(e.category) for e in examples], recipe, weighted=False)
    heads = {"tier": tier_head, "category": category_head}
    mix = (kind_mix_spec(examples, recipe.kind_weight)
           if recipe.kind_weight > 0 and category_head is not None else None)
    if recipe.keep_min_df > recipe.min_df:
        doc_freq = np.asarray((x > 0).sum(axis=0)).ravel()
        keep = np.flatnonzero(doc_freq >= recipe.keep_min_df)
        terms = vectorizer.get_feature_names_out()[keep].tolist()
        # Same data, fixed vocabulary: the kept terms get exactly the idf they had.
        vectorizer = build_vectorizer(recipe, vocabulary=terms)
        vectorizer.fit([e.prompt for e in examples])
        prune_heads(heads, keep)
    bundle: dict[str, Any] = {"format": FORMAT_VERSION, "vectorizer": vectorizer,
                              "heads": heads}
    if mix is not None:
        bundle["tier_from_kinds"] = mix
    if recipe.full_share > 0:
        bundle["temper"] = {"full_share": float(recipe.full_share)}
    return bundle


def kind_mix_spec(examples: Sequence[Example], weight: float) -> dict[str, Any]:
    """``P(tier | kind)`` and the tiers' shares in ``examples``, for the bundle."""
    kinds = sorted({str(e.category) for e in examples})
    tiers = sorted({e.tier for e in examples})
    counts = np.zeros((len(kinds), len(tiers)))
    for e in examples:
        counts[kinds.index(str(e.category)), tiers.index(e.tier)] += 1
    return {"weight": float(weight), "kinds": kinds, "tiers": tiers,
            "matrix": (counts / counts.sum(axis=1, keepdims=True)).tolist(),
            "prior": (counts.sum(axis=0) / counts.sum()).tolist()}


def tier_proba(bundle: dict[str, Any], x: Any, prompts: Sequence[str] | None = None
               ) -> np.ndarray:
    """scikit-learn's tier probabilities of a bundle (columns in tier-head order), the kind
    mix included, and with ``prompts`` (the rows of ``x``) the tempering too: the reference
    the compiled scorer is checked against."""
    heads = bundle["heads"]
    proba = blend_proba(heads["tier"], x)
    spec = bundle.get("tier_from_kinds")
    if spec is not None and heads.get("category") is not None:
        mix = KindMix.from_spec(spec, head_classes(heads["category"]),
                                head_classes(heads["tier"]))
        proba = mix.apply(proba, blend_proba(heads["category"], x))
    return temper_rows(bundle, proba, prompts)


def temper_rows(bundle: dict[str, Any], proba: np.ndarray, prompts: Sequence[str] | None
                ) -> np.ndarray:
    """``proba`` (one row per prompt) tempered as the compiled scorer tempers it."""
    spec = bundle.get("temper")
    if spec is None or prompts is None:
        return proba
    vocab = bundle["vectorizer"].vocabulary_
    factors = np.array([temper_factor(known_share(analyze(p), vocab), spec["full_share"])
                        for p in prompts])
    return temper(proba, factors)


def prune_heads(heads: dict[str, Any], index: np.ndarray) -> None:
    """Keep only the coefficient columns ``index`` of every expert of every head."""
    for members in heads.values():
        for _, est in members or ():
            if hasattr(est, "coef_"):
                est.coef_ = np.ascontiguousarray(est.coef_[:, index])
            else:
                est.feature_log_prob_ = np.ascontiguousarray(est.feature_log_prob_[:, index])
                est.feature_count_ = np.ascontiguousarray(est.feature_count_[:, index])
            est.n_features_in_ = len(index)


def fold_splits(
    tiers: Sequence[str], folds: int = 5, seed: int = SEED
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """The (train, test) row indices of each fold: stratified by tier, shuffled by ``seed``.

    Rows are those of :func:`sort_examples`; :func:`cross_validate` uses exactly these folds,
    so another model evaluated on them is compared on the same splits.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(tiers)), np.asarray(tiers)))


def cross_validate(
    examples: Sequence[Example],
    tier_order: Sequence[str],
    folds: int = 5,
    recipe: Recipe | None = None,
    on_fold: Callable[[int], None] | None = None,
    seed: int = SEED,
) -> CrossValidation:
    """Stratified k-fold estimate of the tier head, with out-of-fold probabilities.

    ``seed`` shuffles the folds; repeating with other seeds measures the split's noise.
    """
    examples = sort_examples(examples)
    tiers = np.array([e.tier for e in examples])
    oof = np.zeros((len(examples), len(tier_order)))
    for fold, (train_idx, test_idx) in enumerate(fold_splits(tiers.tolist(), folds, seed), 1):
        bundle = fit_bundle([examples[i] for i in train_idx], recipe, with_category=False)
        x = bundle["vectorizer"].transform([examples[i].prompt for i in test_idx])
        head = bundle["heads"]["tier"]
        cols = np.array([list(tier_order).index(c) for c in head_classes(head)], dtype=np.intp)
        oof[np.ix_(test_idx, cols)] = tier_proba(
            bundle, x, [examples[i].prompt for i in test_idx])
        if on_fold is not None:
            on_fold(fold)
    predicted = np.array(tier_order)[oof.argmax(axis=1)]
    return CrossValidation(
        folds=folds,
        macro_f1=float(f1_score(tiers, predicted, average="macro")),
        accuracy=float((predicted == tiers).mean()),
        out_of_fold=oof,
        labels=tiers.tolist(),
    )


def default_to_cheaper(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Tier indices the policy picks: argmax, or below ``threshold`` the cheaper of the top two,
    never more than one tier below the top.

    Columns of ``proba`` are in tier order, cheapest first. Mirrors
    :func:`classifier_service.routing.policy.classifier_choice` for whole arrays.
    """
    top2 = np.argsort(-proba, axis=1, kind="stable")[:, :2]
    confident = proba.max(axis=1) >= threshold
    cheaper = np.maximum(top2.min(axis=1), top2[:, 0] - 1)
    result: np.ndarray = np.where(confident, top2[:, 0], cheaper)
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
