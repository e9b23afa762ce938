"""The learned check weighs the answer's words: what a user's own models say when they fail."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from classifier_service.feedback import OutcomeRecord
from classifier_service.routing.answer_features import answer_terms, answer_words
from classifier_service.routing.outcome_model import OutcomeModel, OutcomeModelError
from tier_router_training.outcomes.train import train_model

WORDS = ["apple", "river", "garden", "window", "music", "table", "letter", "summer", "market",
         "bridge", "pencil", "cloud", "doctor", "island", "number", "yellow", "engine", "forest",
         "coffee", "silver"]
TWO = ("small", "large")
COSTS = {"small": 1.0, "large": 10.0}
LECTURE = "However, I must inform you that"


def lecture_records(n: int = 240, seed: int = 4) -> list[OutcomeRecord]:
    """Small answers that open with a lecture lose; every answer is about as long as any other,
    so neither length nor structure tells them apart: only the words do."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = "Please tell me about " + " ".join(rng.sample(WORDS, 5)) + f" ({i})."
        body = " ".join(rng.choices(WORDS, k=40)) + "."
        lectured = i % 3 == 0
        small = f"{LECTURE} {body}" if lectured else f"Here is what I know: {body}"
        out.append(OutcomeRecord(p, "small", 0.0 if lectured else 1.0, answer=small,
                                 finish_reason="stop"))
        out.append(OutcomeRecord(p, "large", 1.0, finish_reason="stop",
                                 answer="Sure: " + " ".join(rng.choices(WORDS, k=44)) + "."))
    return out


def test_answer_terms_are_unigrams_then_bigrams_of_the_lowercased_words() -> None:
    assert answer_words("  I must INFORM you. ") == ["i", "must", "inform", "you"]
    assert answer_terms("I must inform") == ["i", "must", "inform", "i must", "must inform"]
    assert len(answer_words("word " * 5000)) == 160  # the first 160 words


def test_check_learns_the_words_of_failing_answers(tmp_path: Path) -> None:
    model, _ = train_model(lecture_records(), TWO, COSTS, tmp_path / "m", match_tier="large")
    assert model.weighs_words
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    words = meta["check"]["words"]
    assert words["scale"] > 0 and words["terms"] > 10
    assert {"must inform", "inform you", "however i"} & set(words["towards_not_good"])
    p = "Please tell me about river garden apple music table (999)."  # as the records' prompts
    body = " ".join(random.Random(77).choices(WORDS, k=40)) + "."  # as the records' bodies
    bad, signals = model.check(p, f"{LECTURE} {body}", "small", "stop")
    good, _ = model.check(p, f"Here is what I know: {body}", "small", "stop")
    assert bad > 0.8 and good < 0.5
    # On new records from the same models: the lectures go up, most of the rest stay.
    held_out = [r for r in lecture_records(90, seed=11) if r.tier == "small"]
    up = {r.prompt: model.escalate(model.check(r.prompt, r.answer or "", "small", "stop")[0],
                                   "small") for r in held_out}
    lost = [up[r.prompt] for r in held_out if r.score == 0.0]
    kept = [not up[r.prompt] for r in held_out if r.score == 1.0]
    assert all(lost) and sum(kept) / len(kept) >= 0.8
    words_term = [(name, push) for name, push in signals if name.startswith("words: ")]
    assert words_term and words_term[0][1] > 0, signals
    assert {'"however"', '"must"', '"inform"', '"must inform"', '"inform you"'} & set(
        words_term[0][0].removeprefix("words: ").split(", "))
    point = model.metadata["operating_point"]
    assert point["family"] == "cascade" and point["expected_quality"] >= 0.99
    assert point["shares"]["small"] == pytest.approx(2 / 3, abs=0.05)


def test_serving_scores_an_answer_as_training_did() -> None:
    """The check served (Counter over words and word pairs, the stored vocabulary, idf and
    weights) gives each training answer the p_bad that scikit-learn's fit gave it."""
    model, fit = train_model(lecture_records(120, seed=9), TWO, COSTS, match_tier="large")
    assert model.weighs_words and fit.p_bad_fit is not None
    table = fit.table
    compared = 0
    for i, prompt in enumerate(table.prompts):
        for t, tier in enumerate(TWO):
            answer = table.answers[i][t]
            if answer is None:
                continue
            served = model.check(prompt, answer, tier, table.finish[i][t])[0]
            assert served == pytest.approx(float(fit.p_bad_fit[i, t]), abs=1e-9)
            compared += 1
    assert compared == 240


def test_a_check_without_words_when_they_do_not_help(tmp_path: Path) -> None:
    model, _ = train_model(lecture_records(), TWO, COSTS, tmp_path / "m", word_scales=(0.0,))
    assert not model.weighs_words
    assert not (tmp_path / "m" / "check_vocabulary.json").exists()
    assert OutcomeModel.load(tmp_path / "m").check("p", "Yes.", "small")[1]


def test_format_versions_read_and_refused(tmp_path: Path) -> None:
    out = tmp_path / "m"
    train_model(lecture_records(), TWO, COSTS, out, word_scales=(0.0,))
    meta_path = out / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 2
    meta_path.write_text(json.dumps(dict(meta, format_version=1)))  # a model from before words
    assert OutcomeModel.load(out).has_check
    meta_path.write_text(json.dumps(dict(meta, format_version=3)))
    with pytest.raises(OutcomeModelError, match="version 3; this tier-router reads versions 1, 2"):
        OutcomeModel.load(out)


def test_words_leave_the_check_fast_to_skip_for_an_answer_without_known_terms() -> None:
    model, _ = train_model(lecture_records(), TWO, COSTS, match_tier="large")
    terms = model.score_check("p", "zzq qqz", "small", "stop")
    assert len(terms.word_index) == 0 and np.isfinite(terms.p_bad)


def test_the_outcome_router_reads_the_classifiers_features_as_it_would_the_prompt() -> None:
    """The classifier's Scores carry the prompt's features; the outcome model's logits from
    them equal those it computes from the prompt itself."""
    from classifier_service.routing.artifact import bundled_model_dir, load_artifact
    from classifier_service.routing.classifier import Scores, TierClassifier

    clf = TierClassifier(load_artifact(bundled_model_dir())).score
    model, _ = train_model(lecture_records(), TWO, COSTS, classifier=clf)
    for prompt in ("Please tell me about river garden apple music table (7).",
                   "Summarise this report in three bullet points for the board."):
        scores = clf(prompt)
        assert scores.features is not None
        bare = Scores(scores.tiers, scores.categories)  # the same scores, no features
        with_features = model._router_logits(prompt, scores)
        assert np.allclose(with_features, model._router_logits(prompt, bare), atol=1e-12)


def test_word_arrays_that_do_not_fit_the_check_vocabulary_are_refused(tmp_path: Path) -> None:
    from tests.test_outcome_layout import RETRAIN, rewritten

    train_model(lecture_records(), TWO, COSTS, tmp_path / "m", match_tier="large")
    assert OutcomeModel.load(tmp_path / "m").weighs_words
    terms = len(json.loads((tmp_path / "m" / "check_vocabulary.json").read_text()))

    def shorten(arrays: dict[str, np.ndarray]) -> None:
        arrays["check_word_w"] = arrays["check_word_w"][:-1]

    def drop(arrays: dict[str, np.ndarray]) -> None:
        del arrays["check_word_idf"]

    with pytest.raises(OutcomeModelError, match=rf"the array check_word_w has shape "
                       rf"\({terms - 1},\), expected \({terms},\) for the {terms} terms of "
                       rf"check_vocabulary.json.*{RETRAIN}"):
        OutcomeModel.load(rewritten(tmp_path / "m", tmp_path / "short", shorten))
    with pytest.raises(OutcomeModelError, match="the array check_word_idf is missing "
                       r"\(the check weighs words\)"):
        OutcomeModel.load(rewritten(tmp_path / "m", tmp_path / "dropped", drop))
