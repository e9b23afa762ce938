"""The calibration targets on the command line: ``--min-share``, ``--objective`` and
``--margin`` of ``train --outcomes`` and ``calibrate --outcomes``, through ``tier-router``'s own
entry point, on synthetic records (tests/support/outcomes.py). The floors are checked by
replaying the reference prompts through the saved model as serving decides (``choose``, then
the learned check), not by reading back what calibration wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifier_service.cli import main
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.routing.classifier import TierClassifier
from classifier_service.routing.outcome_model import OutcomeModel
from tests.support.outcomes import TIERS, records, train, write


@pytest.fixture
def model(outcome_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "m"
    shutil.copytree(outcome_model_dir, copy)
    return copy


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("ref") / "ref.jsonl", records(90, seed=9))


def served_shares(outcome_model_dir: Path, rows: list[dict[str, object]]) -> dict[str, float]:
    """The share of prompts each tier answers when the saved model routes them as the service
    does: its decision, then the learned check on the recorded answer, escalating as it says."""
    model = OutcomeModel.load(outcome_model_dir)
    assert model.classifier_dir is not None
    score = TierClassifier(load_artifact(model.classifier_dir)).score
    by_prompt: dict[str, dict[str, dict[str, object]]] = {}
    for row in rows:
        by_prompt.setdefault(str(row["prompt"]), {})[str(row["tier"])] = row
    answered = dict.fromkeys(model.tiers, 0)
    complete = [(p, r) for p, r in by_prompt.items() if set(r) == set(model.tiers)]
    for prompt, at in complete:
        scores = score(prompt)
        tier = model.choose(prompt, scores).tier
        while tier != model.tiers[-1] and model.has_check:
            row = at[tier]
            logprob = row.get("avg_logprob")
            p_bad, _ = model.check(prompt, str(row["answer"]), tier, None,
                                   float(logprob) if isinstance(logprob, float) else None,
                                   scores)
            if not model.escalate(p_bad, tier):
                break
            tier = model.tiers[model.tiers.index(tier) + 1]
        answered[tier] += 1
    return {t: n / len(complete) for t, n in answered.items()}


def test_calibrate_min_share_alone_raises_the_cheapest_tier_to_the_floor(
        model: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = records(90, seed=9)
    # A cap that never binds: the highest-quality point, which keeps simple well below 80%.
    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference),
                 "--max-share", "complex=1"]) == 0
    best = OutcomeModel.load(model).metadata["operating_point"]
    assert best["shares"]["simple"] < 0.8 and served_shares(model, rows)["simple"] < 0.8
    capsys.readouterr()

    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference),
                 "--min-share", "simple=0.8"]) == 0
    out = capsys.readouterr().out
    point = OutcomeModel.load(model).metadata["operating_point"]
    assert point["target"] == {"max_share": {}, "min_share": {"simple": 0.8}, "match_tier": None}
    assert point["target_met"] is True and point["shares"]["simple"] >= 0.8
    served = served_shares(model, rows)
    assert served["simple"] >= 0.8
    assert served == pytest.approx({t: point["shares"][t] for t in TIERS}, abs=1e-6)
    assert point["expected_quality"] < best["expected_quality"]  # the floor's price
    assert "target: at least simple 80.0%" in out and "target met: yes" in out


def test_calibrate_min_share_with_match_tier_objective_and_margin(
        model: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference),
                 "--match-tier", "medium", "--min-share", "simple=0.5", "--objective", "cost",
                 "--margin", "0"]) == 0
    out = capsys.readouterr().out
    point = OutcomeModel.load(model).metadata["operating_point"]
    target = point["target"]
    assert target["min_share"] == {"simple": 0.5} and target["match_tier"] == "medium"
    assert (target["objective"], target["margin"]) == ("cost", 0.0)
    assert point["target_met"] is True and point["shares"]["simple"] >= 0.5
    assert point["expected_quality"] >= target["quality_to_match"] - 1e-4
    assert served_shares(model, records(90, seed=9))["simple"] >= 0.5
    assert ("target: at least simple 50.0%; as good as always-medium (objective cost, margin "
            "0 SE)") in out
    assert "target met: yes" in out

    # The default objective and margin are written too; a floor no point meets says so.
    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference),
                 "--match-tier", "complex", "--min-share", "simple=1"]) == 0
    out = capsys.readouterr().out
    point = OutcomeModel.load(model).metadata["operating_point"]
    assert (point["target"]["objective"], point["target"]["margin"]) == ("share", 1.0)
    assert point["target_met"] is False and "target met: no" in out


def test_train_min_share_and_match_options(outcome_portfolio: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    floor = train(tmp_path / "a", records(), outcome_portfolio, "--min-share", "simple=0.8")
    out = capsys.readouterr().out
    point = OutcomeModel.load(floor).metadata["operating_point"]
    assert point["target"]["min_share"] == {"simple": 0.8}
    assert point["target_met"] is True and point["shares"]["simple"] >= 0.8
    assert "target: at least simple 80.0%" in out and "target met: yes" in out

    (tmp_path / "b").mkdir()
    matched = train(tmp_path / "b", records(), outcome_portfolio, "--match-tier", "medium",
                    "--objective", "cost", "--margin", "0.5", "--max-share", "complex=0.5")
    point = OutcomeModel.load(matched).metadata["operating_point"]
    assert point["target"]["objective"] == "cost" and point["target"]["margin"] == 0.5
    assert point["target"]["max_share"] == {"complex": 0.5} and "target_met" in point
    assert "objective cost, margin 0.5 SE" in capsys.readouterr().out


BAD = [
    (["--min-share", "huge=0.5"],
     "--min-share 'huge=0.5': expected TIER=SHARE with TIER one of simple, medium, complex"),
    (["--min-share", "simple"], "--min-share 'simple': expected TIER=SHARE"),
    (["--min-share", "simple=1.5"], "--min-share 'simple=1.5': the share must be 0-1"),
    (["--min-share", "simple=-0.1"], "--min-share 'simple=-0.1': the share must be 0-1"),
    (["--min-share", "simple=lots"], "--min-share 'simple=lots': 'lots' is not a number"),
    (["--min-share", "simple=0.9", "--max-share", "simple=0.5"],
     "--min-share simple=0.9 is above --max-share simple=0.5"),
    (["--min-share", "simple=0.6", "--min-share", "medium=0.6"],
     "--min-share: the floors add up to 1.2, more than 1"),
    (["--objective", "cost"], "--objective cost: only with --match-tier TIER"),
    (["--min-share", "simple=0.5", "--margin", "2"], "--margin 2.0: only with --match-tier"),
    (["--match-tier", "huge"], "--match-tier 'huge': not a tier (simple, medium, complex)"),
]


@pytest.mark.parametrize(("flags", "message"), BAD)
def test_bad_targets_are_refused_by_both_commands(
        flags: list[str], message: str, model: Path, reference: Path, outcome_portfolio: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (model / "metadata.json").read_text()
    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference),
                 *flags]) == 2
    assert f"tier-router: error: {message}" in capsys.readouterr().err
    assert (model / "metadata.json").read_text() == before
    out = tmp_path / "new"
    assert main(["train", "--outcomes", str(reference), "--portfolio", str(outcome_portfolio),
                 "--out", str(out), *flags]) == 2
    assert f"tier-router: error: {message}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--margin", "-1"], "argument --margin: -1: expected a number >= 0"),
    (["--margin", "nan"], "argument --margin: nan: expected a number >= 0"),
    (["--margin", "wide"], "argument --margin: not a number: 'wide'"),
    (["--objective", "fast"], "argument --objective: invalid choice: 'fast'"),
])
def test_bad_values_stop_at_the_parser(flags: list[str], message: str, model: Path,
                                       reference: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "--model", str(model), "--outcomes", str(reference),
              "--match-tier", "medium", *flags])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_calibrate_needs_a_target(model: Path, reference: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--model", str(model), "--outcomes", str(reference)]) == 2
    assert ("calibrate --outcomes needs a target: --max-share TIER=SHARE, --min-share "
            "TIER=SHARE and/or --match-tier TIER") in capsys.readouterr().err


def test_the_classifier_path_refuses_outcome_targets(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    classifier = tmp_path / "classifier"
    shutil.copytree(bundled_model_dir(), classifier)
    before = (classifier / "metadata.json").read_text()
    data = write(tmp_path / "ref.jsonl", [{"prompt": "Translate 'cat' into French."}])
    assert main(["calibrate", "--model", str(classifier), "--data", str(data), "--max-share",
                 "complex=0.3", "--min-share", "simple=0.5", "--margin", "1"]) == 2
    assert ("tier-router: error: --min-share, --margin: only for outcome models (calibrate "
            "--outcomes FILE); the classifier's calibrate does not take them"
            ) in capsys.readouterr().err
    assert (classifier / "metadata.json").read_text() == before
    out = tmp_path / "out"
    assert main(["train", "--data", str(data), "--out", str(out), "--objective", "cost"]) == 2
    assert ("tier-router: error: --objective: only for outcome models (train --outcomes FILE)"
            in capsys.readouterr().err)
    assert not out.exists()
