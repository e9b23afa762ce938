"""What an outcome model's ``weights.npz`` must hold for this version, checked at load.

The checksums prove the files are the ones the model was saved with, not that they fit the
code that reads them: a check trained when :func:`.answer_features.feature_names` listed
another number of features, or arrays from another folder, would otherwise fail at request
time (an IndexError or a shape error in a matrix product). :func:`check_layout` refuses such a
folder with :class:`OutcomeModelError`, naming the file, the array and both sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from classifier_service.errors import ModelArtifactError
from classifier_service.routing.answer_features import feature_names

RETRAIN = "retrain with `tier-router train --outcomes`"


class OutcomeModelError(ModelArtifactError, ValueError):
    """A model folder that cannot be used; the message names the file and the problem."""


def check_layout(metadata: Mapping[str, Any], arrays: Mapping[str, Any], vocabulary_size: int,
                 weights: Path, check_vocabulary_size: int | None = None) -> None:
    """Refuse arrays whose shapes do not fit the tiers, the vocabulary, the dense features and
    (with a check) this version's check features and the check's words (``None``: the check
    weighs no words); ``weights``: the file named in the error."""
    tiers = tuple(metadata["tiers"])
    nt, nd = len(tiers), len(metadata["router"]["dense_features"])
    expected: dict[str, tuple[tuple[int, ...], str]] = {
        "idf": ((vocabulary_size,), f"the {vocabulary_size} features of vocabulary.json"),
        "router_w": ((vocabulary_size, nt), f"the {vocabulary_size} features of "
                     f"vocabulary.json by the {nt} tiers"),
        "router_b": ((nt,), f"the {nt} tiers"),
        "router_dense_w": ((nd, nt), f"the {nd} dense features by the {nt} tiers"),
        "router_dense_fill": ((nd,), f"the {nd} dense features"),
    }
    _shapes(arrays, expected, weights, "")
    if not metadata.get("check"):
        return
    nf = len(feature_names(tiers))
    for name in ("check_w", "check_mean", "check_std", "check_b"):
        if name not in arrays:
            raise OutcomeModelError(weights, f"the array {name} is missing (metadata.json "
                                    f"lists a check): {RETRAIN}")
    for name in ("check_w", "check_mean", "check_std"):
        got = np.shape(arrays[name])
        if len(got) != 1 or got[0] != nf:
            size = got[0] if len(got) == 1 else got
            raise OutcomeModelError(weights, f"the check has {size} features ({name}), this "
                                    f"version computes {nf}: {RETRAIN}")
    if np.size(arrays["check_b"]) != 1:
        raise OutcomeModelError(weights, "the array check_b has shape "
                                f"{np.shape(arrays['check_b'])}, expected one number: {RETRAIN}")
    if check_vocabulary_size is not None:
        terms = f"the {check_vocabulary_size} terms of check_vocabulary.json"
        _shapes(arrays, {"check_word_idf": ((check_vocabulary_size,), terms),
                         "check_word_w": ((check_vocabulary_size,), terms)},
                weights, " (the check weighs words)")


def _shapes(arrays: Mapping[str, Any], expected: Mapping[str, tuple[tuple[int, ...], str]],
            weights: Path, why: str) -> None:
    """Each named array present (``why``: why it must be) and of its shape, or the error."""
    for name, (shape, what) in expected.items():
        if name not in arrays:
            raise OutcomeModelError(weights, f"the array {name} is missing{why}: {RETRAIN}")
        got = np.shape(arrays[name])
        if got != shape:
            raise OutcomeModelError(weights, f"the array {name} has shape {got}, expected "
                                    f"{shape} for {what}: the files do not belong together; "
                                    f"{RETRAIN}")
