"""The classifier: scores a prompt, decides nothing.

It turns one prompt into two probability distributions: over complexity tiers and, when the
model was trained with them, over task kinds. Deciding what to do with those scores is the
policy's job (:mod:`classifier_service.policy`).

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_service.artifact import Artifact
from classifier_service.errors import ModelArtifactError
from classifier_service.features import analyze

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scores:
    """A prompt's probabilities per tier and per task kind (``None`` without a kind head)."""

    tiers: dict[str, float]
    categories: dict[str, float] | None

    @property
    def top_tier(self) -> str:
        return max(self.tiers, key=self.tiers.__getitem__)

    @property
    def top_category(self) -> str | None:
        if not self.categories:
            return None
        return max(self.categories, key=self.categories.__getitem__)


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
        self.model_version = artifact.model_version
        self.tier_labels = list(self._tier_head.labels)
        self.category_labels = (
            list(self._category_head.labels) if self._category_head is not None else None
        )

    def score(self, prompt: str) -> Scores:
        """Probabilities of one prompt per tier and per task kind."""
        logits = self._logits(prompt)
        tiers = _softmax_dict(logits, self._tier_head)
        head = self._category_head
        return Scores(tiers, _softmax_dict(logits, head) if head is not None else None)

    def _logits(self, prompt: str) -> FloatArray:
        vocab = self._vocab
        counts: dict[int, int] = {}
        for feature in analyze(prompt):
            j = vocab.get(feature)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return self._bias
        n = len(counts)
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=n)
        tf = np.fromiter(counts.values(), dtype=np.float64, count=n)
        if self._sublinear:
            tf = np.log(tf) + 1.0
        if self._l2:
            weighted = tf * self._idf[idx]
            tf = tf / np.sqrt(weighted @ weighted)
        result: FloatArray = tf @ self._weights[idx] + self._bias
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


def _softmax_dict(logits: FloatArray, head: _Head) -> dict[str, float]:
    z = logits[head.start : head.stop]
    e = np.exp(z - z.max())
    p = e / e.sum()
    return dict(zip(head.labels, p.tolist(), strict=True))
