"""One prompt's (or answer's) row of TF-IDF, as scikit-learn's ``TfidfVectorizer`` computes it,
for models whose weights have the idf folded in.

``tfidf_row(keys, vocabulary, idf)`` counts the keys found in the vocabulary (a feature seen
twice counts twice), and returns their columns and ``tf / ||tf * idf||`` (tf sublinear,
``1 + log(count)``, unless ``sublinear=False``; without the l2 norm unless ``l2=True``). A
model's logits are then ``values @ weights[columns]`` with ``weights`` already multiplied by
idf: the classifier's heads, the outcome model's routers and the learned check's words all
score this way. The lookups and the counting run in C (``map``, ``Counter``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
NO_COLUMNS: IndexArray = np.zeros(0, dtype=np.intp)
NO_VALUES: FloatArray = np.zeros(0)
K = TypeVar("K", bound=Hashable)


def tfidf_row(keys: Iterable[K], vocabulary: Mapping[K, int], idf: FloatArray, *,
              sublinear: bool = True, l2: bool = True) -> tuple[IndexArray, FloatArray]:
    """The columns the keys hit (in order of first hit) and their values; empty arrays when
    none hit."""
    counts: Counter[int | None] = Counter(map(vocabulary.get, keys))
    counts.pop(None, None)  # the keys the vocabulary lacks
    if not counts:
        return NO_COLUMNS, NO_VALUES
    n = len(counts)
    columns = np.fromiter(counts.keys(), dtype=np.intp, count=n)
    found = np.fromiter(counts.values(), dtype=np.float64, count=n)
    tf: FloatArray = found
    if sublinear:  # in place: each numpy call on a row this short costs more than its sums
        np.log(tf, out=tf)
        tf += 1.0
    if l2:
        weighted = idf[columns]
        weighted *= tf
        tf /= math.sqrt(float(weighted @ weighted))
    return columns, tf
