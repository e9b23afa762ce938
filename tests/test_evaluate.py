"""`tier-router evaluate` and `tier-router calibrate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from classifier_service.cli import main
from classifier_service.errors import DataError
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.runtime import Runtime
from tests.conftest import portfolio_yaml, write_jsonl
from tier_router_training.calibrate import calibrate, calibrated_version, parse_max_share
from tier_router_training.evaluate import evaluate

ROWS = [
    {"prompt": "is this review positive or negative: 'terrible service, never again'",
     "tier": "simple"},
    {"prompt": "convert 12 inches to centimetres", "tier": "simple"},
    {"prompt": "extract the email address: contact jo@example.com for details", "tier": "simple"},
    {"prompt": "why do leaves change colour in autumn", "tier": "medium"},
    {"prompt": "draft a polite email asking my landlord to fix the heating", "tier": "medium"},
    {"prompt": "give me ideas for a rainy weekend with kids", "tier": "medium"},
    {"prompt": "write a sonnet about a lighthouse in a storm", "tier": "complex"},
    {"prompt": "write a short story about a robot who learns to paint", "tier": "complex"},
    {"prompt": "a bat and a ball cost 1.10 in total, the bat costs 1.00 more than the ball. "
               "how much is the ball? reason step by step", "tier": "complex"},
]


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), target)
    return target


def test_evaluate_writes_report_and_plots(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    report = evaluate(bundled_model_dir(), [data], report_dir=tmp_path / "rep")
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    assert set(saved) >= {"accuracy", "macro_f1", "per_tier", "confusion_matrix", "policy"}
    assert saved["confusion_matrix"]["labels"] == ["simple", "medium", "complex"]
    matrix = saved["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == len(ROWS)
    assert saved["per_tier"]["complex"]["support"] == 3
    assert set(saved["per_tier"]["simple"]) == {"precision", "recall", "f1", "support"}
    assert report["accuracy"] >= 0.75  # the default model gets these plain prompts right
    assert abs(sum(saved["policy"]["traffic_share"].values()) - 1) < 1e-3
    for name in ("confusion_matrix.png", "traffic_share.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_cross_validates_the_recipe(tmp_path: Path) -> None:
    rows = [{**r, "prompt": f"{r['prompt']} ({i})"} for i in range(3) for r in ROWS]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    report = evaluate(bundled_model_dir(), [data], cv=3, report_dir=None)
    assert report["mode"].startswith("3-fold")
    assert report["rows"] == 27


def test_evaluate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [*ROWS, {"prompt": "x", "tier": "galactic"}])
    assert main(["evaluate", "--data", str(data), "--report-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and "traffic" in out
    assert main(["evaluate", "--data", str(data), "--on-bad-row", "stop"]) == 2
    assert "line 10: unknown tier 'galactic'" in capsys.readouterr().err


def test_calibrate_caps_the_expensive_share(tmp_path: Path, model_copy: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    before = load_artifact(model_copy).confidence_threshold
    result = calibrate(model_copy, [data], {"complex": 0.12})
    assert result.before["complex"] == pytest.approx(3 / 9, abs=1e-3)
    assert result.shares["complex"] <= 0.12
    meta = load_artifact(model_copy).metadata  # still verifies: checksum untouched
    assert meta["thresholds"]["confidence_threshold"] == result.threshold > before
    assert meta["thresholds"]["source"] == "calibration"
    assert meta["thresholds"]["max_share"] == {"complex": 0.12}
    # it applies to routing, unless the portfolio sets its own threshold
    portfolio = parse_portfolio(portfolio_yaml())
    served = Runtime(portfolio, tmp_path / "p.yaml", load_artifact(model_copy))
    assert served.confidence_threshold == result.threshold
    pinned = Runtime(parse_portfolio(portfolio_yaml(confidence_threshold=0.4)),
                     tmp_path / "p.yaml", load_artifact(model_copy))
    assert pinned.confidence_threshold == 0.4


def test_calibrate_refuses_impossible_caps(tmp_path: Path, model_copy: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(DataError, match="no threshold meets the caps"):
        calibrate(model_copy, [data], {"simple": 0.0, "medium": 0.0})
    with pytest.raises(DataError, match="unknown tier 'giant'"):
        parse_max_share(["giant=0.2"], ["simple", "medium", "complex"])
    with pytest.raises(DataError, match="TIER=SHARE"):
        parse_max_share(["complex"], ["simple", "medium", "complex"])
    with pytest.raises(DataError, match="TIER=SHARE"):
        parse_max_share(["complex=1.5"], ["simple", "medium", "complex"])


def test_calibrate_command(tmp_path: Path, model_copy: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "traffic.jsonl", [{"text": r["prompt"]} for r in ROWS])
    assert main(["calibrate", "--model", str(model_copy), "--data", str(data),
                 "--max-share", "complex=0.2"]) == 0
    assert "written to" in capsys.readouterr().out
    assert load_artifact(model_copy).metadata["thresholds"]["max_share"] == {"complex": 0.2}


def test_calibrate_keeps_the_threshold_when_already_under_the_cap(
        tmp_path: Path, model_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    meta_path = model_copy / "metadata.json"
    before_text = meta_path.read_text(encoding="utf-8")
    before = load_artifact(model_copy)
    result = calibrate(model_copy, [data], {"complex": 1.0})  # any share is under 100%
    assert result.unchanged and result.threshold == before.confidence_threshold > 0.0
    assert "already under the cap; threshold unchanged" in result.message()
    assert meta_path.read_text(encoding="utf-8") == before_text  # nothing written
    assert main(["calibrate", "--model", str(model_copy), "--data", str(data),
                 "--max-share", "complex=1.0", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "already under the cap; threshold unchanged" in captured.out
    assert "written to" not in captured.out and captured.err == ""


def test_calibrate_gives_a_new_model_version_and_renames_the_metadata_over(
        tmp_path: Path, model_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    meta_path = model_copy / "metadata.json"
    old_version = load_artifact(model_copy).model_version
    old_inode = meta_path.stat().st_ino
    assert main(["calibrate", "--model", str(model_copy), "--data", str(data),
                 "--max-share", "complex=0.12"]) == 0
    captured = capsys.readouterr()
    assert "prompts scored" in captured.err  # progress on standard error
    calibrated = load_artifact(model_copy)
    assert calibrated.model_version.startswith(f"{old_version}-cal-")
    assert calibrated.model_version in captured.out
    assert meta_path.stat().st_ino != old_inode  # a new file renamed over, not rewritten
    assert not list(model_copy.glob(".metadata.json.*"))  # no temporary file left behind
    # recalibrating replaces the suffix instead of stacking another
    again = calibrated_version(calibrated.model_version, {"confidence_threshold": 0.9})
    assert again.count("-cal-") == 1 and again.startswith(f"{old_version}-cal-")
    assert again != calibrated.model_version


def test_evaluate_cv_shows_progress_unless_quiet(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{**r, "prompt": f"{r['prompt']} ({i})"} for i in range(3) for r in ROWS]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    assert main(["evaluate", "--data", str(data), "--cv", "3", "--report-dir",
                 str(tmp_path / "r")]) == 0
    assert "3/3 cross-validation folds" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--cv", "3", "--quiet", "--report-dir",
                 str(tmp_path / "r")]) == 0
    assert capsys.readouterr().err == ""
