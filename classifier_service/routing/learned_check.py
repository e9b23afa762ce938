"""The learned answer check of an outcome model: P(an answer is not good enough).

``P(not good | prompt, answer, tier) = sigmoid(((x - mean) / std) @ w + b + words)`` where ``x``
is :func:`.answer_features.answer_vector` (length against the task kind, structure, the
hand-written signals, logprob statistics, the tier, the router's logit) and ``words`` the
answer's unigrams and bigrams as TF-IDF (sublinear tf, l2-normalised over the terms in the
check's vocabulary, as scikit-learn's ``TfidfVectorizer`` computes it in training) times their
weights; a model whose training chose no words has no vocabulary and ``words`` is 0.
Each feature's term of that sum is its push towards "not good", and so is the words' total; the
largest are the signals an answer reports (the words' named after the words that pushed most).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_service.routing.answer_features import (
    answer_vector,
    answer_words,
    feature_names,
    text_words,
)
from classifier_service.routing.tfidf_row import NO_COLUMNS, NO_VALUES, IndexArray, tfidf_row

FloatArray = npt.NDArray[np.float64]
WORDS_NAMED = 3


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class CheckTerms:
    """The check of one answer: the dense vector ``x``, ``p_bad`` and the terms of its sum
    (each dense feature's push, and the pushes of the vocabulary words found)."""

    x: FloatArray
    p_bad: float
    dense: FloatArray
    word_index: IndexArray
    word_push: FloatArray


class LearnedCheck:
    """The check's arrays and vocabulary, as an outcome model's folder holds them."""

    def __init__(self, tiers: tuple[str, ...], meta: dict[str, Any],
                 arrays: dict[str, FloatArray], vocabulary: list[str] | None) -> None:
        self.tiers = tiers
        self.names = feature_names(tiers)
        self._w = arrays["check_w"]
        self._b = float(arrays["check_b"])
        self._mean = arrays["check_mean"]
        self._std = arrays["check_std"]
        self._kind_loglen: dict[str, float] = dict(meta["kind_loglen"])
        self._default_loglen = float(meta["default_loglen"])
        # Unigrams keyed by the word, bigrams by the pair (word, word).
        self._vocab: dict[str | tuple[str, str], int] = {}
        self._terms: list[str] = list(vocabulary or [])
        if vocabulary is not None:
            for j, term in enumerate(vocabulary):
                first, _, second = term.partition(" ")
                self._vocab[(first, second) if second else first] = j
            self._word_idf = arrays["check_word_idf"]
            self._word_w = arrays["check_word_w"]

    @property
    def reads_router_logit(self) -> bool:
        """Whether the router's logit weighs in (by default it does not: then a caller need
        not compute it, and ``x`` holds 0 in its place)."""
        return bool(self._w[self.names.index("router_logit")] != 0.0)

    @property
    def weighs_words(self) -> bool:
        return bool(self._vocab)

    @property
    def uses_logprobs(self) -> bool:
        """Whether it learned from answers with ``avg_logprob``."""
        return bool(self._mean[self.names.index("has_logprob")] > 0)

    def score(self, prompt: str, answer: str, tier_index: int, kind: str | None,
              finish_reason: str | None, avg_logprob: float | None,
              router_logit: float) -> CheckTerms:
        words = text_words(answer)
        x = answer_vector(prompt, answer, tier_index=tier_index, n_tiers=len(self.tiers),
                          kind=kind, kind_loglen=self._kind_loglen.get(kind or "",
                                                                       self._default_loglen),
                          finish_reason=finish_reason, avg_logprob=avg_logprob,
                          router_logit=router_logit, words=words)
        dense: FloatArray = (x - self._mean) / self._std * self._w
        index, push = self._word_terms(answer_words(answer, words))
        total = float(dense.sum()) + self._b + (float(push.sum()) if len(index) else 0.0)
        return CheckTerms(x, sigmoid(total), dense, index, push)

    def _word_terms(self, words: list[str]) -> tuple[IndexArray, FloatArray]:
        """The vocabulary columns the answer's terms hit, and each one's push."""
        if not self._vocab or not words:
            return NO_COLUMNS, NO_VALUES
        terms: Iterable[str | tuple[str, str]] = chain(words, pairwise(words))
        index, tf = tfidf_row(terms, self._vocab, self._word_idf)
        push: FloatArray = tf * self._word_w[index]
        return index, push

    def top_terms(self, terms: CheckTerms, top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` largest terms by size: (feature name, push towards "not good"). The
        words' pushes count as one term, named after the words that pushed most its way:
        ``words: "must inform", "inform you"``."""
        named = [(self.names[j], float(terms.dense[j]))
                 for j in np.argsort(-np.abs(terms.dense))[:top]]
        if len(terms.word_index):
            total = float(terms.word_push.sum())
            order = np.argsort(-terms.word_push if total >= 0 else terms.word_push)
            lead = [f'"{self._terms[int(terms.word_index[k])]}"' for k in order[:WORDS_NAMED]]
            named.append(("words: " + ", ".join(lead), total))
        named.sort(key=lambda kv: -abs(kv[1]))
        return [(name, round(push, 4)) for name, push in named[:top]]
