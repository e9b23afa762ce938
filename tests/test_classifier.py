"""The lean inference path computes exactly what scikit-learn computes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier_service.errors import DataError, ModelArtifactError
from classifier_service.features import analyze, analyze_words
from classifier_service.routing.artifact import bundled_model_dir, load_artifact, save_artifact
from classifier_service.routing.classifier import (
    TierClassifier,
    known_share,
    known_words_share,
    temper,
    temper_factor,
)
from classifier_service.runtime import Runtime
from tier_router_training.dataset import Example, bundled_corpus_files, load_examples
from tier_router_training.pipeline import (
    Recipe,
    blend_proba,
    fit_bundle,
    head_classes,
    temper_rows,
    tier_proba,
)
from tier_router_training.train import train

ODD_PROMPTS = [
    "",
    "?!",
    "zzzz qqqq xxxxyyyy",
    "ÄÖÜ ß 東京 🚀",
    "word " * 3000,
    "a\tb\n```c```",
]


def corpus_prompts(n: int) -> list[str]:
    rows = load_examples(bundled_corpus_files())
    return [rows[i].prompt for i in range(0, len(rows), max(1, len(rows) // n))][:n]


def sklearn_proba(bundle: dict[str, Any], head: str, prompts: list[str]) -> np.ndarray:
    """What scikit-learn itself computes for a head: the blend of its experts' log-probas,
    tempered by the share of each prompt's words the model knows."""
    proba = blend_proba(bundle["heads"][head], bundle["vectorizer"].transform(prompts))
    return temper_rows(bundle, proba, prompts)


def test_lean_path_matches_predict_proba(runtime: Runtime) -> None:
    bundle = load_artifact(bundled_model_dir()).bundle
    clf = runtime.classifier
    prompts = corpus_prompts(300) + ODD_PROMPTS
    for head in ("tier", "category"):
        expected = sklearn_proba(bundle, head, prompts)
        labels = head_classes(bundle["heads"][head])
        for prompt, row in zip(prompts, expected, strict=True):
            scores = clf.score(prompt)
            got = scores.tiers if head == "tier" else scores.categories
            assert got is not None
            assert list(got) == labels
            np.testing.assert_allclose(list(got.values()), row, rtol=0, atol=1e-9)


@pytest.mark.parametrize("lr_weight", [1.0, 0.7, 0.0])
def test_binary_model_without_kinds(tmp_path: Path, lr_weight: float) -> None:
    examples = [Example(f"classify this short text number {i}", "small") for i in range(12)]
    examples += [Example(f"write a long novel chapter about topic {i} with plot twists", "big")
                 for i in range(12)]
    bundle = fit_bundle(examples, Recipe(lr_weight=lr_weight))
    assert len(bundle["heads"]["tier"]) == (1 if lr_weight in (0.0, 1.0) else 2)
    assert bundle["heads"]["category"] is None
    save_artifact(tmp_path, bundle, {"labels": {"tier": ["small", "big"], "category": None},
                                     "thresholds": {"confidence_threshold": 0.5}})
    clf = TierClassifier(load_artifact(tmp_path))
    prompts = ["classify this short text", "write a long novel chapter", "unseen words", ""]
    expected = sklearn_proba(bundle, "tier", prompts)
    for prompt, row in zip(prompts, expected, strict=True):
        scores = clf.score(prompt)
        assert scores.categories is None and scores.top_category is None
        np.testing.assert_allclose(list(scores.tiers.values()), row, atol=1e-9)
    assert clf.score("write a long novel chapter about dragons").top_tier == "big"


@pytest.mark.parametrize(
    ("prompt", "tier"),
    [
        ("is this email spam? 'You won a free cruise, click here'", "simple"),
        ("convert 5 miles to km", "simple"),
        ("why is the sky blue", "medium"),
        ("Write a haiku about autumn rain", "complex"),
    ],
)
def test_default_model_sanity(runtime: Runtime, prompt: str, tier: str) -> None:
    assert runtime.classifier.score(prompt).top_tier == tier


def test_metadata_records_provenance(runtime: Runtime) -> None:
    meta = runtime.artifact.metadata
    assert meta["labels"]["tier"] == ["simple", "medium", "complex"]
    assert len(meta["training_data"]["sha256"]) == 64
    assert meta["libraries"]["scikit-learn"].startswith("1.")
    assert 0 < meta["thresholds"]["confidence_threshold"] < 1
    assert meta["metrics"]["cv_macro_f1"] > 0.7
    assert json.dumps(meta)  # plain JSON


def test_unknown_words_flatten_the_probabilities(runtime: Runtime) -> None:
    clf = runtime.classifier
    vocab = load_artifact(bundled_model_dir()).bundle["vectorizer"].vocabulary_
    # nothing known: every tier equally likely, whatever the shape markers say
    assert known_share(analyze("zzzz qqqq xxxxyyyy?"), vocab) == 0.0
    assert max(clf.score("zzzz qqqq xxxxyyyy?").tiers.values()) == pytest.approx(1 / 3)
    # a familiar prompt is untouched: its share is above full_share
    prompt = "Write a haiku about autumn rain"
    assert known_share(analyze(prompt), vocab) == 1.0
    assert max(clf.score(prompt).tiers.values()) > 0.8
    # half-known is in between: flatter than the same words alone
    half = "Write a haiku about autumn rain " + " ".join(f"qzx{i}v" for i in range(10))
    assert 0 < known_share(analyze(half), vocab) < 0.5
    assert 1 / 3 < max(clf.score(half).tiers.values()) < max(clf.score(prompt).tiers.values())


def test_known_share_from_the_words_is_known_share(runtime: Runtime) -> None:
    """score() counts the known share from the words analyze_words() read, not all features."""
    vocab = load_artifact(bundled_model_dir()).bundle["vectorizer"].vocabulary_
    prompts = corpus_prompts(200) + ODD_PROMPTS + [
        "__init__ and __len3 are not words here", "what does __ mean", "__first write"]
    for prompt in prompts:
        feats, read = analyze_words(prompt)
        assert known_words_share(read, vocab) == known_share(feats, vocab), prompt


def test_temper() -> None:
    p = np.array([0.8, 0.15, 0.05])
    np.testing.assert_allclose(temper(p, 1.0), p)
    np.testing.assert_allclose(temper(p, 0.0), [1 / 3] * 3)
    rows = temper(np.vstack([p, p]), np.array([1.0, 0.5]))
    np.testing.assert_allclose(rows[0], p)
    assert rows[1][0] < p[0] and rows[1].sum() == pytest.approx(1.0)
    assert temper_factor(0.25, 0.5) == 0.5 and temper_factor(0.9, 0.5) == 1.0


def _kinded_examples() -> list[Example]:
    """Three tiers; 'medium' is two unlike kinds, as real tiers are."""
    rows: list[Example] = []
    for i in range(15):
        rows.append(Example(f"label this review {i} as positive or negative", "simple",
                            "classification"))
        rows.append(Example(f"summarise the meeting notes of week {i}", "medium",
                            "summarization"))
        rows.append(Example(f"draft an email to client {i} about the invoice", "medium",
                            "drafting"))
        rows.append(Example(f"write a poem about the sea and ship {i}", "complex",
                            "creative_writing"))
    return rows


def test_kind_mix_matches_the_reference_and_changes_the_tiers(tmp_path: Path) -> None:
    examples = _kinded_examples()
    plain = fit_bundle(examples, Recipe())
    mixed = fit_bundle(examples, Recipe(kind_weight=0.4))
    assert "tier_from_kinds" not in plain
    spec = mixed["tier_from_kinds"]
    assert spec["weight"] == 0.4 and spec["kinds"] == sorted(spec["kinds"])
    row = spec["matrix"][spec["kinds"].index("drafting")]
    assert row[spec["tiers"].index("medium")] == 1.0
    assert spec["prior"][spec["tiers"].index("medium")] == pytest.approx(0.5)

    save_artifact(tmp_path, mixed, {
        "labels": {"tier": ["simple", "medium", "complex"],
                   "category": head_classes(mixed["heads"]["category"])},
        "thresholds": {"confidence_threshold": 0.5}})
    clf = TierClassifier(load_artifact(tmp_path))
    prompts = ["label this review", "draft an email about the invoice", "a poem", "", "zz"]
    x = mixed["vectorizer"].transform(prompts)
    expected = tier_proba(mixed, x, prompts)
    alone = blend_proba(mixed["heads"]["tier"], x)
    assert not np.allclose(expected, alone)  # the mix does something
    labels = head_classes(mixed["heads"]["tier"])
    for prompt, want in zip(prompts, expected, strict=True):
        got = clf.score(prompt).tiers
        assert list(got) == labels
        np.testing.assert_allclose(list(got.values()), want, rtol=0, atol=1e-9)
    assert clf.score("draft an email to the landlord").top_tier == "medium"


def test_a_broken_kind_mix_is_refused(tmp_path: Path) -> None:
    mixed = fit_bundle(_kinded_examples(), Recipe(kind_weight=0.4))
    mixed["tier_from_kinds"]["tiers"] = ["simple", "medium", "galaxy"]
    save_artifact(tmp_path, mixed, {
        "labels": {"tier": ["simple", "medium", "complex"],
                   "category": head_classes(mixed["heads"]["category"])},
        "thresholds": {"confidence_threshold": 0.5}})
    with pytest.raises(ModelArtifactError, match="tier_from_kinds"):
        load_artifact(tmp_path)


def test_kind_weight_needs_kinds(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.prompt, "tier": e.tier}) + "\n"
                            for e in _kinded_examples()), encoding="utf-8")
    with pytest.raises(DataError, match="--kind-weight"):
        train([data], tmp_path / "m", recipe=Recipe(kind_weight=0.4))
