"""Learning from outcomes on small synthetic records built here."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from classifier_service.feedback import OutcomeRecord
from classifier_service.routing.outcome_model import OutcomeModel, OutcomeModelError
from tier_router_training.outcomes.calibrate import ALWAYS, NEVER, choose, replay
from tier_router_training.outcomes.records import OutcomeTable
from tier_router_training.outcomes.report import evaluate_model
from tier_router_training.outcomes.train import carry_check_thresholds, train_model

WORDS = ["apple", "river", "garden", "window", "music", "table", "letter", "summer", "market",
         "bridge", "pencil", "cloud", "doctor", "island", "number", "yellow", "engine", "forest",
         "coffee", "silver"]
TWO = ("small", "large")
TWO_COSTS = {"small": 1.0, "large": 10.0}


def prompt(rng: random.Random, topic: bool) -> str:
    words = rng.sample(WORDS, 6)
    if topic:
        words.insert(rng.randrange(len(words)), "quantum")
    return "Please tell me about " + " ".join(words) + f" ({rng.randrange(10**6)})?"


def topic_records(n: int = 240, seed: int = 1) -> list[OutcomeRecord]:
    """The small tier fails exactly on prompts about 'quantum'; the large one never fails."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = prompt(rng, topic=i % 3 == 0)
        out.append(OutcomeRecord(p, "small", 0.0 if "quantum" in p else 1.0))
        out.append(OutcomeRecord(p, "large", 1.0))
    return out


@dataclass(frozen=True)
class FakeScores:
    tiers: dict[str, float]
    categories: dict[str, float] | None = None


def test_router_learns_where_the_small_tier_fails() -> None:
    model, _ = train_model(topic_records(), TWO, TWO_COSTS, match_tier="large")
    rng = random.Random(99)
    hard, easy = prompt(rng, True), prompt(rng, False)
    probs = model.tier_probabilities(hard)
    assert probs["small"] < 0.3 < 0.7 < model.tier_probabilities(easy)["small"]
    assert model.decide(hard)[0] == "large"
    tier, reason = model.decide(easy)
    assert tier == "small" and "P(good)" in reason
    point = model.metadata["operating_point"]
    assert point["expected_quality"] >= 0.999 and point["target_met"]
    assert 0.55 < point["shares"]["small"] < 0.75  # two thirds are easy


def test_thin_tier_falls_back_to_the_classifier() -> None:
    rng = random.Random(3)
    records = []
    for i in range(150):
        p = prompt(rng, topic=i % 2 == 0)
        records.append(OutcomeRecord(p, "simple", 0.0 if "quantum" in p else 1.0))
        records.append(OutcomeRecord(p, "complex", 1.0))
        if i < 20:
            records.append(OutcomeRecord(p, "medium", 1.0))
    tiers = ("simple", "medium", "complex")
    model, _ = train_model(records, tiers, {"simple": 1, "medium": 2, "complex": 10})
    assert set(model.fallback) == {"medium", "complex"}
    assert "too few outcome records (20 < 50)" in model.fallback["medium"]
    assert "too few of one outcome (0 good" not in model.fallback["complex"]
    assert "150 good, 0 not" in model.fallback["complex"]  # it never fails: nothing to learn
    assert "medium" not in model.tier_probabilities("anything")
    hard = prompt(rng, True)
    tier, reason = model.decide(hard, FakeScores({"simple": 0.1, "medium": 0.7, "complex": 0.2}))
    assert tier == "medium" and "has 20 records, too few" in reason and "classifier" in reason
    tier, _ = model.decide(hard, FakeScores({"simple": 0.1, "medium": 0.2, "complex": 0.7}))
    assert tier == "complex"


def test_calibration_honours_max_share() -> None:
    records = topic_records()
    model, _ = train_model(records, TWO, TWO_COSTS, max_share={"large": 0.2})
    point = model.metadata["operating_point"]
    assert point["shares"]["large"] <= 0.2 and point["target_met"]
    # Capped below the third of prompts that need it, the cap binds: quality is below 1.
    assert 0.8 < point["expected_quality"] < 0.95
    loose, _ = train_model(records, TWO, TWO_COSTS, max_share={"large": 0.5})
    assert loose.metadata["operating_point"]["expected_quality"] > point["expected_quality"]
    with pytest.raises(ValueError, match="tier 'huge'"):
        train_model(records, TWO, TWO_COSTS, max_share={"huge": 0.1})


def test_replay_counts_every_call_of_a_cascade() -> None:
    scores = np.array([[0.0, 1.0], [1.0, 1.0]])
    p_good = np.zeros((2, 2))  # both start at the cheap tier
    p_bad = np.array([[0.9, np.nan], [0.1, np.nan]])
    r = replay(scores, p_good, p_bad, np.array([1.0, 10.0]), [0.0, 0.0], [0.5, 1.0])
    assert r.quality == 1.0
    assert r.cost == pytest.approx((1 + 10 + 1) / 2)  # the first prompt pays both calls
    assert r.shares.tolist() == [0.5, 0.5] and r.calls.tolist() == [1.0, 0.5]


def short_answer_records(n: int = 200) -> list[OutcomeRecord]:
    """Short answers at the small tier fail; long ones pass; the large tier always passes."""
    rng = random.Random(5)
    out = []
    for i in range(n):
        p = prompt(rng, topic=False)
        short = i % 2 == 0
        answer = "Yes." if short else " ".join(rng.choices(WORDS, k=60)) + "."
        out.append(OutcomeRecord(p, "small", 0.0 if short else 1.0, answer=answer,
                                 finish_reason="stop"))
        out.append(OutcomeRecord(p, "large", 1.0, answer=" ".join(rng.choices(WORDS, k=80)),
                                 finish_reason="stop"))
    return out


def test_check_learns_that_short_answers_fail_and_match_tier_uses_it() -> None:
    model, _ = train_model(short_answer_records(), TWO, TWO_COSTS, match_tier="large")
    assert model.has_check
    p = "Please describe the garden and the river in detail."
    bad, signals = model.check(p, "No.", "small", "stop", None)
    good, _ = model.check(p, " ".join(WORDS * 3) + ".", "small", "stop", None)
    assert bad > 0.8 and good < 0.2
    assert signals[0][0] in {"log_chars", "log_ratio_prompt", "log_ratio_kind",
                             "log_ratio_min_chars", "signal:too_short"}
    point = model.metadata["operating_point"]
    # Matching the large tier: start small, escalate exactly the short answers.
    assert point["expected_quality"] >= 0.999
    assert point["shares"]["small"] == pytest.approx(0.5, abs=0.05)
    assert point["calls"]["small"] == pytest.approx(1.0)
    assert point["cost"] == pytest.approx(1 + 0.5 * 10, abs=0.6)
    assert model.escalate(bad, "small") and not model.escalate(good, "small")
    with pytest.raises(KeyError, match="tier 'huge'"):
        model.check(p, "x", "huge")


def test_saved_folder_round_trips_and_refuses_a_corrupt_file(tmp_path: Path) -> None:
    out = tmp_path / "model"
    model, _ = train_model(short_answer_records(), TWO, TWO_COSTS, out, match_tier="large")
    meta = json.loads((out / "metadata.json").read_text())
    words = ["check_vocabulary.json"] if model.weighs_words else []
    assert sorted(p.name for p in out.iterdir()) == [*words, "metadata.json",
                                                     "vocabulary.json", "weights.npz"]
    assert meta["format"] == "tier-router-outcomes" and meta["tiers"] == list(TWO)
    assert meta["records"]["small"]["records"] == 200
    assert list(meta["router"]["fallback"]) == ["large"]  # it never fails
    assert {"numpy", "scikit-learn"} <= set(meta["libraries"])
    assert set(meta["files"]) == {"weights.npz", "vocabulary.json", *words}
    with np.load(out / "weights.npz", allow_pickle=False) as npz:
        assert "router_w" in npz.files and "check_w" in npz.files
    p = "Please describe the garden."
    assert OutcomeModel.load(out).decide(p) == model.decide(p)
    train_model(short_answer_records(), TWO, TWO_COSTS, out)  # replacing a folder works
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]
    with (out / "weights.npz").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(OutcomeModelError, match="checksum mismatch"):
        OutcomeModel.load(out)


def test_refit_is_deterministic(tmp_path: Path) -> None:
    records = short_answer_records()
    train_model(records, TWO, TWO_COSTS, tmp_path / "a", seed=7)
    train_model(records, TWO, TWO_COSTS, tmp_path / "b", seed=7)
    a = json.loads((tmp_path / "a" / "metadata.json").read_text())
    b = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert a["files"] == b["files"] and a["operating_point"] == b["operating_point"]


def test_report_files_carry_the_documented_keys(tmp_path: Path) -> None:
    records = topic_records()
    model, _ = train_model(records, TWO, TWO_COSTS, max_share={"large": 0.4})
    report = evaluate_model(model, OutcomeTable.build(topic_records(seed=2), TWO), TWO_COSTS,
                            tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert {"tiers", "costs", "prompts", "always", "oracle", "random", "operating_points",
            "calibrated", "pgr", "apgr", "random_apgr", "calibrated_pgr"} <= set(saved)
    assert set(saved["pgr"]) == {"0.20", "0.30", "0.50"}
    assert saved["oracle"]["quality"] == 1.0 and saved["always"]["large"]["quality"] == 1.0
    # The router finds all the failures: at 30% strong it has closed most of the gap.
    assert saved["pgr"]["0.30"] > 0.8 and saved["apgr"] > 0.8 > saved["random_apgr"]
    assert saved["calibrated"]["delta_vs_random"] > 0.2
    png = (tmp_path / "report" / "cost_quality.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError, match="outside 0-1"):
        OutcomeTable.build([OutcomeRecord("p", "small", 1.5)], TWO)
    with pytest.raises(ValueError, match="tier 'tiny'"):
        OutcomeTable.build([OutcomeRecord("p", "tiny", 1.0)], TWO)


THREE = ("simple", "medium", "complex")


def three_tier_records(n: int = 200) -> list[OutcomeRecord]:
    """Short answers fail at both lower tiers. Half the simple answers are short; 17 medium
    answers are, on prompts whose simple answer is short too; the complex tier never fails."""
    rng = random.Random(11)
    out = []
    for i in range(n):
        p = prompt(rng, topic=False)
        long_answer = " ".join(rng.choices(WORDS, k=60)) + "."
        short_small, short_medium = i % 2 == 0, i % 12 == 0
        out.append(OutcomeRecord(p, "simple", 0.0 if short_small else 1.0,
                                 answer="Yes." if short_small else long_answer))
        out.append(OutcomeRecord(p, "medium", 0.0 if short_medium else 1.0,
                                 answer="No." if short_medium else long_answer))
        out.append(OutcomeRecord(p, "complex", 1.0, answer=long_answer))
    return out


THREE_COSTS = {"simple": 1.0, "medium": 1.1, "complex": 10.0}


def test_match_tier_objectives_share_and_cost_and_the_margin() -> None:
    records = three_tier_records()
    goal = sum(r.score for r in records if r.tier == "medium") / 200
    assert 0.9 < goal < 1.0
    # Default objective: the most traffic on the cheapest tier at always-medium's quality.
    share, _ = train_model(records, THREE, THREE_COSTS, match_tier="medium")
    point = share.metadata["operating_point"]
    assert point["target_met"] and point["family"] == "cascade"
    assert point["target"]["objective"] == "share" and point["target"]["margin"] == 1.0
    assert point["shares"]["simple"] == pytest.approx(0.5, abs=0.05)
    assert point["expected_quality"] >= goal
    assert share.decide("Please tell me about the river.")[0] == "simple"
    # Objective cost: always-medium (1.1 a call) is cheaper than any cascade from simple.
    cheap, _ = train_model(records, THREE, THREE_COSTS, match_tier="medium", objective="cost")
    point = cheap.metadata["operating_point"]
    assert point["target_met"] and point["cost"] < 1.2 and point["shares"]["simple"] < 0.1
    with pytest.raises(ValueError, match="objective 'fast'"):
        train_model(records, THREE, THREE_COSTS, match_tier="medium", objective="fast")


def test_match_margin_refuses_a_lead_within_the_noise() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])  # always-large 0.75
    lucky = {"family": "router", "router": [ALWAYS, 0.0], "check": [1.0, 1.0], "quality": 0.8,
             "cost": 5.0, "shares": [0.6, 0.4], "calls": [0.6, 0.4], "se": [0.2, 0.1]}
    large = {"family": "router", "router": [NEVER, 0.0], "check": [1.0, 1.0], "quality": 0.75,
             "cost": 10.0, "shares": [0.0, 1.0], "calls": [0.0, 1.0], "se": [0.25, 0.0]}
    # 0.80 - 1 SE (0.1) is below 0.75: with the default margin, always-large is what matches.
    assert choose([lucky, large], TWO, scores, match_tier="large")["shares"]["large"] == 1.0
    loose = choose([lucky, large], TWO, scores, match_tier="large", margin=0.0)
    assert loose["shares"]["small"] == 0.6 and loose["target"]["quality_to_match"] == 0.75
    with pytest.raises(ValueError, match="margin -1"):
        choose([lucky, large], TWO, scores, match_tier="large", margin=-1)


def test_cascade_escalates_from_the_middle_tier_too() -> None:
    model, _ = train_model(three_tier_records(), THREE, THREE_COSTS,
                           min_share={"simple": 0.45})
    point = model.metadata["operating_point"]
    # Best quality with at least 45% on simple: short answers go up at both stages.
    assert point["target_met"] and point["expected_quality"] >= 0.999
    assert point["calls"]["simple"] == pytest.approx(1.0)
    assert 0.0 < point["shares"]["complex"] < 0.2
    p = "Please describe the garden."
    bad, _ = model.check(p, "No.", "medium")
    good, _ = model.check(p, " ".join(WORDS * 3) + ".", "medium")
    assert model.escalate(bad, "medium") and not model.escalate(good, "medium")


def test_check_thresholds_carry_the_escalation_rate_to_the_final_check() -> None:
    oof = np.array([[0.1, np.nan], [0.2, np.nan], [0.3, np.nan], [0.4, np.nan]])
    final = np.array([[0.5, np.nan], [0.6, np.nan], [0.7, np.nan], [0.8, np.nan]])
    # 0.25 escalates half the answers out of fold; under the final check, 0.65 does.
    out = carry_check_thresholds({"small": 0.25, "large": 1.0}, TWO, oof, final)
    assert out["large"] == 1.0 and int((final[:, 0] > out["small"]).sum()) == 2
    every = carry_check_thresholds({"small": 0.0}, TWO, oof, final)["small"]
    none = carry_check_thresholds({"small": 0.5}, TWO, oof, final)["small"]
    assert (final[:, 0] > every).all() and not (final[:, 0] > none).any()
