"""The classifier: scores a prompt, decides nothing.

It turns one prompt into two probability distributions: over complexity tiers and, when the
model was trained with them, over task kinds. Deciding what to do with those scores is the
policy's job (:mod:`classifier_service.routing.policy`).

The lean inference path
-----------------------
The model is a scikit-learn ``TfidfVectorizer`` feeding, per head, a weighted blend of linear
experts (``LogisticRegression`` and ``MultinomialNB``; see the training pipeline). Calling
scikit-learn's ``predict_proba`` for one short prompt costs about 0.6 ms, nearly all of it input
validation and sparse-matrix plumbing. At load time the fitted estimators are compiled into
plain arrays instead: for each vocabulary feature, its idf weight folded into one row of
blended coefficients for every output of every head. Scoring is then a dictionary lookup per
feature, one small gather, one dot product and a softmax per head: the same arithmetic as
scikit-learn's (sublinear tf, idf, l2 norm, weighted log-probabilities), checked to agree with
it to 1e-9 by the tests.

Tempering: what the model has not seen
--------------------------------------
Only the features in the vocabulary reach the dot product, and the vector is normalised over
those alone. A prompt of which the model knows three shape markers and one word (a script or
a language it was not trained on) would otherwise get that word's full weight and a
near-certain answer. So each head's probabilities are tempered by how much of the prompt the
model knows: ``share`` is the fraction of the prompt's distinct words (unigram features) in
the vocabulary, and with the bundle's ``temper.full_share`` s, the log-probabilities are
scaled by ``min(1, share / s)`` and renormalised. At share 0 every label is equally likely;
at or above s nothing changes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_service.errors import ModelArtifactError
from classifier_service.features import analyze_words
from classifier_service.routing.artifact import Artifact
from classifier_service.routing.tfidf_row import tfidf_row

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    """A prompt's probabilities per tier and per task kind (``None`` without a kind head)."""

    tiers: dict[str, float]
    categories: dict[str, float] | None
    # The prompt's features (:func:`~classifier_service.features.analyze`), so that a model
    # scoring the same prompt after the classifier (the outcome model) need not recompute them.
    features: Sequence[str] | None = field(default=None, repr=False, compare=False)

    @property
    def top_tier(self) -> str:
        return max(self.tiers, key=self.tiers.__getitem__)

    @property
    def top_category(self) -> str | None:
        if not self.categories:
            return None
        return max(self.categories, key=self.categories.__getitem__)


@dataclass(frozen=True)
class KindMix:
    """The tier distribution implied by the task-kind head, blended into the tier head's.

    A model trained with ``kind_weight`` w > 0 on data with task kinds stores ``P(tier |
    kind)`` as seen in its training data and the tiers' shares there. Its tier probabilities
    are then ``P_tier(x)^(1-w) * (sum_k P(k|x) P(tier|k) / P(tier))^w``, renormalised: when
    a tier is a mix of unlike kinds (medium: summaries, questions, drafting, ...), the finer
    kind head separates what one linear tier boundary cannot; dividing by the tier's share
    makes the kinds vote by evidence, not by how common their tier was.
    """

    weight: float
    matrix: FloatArray  # (kinds, tiers), rows in kind-head order, columns in tier-head order
    log_prior: FloatArray  # (tiers,)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], kinds: Sequence[str], tiers: Sequence[str]
                  ) -> KindMix:
        """From the bundle's ``tier_from_kinds`` entry, reordered to the heads' labels."""
        rows = [list(spec["kinds"]).index(k) for k in kinds]
        cols = [list(spec["tiers"]).index(t) for t in tiers]
        matrix = np.asarray(spec["matrix"], dtype=np.float64)[np.ix_(rows, cols)]
        prior = np.asarray(spec["prior"], dtype=np.float64)[cols]
        return cls(float(spec["weight"]), matrix, np.log(prior))

    def apply(self, tier_p: FloatArray, kind_p: FloatArray) -> FloatArray:
        """Blend probabilities: one row (or a matrix of rows) per prompt."""
        implied = kind_p @ self.matrix
        w = self.weight
        logp = (1.0 - w) * np.log(np.maximum(tier_p, 1e-300)) + w * (
            np.log(np.maximum(implied, 1e-12)) - self.log_prior)
        z = np.exp(logp - logp.max(axis=-1, keepdims=True))
        result: FloatArray = z / z.sum(axis=-1, keepdims=True)
        return result


@dataclass(frozen=True)
class _Head:
    labels: tuple[str, ...]
    start: int
    stop: int


class TierClassifier:
    """Scores prompts with a compiled copy of a trained model."""

    def __init__(self, artifact: Artifact) -> None:
        bundle = artifact.bundle
        vectorizer = bundle["vectorizer"]
        try:
            vocabulary: dict[str, int] = vectorizer.vocabulary_
            idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        except AttributeError:
            raise ModelArtifactError(artifact.path, "the vectorizer is not fitted") from None
        if vectorizer.norm not in ("l2", None):
            raise ModelArtifactError(artifact.path, f"unsupported norm {vectorizer.norm!r}")
        self._sublinear = bool(vectorizer.sublinear_tf)
        self._l2 = vectorizer.norm == "l2"
        self._vocab = vocabulary
        self._idf = idf

        blocks: list[FloatArray] = []
        biases: list[FloatArray] = []
        heads: dict[str, _Head] = {}
        width = 0
        for name in ("tier", "category"):
            members = bundle["heads"].get(name)
            if members is None:
                continue
            coef, bias = _blend_weights(members)
            if coef.shape[1] != len(idf):
                raise ModelArtifactError(
                    artifact.path, f"the {name} head expects {coef.shape[1]} features, "
                    f"the vectorizer makes {len(idf)}"
                )
            labels = tuple(str(c) for c in members[0][1].classes_)
            heads[name] = _Head(labels, width, width + len(labels))
            width += len(labels)
            blocks.append(coef)
            biases.append(bias)
        # One row per feature, idf folded in: a prompt's logits are (tf / norm) @ weights[idx].
        self._weights: FloatArray = np.ascontiguousarray(np.vstack(blocks).T * idf[:, None])
        self._bias: FloatArray = np.concatenate(biases)
        self._tier_head = heads["tier"]
        self._category_head = heads.get("category")
        spec = bundle.get("tier_from_kinds")
        self._mix = (KindMix.from_spec(spec, heads["category"].labels, heads["tier"].labels)
                     if spec is not None else None)
        # the mix as plain floats for score(): (weight, matrix columns, log prior per tier)
        self._mix_rows = ((self._mix.weight, self._mix.matrix.T.tolist(),
                           self._mix.log_prior.tolist()) if self._mix is not None else None)
        temper_spec = bundle.get("temper")
        self._full_share = (float(temper_spec["full_share"]) if temper_spec is not None
                            else None)
        self.model_version = artifact.model_version
        self.tier_labels = list(self._tier_head.labels)
        self.category_labels = (
            list(self._category_head.labels) if self._category_head is not None else None
        )

    def score(self, prompt: str) -> Scores:
        """Probabilities of one prompt per tier and per task kind.

        The same arithmetic as :meth:`KindMix.apply` and :func:`temper` (which score rows of
        a matrix in training), on one row of a dozen floats in plain Python: each numpy call
        costs about a microsecond, more than the row's arithmetic. Mixing and tempering work
        on the tier head's logits directly, since a log-softmax differs from its logits by a
        constant that the final softmax cancels.
        """
        features, read = analyze_words(prompt)
        logits = self._logits(features).tolist()
        factor = (temper_factor(known_words_share(read, self._vocab), self._full_share)
                  if self._full_share is not None else 1.0)
        tier_head, head = self._tier_head, self._category_head
        tier_z = logits[tier_head.start : tier_head.stop]
        kind_z = logits[head.start : head.stop] if head is not None else None
        mix = self._mix_rows
        if mix is not None and kind_z is not None:
            weight, matrix, log_prior = mix
            kind_p = _softmax_floats(kind_z)
            implied = [sum(map(operator.mul, kind_p, column)) for column in matrix]
            tier_z = [(1.0 - weight) * z + weight * (math.log(max(q, 1e-12)) - lp)
                      for z, q, lp in zip(tier_z, implied, log_prior, strict=True)]
        if factor < 1.0:
            tier_z = [factor * z for z in tier_z]
            kind_z = [factor * z for z in kind_z] if kind_z is not None else None
        tiers = dict(zip(tier_head.labels, _softmax_floats(tier_z), strict=True))
        kinds = (dict(zip(head.labels, _softmax_floats(kind_z), strict=True))
                 if head is not None and kind_z is not None else None)
        return Scores(tiers, kinds, features)

    def _logits(self, features: Sequence[str]) -> FloatArray:
        idx, tf = tfidf_row(features, self._vocab, self._idf, sublinear=self._sublinear,
                            l2=self._l2)
        if not len(idx):
            return self._bias
        result: FloatArray = tf @ self._weights[idx] + self._bias
        return result


def known_share(features: Sequence[str], vocabulary: Collection[str]) -> float:
    """The fraction of the distinct words (unigram features) of a prompt that are in
    ``vocabulary``; 0 when the prompt has none. The features without a space are its words
    and the ``__`` markers, which :func:`known_words_share` leaves out."""
    return known_words_share([f for f in features if " " not in f], vocabulary)


def known_words_share(words: Sequence[str], vocabulary: Collection[str]) -> float:
    """:func:`known_share` of a prompt whose unigram features are ``words``, without a pass
    over all its features (:func:`~classifier_service.features.analyze_words`)."""
    content = set(words)
    if "__" in "".join(content):  # a word that looks like a marker counts as none
        content = {w for w in content if not w.startswith("__")}
    if not content:
        return 0.0
    return sum(map(vocabulary.__contains__, content)) / len(content)


def temper_factor(share: float, full_share: float) -> float:
    return min(1.0, share / full_share) if full_share > 0 else 1.0


def temper(proba: FloatArray, factor: float | FloatArray) -> FloatArray:
    """``proba ** factor``, renormalised (rows of a matrix with a factor per row)."""
    if np.all(np.asarray(factor) >= 1.0):
        return proba
    f = np.asarray(factor, dtype=np.float64)
    logp = np.log(np.maximum(proba, 1e-300)) * (f[..., None] if f.ndim else f)
    z = np.exp(logp - logp.max(axis=-1, keepdims=True))
    result: FloatArray = z / z.sum(axis=-1, keepdims=True)
    return result


def _blend_weights(members: Sequence[tuple[float, Any]]) -> tuple[FloatArray, FloatArray]:
    """One coefficient row and one intercept per class for a weighted blend of linear experts."""
    coef: FloatArray | None = None
    bias: FloatArray | None = None
    for weight, est in members:
        c, b = _linear_weights(est)
        coef = weight * c if coef is None else coef + weight * c
        bias = weight * b if bias is None else bias + weight * b
    assert coef is not None and bias is not None
    return coef, bias


def _linear_weights(est: Any) -> tuple[FloatArray, FloatArray]:
    """Coefficients and intercepts of one expert, up to a per-sample constant of its logits.

    - ``LogisticRegression``: ``coef_`` and ``intercept_``. A binary model stores one row
      ``z``; ``softmax([0, z])`` equals its ``predict_proba``, so class 0 gets a zero row.
    - ``MultinomialNB``: its joint log-likelihood is ``x @ feature_log_prob_.T +
      class_log_prior_``, and ``predict_log_proba`` subtracts a per-sample constant.
    """
    if hasattr(est, "feature_log_prob_"):
        return (np.asarray(est.feature_log_prob_, dtype=np.float64),
                np.asarray(est.class_log_prior_, dtype=np.float64))
    coef = np.asarray(est.coef_, dtype=np.float64)
    bias = np.asarray(est.intercept_, dtype=np.float64)
    if coef.shape[0] == 1 and len(est.classes_) == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        bias = np.concatenate([[0.0], bias])
    return coef, bias


def _softmax_floats(z: Sequence[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = math.fsum(e)
    return [v / total for v in e]
