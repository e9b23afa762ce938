"""Fitting an outcome model: per-tier routers on the prompt, and the answer check.

Both are logistic regressions. A record's score s (0-1, ties 0.5) counts as a "good" example
of weight s and a "not good" one of weight 1 - s. The inverse regularisation C of each is chosen
by K-fold cross-validation (log-loss) on the records given, the folds drawn over prompts so that
a prompt's records never sit on both sides; the same folds give the out-of-fold probabilities
that calibration reads, so that thresholds are chosen on predictions the model did not fit.

A tier is learned when it has at least ``MIN_RECORDS`` records and at least ``MIN_EACH`` of
each outcome (sum of scores and of 1 - scores); otherwise its decision falls back to the
default classifier. The check is learned when the answers it would judge (every tier but the
most expensive) meet the same minimum.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from classifier_service.features import analyze
from classifier_service.feedback import OutcomeRecord
from classifier_service.routing.answer_features import (
    SIGNALS,
    answer_terms,
    answer_vector,
    feature_names,
)
from classifier_service.routing.learned_check import sigmoid
from classifier_service.routing.outcome_model import ClassifierScores
from tier_router_training.outcomes.records import OutcomeTable

FloatArray = npt.NDArray[np.float64]
MIN_RECORDS = 50
MIN_EACH = 10
ROUTER_C = (0.3, 1.0, 3.0, 10.0)
CHECK_C = (0.03, 0.1, 0.3, 1.0)
# What the check weighs by default: few features, so that a few hundred judged answers fit it
# without learning their noise. Left out (weight 0): the log ratios to the task kind's typical
# and minimum length (log length minus a per-kind constant: nearly collinear with log length)
# and the router's logit (what the prompt says is already the router's job). On AlpacaEval this
# set does better on held-out halves than all features (see README, "Outcome models").
CHECK_FEATURES = ("log_chars", "log_ratio_prompt", "list_lines", "code_fences", "paragraphs",
                  "headings", *(f"signal:{s}" for s in SIGNALS if s != "too_short"),
                  "finish_length", "has_logprob", "avg_logprob", "tier:")
FOLDS = 4
# The answer's words: TF-IDF columns beside the dense features, scaled by one of these factors
# (0: no words), chosen with C by cross-validation. The dense columns are standardised and the
# TF-IDF rows l2-normalised, so the words need the larger scale to be weighed at all under the
# same C. On AlpacaEval halves the words lift the held-out AUC of "7B lost" from 0.743 (the
# same check without them) to 0.807 (bench/bench_outcomes.py; README, "Outcome models").
WORD_SCALES = (0.0, 1.0, 3.0)
WORDS_MIN_DF = 3
WORDS_MAX_TERMS = 5000


@dataclass
class FitResult:
    """What :func:`fit` learned: the model's arrays and metadata, and out-of-fold predictions."""

    table: OutcomeTable
    arrays: dict[str, Any]
    vocabulary: list[str]
    metadata: dict[str, Any]
    p_good: FloatArray  # (prompts, tiers) out-of-fold; fallback tiers: 1 accept / 0 not
    p_bad: FloatArray  # (prompts, tiers) out-of-fold; NaN where no answer or no check
    p_bad_fit: FloatArray | None = None  # the same cells, as the final check scores them
    check_vocabulary: list[str] | None = None  # the check's word terms (None: no words)


def _weighted(x: Any, scores: FloatArray, good_label: int) -> tuple[Any, Any, Any]:
    """Each row twice: label good with weight s and not-good with 1 - s (zero weights dropped)."""
    w = np.concatenate([scores, 1.0 - scores])
    y = np.concatenate([np.full(len(scores), good_label), np.full(len(scores), 1 - good_label)])
    keep = w > 0
    n = len(scores)
    rows = np.concatenate([np.arange(n), np.arange(n)])[keep]
    return x[rows], y[keep], w[keep]


def _logreg(c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", max_iter=500, random_state=seed)


def _cv_fit(x: Any, target: FloatArray, folds: npt.NDArray[np.intp], grid: Sequence[float],
            seed: int) -> tuple[float, FloatArray, LogisticRegression, float]:
    """Choose C by out-of-fold log-loss; returns it, the out-of-fold logits, the full fit and
    the chosen C's out-of-fold log-loss.

    ``target`` is P(label 1): the score for routers, 1 - score for the check.
    """
    best: tuple[float, float, FloatArray] | None = None
    k = int(folds.max()) + 1
    for c in grid:
        oof = np.zeros(len(target))
        for f in range(k):
            tr, te = folds != f, folds == f
            if not te.any() or len(np.unique(target[tr] > 0.5)) < 2:
                continue
            xs, ys, ws = _weighted(x[tr], target[tr], 1)
            m = _logreg(c, seed).fit(xs, ys, sample_weight=ws)
            oof[te] = m.decision_function(x[te])
        p = np.clip(1 / (1 + np.exp(-oof)), 1e-6, 1 - 1e-6)
        loss = float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
        if best is None or loss < best[0] - 1e-9:
            best = (loss, c, oof)
    assert best is not None
    xs, ys, ws = _weighted(x, target, 1)
    model = _logreg(best[1], seed).fit(xs, ys, sample_weight=ws)
    return best[1], best[2], model, best[0]


def _coef(model: LogisticRegression) -> tuple[FloatArray, float]:
    """Coefficients and intercept for P(label 1)."""
    sign = 1.0 if int(model.classes_[1]) == 1 else -1.0
    return sign * np.asarray(model.coef_[0], dtype=np.float64), sign * float(model.intercept_[0])


def _enough(scores: FloatArray) -> str | None:
    n, good = len(scores), float(scores.sum())
    if n < MIN_RECORDS:
        return f"too few outcome records ({n} < {MIN_RECORDS})"
    if min(good, n - good) < MIN_EACH:
        return (f"too few of one outcome ({good:.0f} good, {n - good:.0f} not; "
                f"{MIN_EACH} each needed)")
    return None


def fit(records: Iterable[OutcomeRecord], tiers: Sequence[str],
        classifier: Callable[[str], ClassifierScores] | None = None, *, seed: int = 0,
        folds: int = FOLDS, router_c: Sequence[float] = ROUTER_C,
        check_c: Sequence[float] = CHECK_C, use_check: bool = True,
        source_weights: Mapping[str, float] | None = None,
        check_features: Sequence[str] | None = CHECK_FEATURES,
        word_scales: Sequence[float] = WORD_SCALES) -> FitResult:
    """Fit routers per tier and the check; ``tiers`` in cost order, cheapest first.

    ``source_weights`` weigh records by their ``source`` (:meth:`OutcomeTable.build`).
    ``check_features``: the names (of :func:`.answer_features.feature_names`, or a prefix
    ending in ``:`` such as ``tier:``) the check may weigh; the others get weight 0; ``None``:
    all of them. ``word_scales``: the answer-word scales cross-validation tries (``(0.0,)``:
    a check without words).
    """
    started = time.perf_counter()
    tiers = tuple(tiers)
    table = OutcomeTable.build(records, tiers, source_weights)
    if len(table) == 0:
        raise ValueError("no outcome records")
    n, nt = len(table), len(tiers)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(np.arange(n) % folds).astype(np.intp)

    scores_of = [classifier(p) for p in table.prompts] if classifier is not None else None
    dense_names: list[str] = []
    if scores_of:
        first = scores_of[0]
        dense_names = [f"tier:{t}" for t in first.tiers] + [
            f"kind:{k}" for k in (first.categories or {})]
    dense = np.zeros((n, len(dense_names)))
    if scores_of:
        for i, s in enumerate(scores_of):
            vals = list(s.tiers.values()) + list((s.categories or {}).values())
            dense[i] = vals
    vec = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=2 if n >= 200 else 1,
                          dtype=np.float64)
    tfidf = vec.fit_transform(table.prompts)
    x_all = sp.hstack([tfidf, sp.csr_matrix(dense)], format="csr")
    n_vocab = tfidf.shape[1]

    router_w = np.zeros((n_vocab, nt))
    router_dense_w = np.zeros((len(dense_names), nt))
    router_b = np.zeros(nt)
    p_good = np.full((n, nt), np.nan)
    oof_logit = np.zeros((n, nt))
    fallback: dict[str, str] = {}
    counts: dict[str, dict[str, float]] = {}
    chosen_c: dict[str, float] = {}
    listed: list[ClassifierScores | None] = list(scores_of) if scores_of else [None] * n
    top_kind = [None if s is None or not s.categories else
                max(s.categories, key=s.categories.__getitem__) for s in listed]
    cls_top = [None if s is None else max(s.tiers, key=s.tiers.__getitem__) for s in listed]
    for t, tier in enumerate(tiers):
        rows = np.flatnonzero(~np.isnan(table.scores[:, t]))
        y = table.scores[rows, t]
        counts[tier] = {"records": float(table.counts[rows, t].sum()), "prompts": len(rows),
                        "good": round(float(y.sum()), 2)}
        why = _enough(y)
        if why is not None:
            fallback[tier] = why
            p_good[:, t] = [1.0 if c in tiers and tiers.index(c) <= t else 0.0 for c in cls_top]
            continue
        c, oof, model, _ = _cv_fit(x_all[rows], y, fold[rows], router_c, seed)
        chosen_c[tier] = c
        coef, bias = _coef(model)
        router_w[:, t] = coef[:n_vocab] * vec.idf_
        router_dense_w[:, t] = coef[n_vocab:]
        router_b[t] = bias
        # Prompts without a record at this tier still get a prediction (the full fit's).
        full = x_all @ coef + bias
        oof_logit[:, t] = full
        oof_logit[rows, t] = oof
        p_good[:, t] = 1 / (1 + np.exp(-oof_logit[:, t]))

    arrays: dict[str, Any] = {
        "idf": vec.idf_, "router_w": router_w, "router_dense_w": router_dense_w,
        "router_b": router_b, "router_dense_fill": dense.mean(axis=0) if n else dense[:0].sum(0),
    }
    vocab = [""] * n_vocab
    for f, j in vec.vocabulary_.items():
        vocab[j] = f
    metadata: dict[str, Any] = {
        "tiers": list(tiers),
        "records": counts,
        "router": {"fallback": fallback, "dense_features": dense_names, "C": chosen_c,
                   "min_records": MIN_RECORDS, "min_each": MIN_EACH, "folds": folds,
                   "vocabulary_size": n_vocab},
        "check": None,
    }
    p_bad = np.full((n, nt), np.nan)
    p_bad_fit: FloatArray | None = None
    check_vocabulary: list[str] | None = None
    if use_check:
        check = _fit_check(table, top_kind, oof_logit, fold, check_c, seed, check_features,
                           tuple(word_scales))
        if check is not None:
            arrays.update(check[0])
            metadata["check"] = check[1]
            p_bad, p_bad_fit, check_vocabulary = check[2], check[3], check[4]
    metadata["training_seconds"] = round(time.perf_counter() - started, 2)
    return FitResult(table, arrays, vocab, metadata, p_good, p_bad, p_bad_fit, check_vocabulary)


def _fit_check(table: OutcomeTable, kinds: list[str | None], router_logit: FloatArray,
               fold: npt.NDArray[np.intp], grid: Sequence[float], seed: int,
               allowed: Sequence[str] | None = None,
               word_scales: Sequence[float] = WORD_SCALES,
               ) -> tuple[dict[str, Any], dict[str, Any], FloatArray, FloatArray,
                          list[str] | None] | None:
    tiers = table.tiers
    cells = [(i, t) for i in range(len(table)) for t in range(len(tiers))
             if table.answers[i][t] is not None and not math.isnan(table.scores[i, t])]
    judged = np.array([table.scores[i, t] for i, t in cells if t < len(tiers) - 1])
    if len(cells) == 0 or _enough(judged) is not None:
        return None
    good_len: dict[str, list[float]] = {}
    for i, t in cells:
        if table.scores[i, t] >= 0.5:
            size = math.log1p(len(table.answers[i][t] or ""))
            good_len.setdefault(kinds[i] or "", []).append(size)
    every = [v for vs in good_len.values() for v in vs]
    default_loglen = float(np.median(every)) if every else 0.0
    kind_loglen = {k: float(np.median(v)) for k, v in good_len.items() if len(v) >= 5}
    x = np.array([answer_vector(
        table.prompts[i], table.answers[i][t] or "", tier_index=t, n_tiers=len(tiers),
        kind=kinds[i], kind_loglen=kind_loglen.get(kinds[i] or "", default_loglen),
        finish_reason=table.finish[i][t], avg_logprob=table.logprobs[i][t],
        router_logit=float(router_logit[i, t])) for i, t in cells])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = (x - mean) / std
    names = feature_names(tiers)
    use = np.ones(len(names), dtype=bool)
    if allowed is not None:
        use = np.array([any(n == a or (a.endswith(":") and n.startswith(a)) for a in allowed)
                        for n in names])
        z[:, ~use] = 0.0  # a constant column: the regularised fit gives it weight 0
    bad = np.array([1.0 - table.scores[i, t] for i, t in cells])
    cell_fold = np.array([fold[i] for i, _ in cells], dtype=np.intp)
    answers = [table.answers[i][t] or "" for i, t in cells]
    word_rows, vec = _answer_tfidf(answers) if word_scales != (0.0,) else (None, None)
    best: tuple[float, float, float, FloatArray, LogisticRegression] | None = None
    for scale in word_scales if word_rows is not None else (0.0,):
        x_fit: Any = z if scale == 0.0 or word_rows is None else sp.hstack(
            [sp.csr_matrix(z), word_rows * scale], format="csr")
        c, oof, model, loss = _cv_fit(x_fit, bad, cell_fold, grid, seed)
        if best is None or loss < best[0] - 1e-9:
            best = (loss, scale, c, oof, model)
    assert best is not None
    _, scale, c, oof, model = best
    coef, b = _coef(model)
    w = coef[: len(names)]
    full = z @ w + b
    arrays = {"check_w": w, "check_b": np.array(b), "check_mean": mean, "check_std": std}
    word_meta: dict[str, Any] | None = None
    vocabulary: list[str] | None = None
    if scale > 0.0 and word_rows is not None and vec is not None:
        word_w = coef[len(names):] * scale * vec.idf_
        full = full + (word_rows @ (coef[len(names):] * scale))
        arrays.update(check_word_idf=vec.idf_, check_word_w=word_w)
        vocabulary = [""] * len(vec.vocabulary_)
        for term, j in vec.vocabulary_.items():
            vocabulary[j] = term
        # Ranked by weight times the answers they occur in: the terms that move most verdicts.
        impact = word_w * np.asarray((word_rows > 0).sum(axis=0)).ravel()
        order = np.argsort(-impact)
        word_meta = {"terms": len(vocabulary), "scale": scale, "min_df": WORDS_MIN_DF,
                     "towards_not_good": [vocabulary[j] for j in order[:10]],
                     "towards_good": [vocabulary[j] for j in order[::-1][:10]]}
    p_bad = np.full((len(table), len(tiers)), np.nan)
    p_fit = np.full((len(table), len(tiers)), np.nan)
    for (i, t), v, u in zip(cells, oof, full, strict=True):
        p_bad[i, t] = sigmoid(float(v))
        p_fit[i, t] = sigmoid(float(u))
    weights = sorted(zip(names, w.tolist(), strict=True), key=lambda kv: -abs(kv[1]))
    meta = {"C": c, "answers": len(cells), "features": names,
            "weighed": [n for n, u in zip(names, use, strict=True) if u],
            "kind_loglen": kind_loglen,
            "default_loglen": default_loglen,
            "strongest_weights": [[k, round(v, 4)] for k, v in weights[:8]],
            "words": word_meta}
    return arrays, meta, p_bad, p_fit, vocabulary


def _answer_tfidf(answers: list[str]) -> tuple[Any, TfidfVectorizer | None]:
    """The answers' word unigrams and bigrams as TF-IDF rows (sublinear, l2), terms seen in at
    least ``WORDS_MIN_DF`` answers, at most ``WORDS_MAX_TERMS``; (None, None) when none are."""
    vec = TfidfVectorizer(analyzer=answer_terms, sublinear_tf=True, min_df=WORDS_MIN_DF,
                          max_features=WORDS_MAX_TERMS, dtype=np.float64)
    try:
        return vec.fit_transform(answers), vec
    except ValueError:  # no term in enough answers
        return None, None
