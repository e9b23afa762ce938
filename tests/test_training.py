"""Training: reading labelled data, fitting, and rebuilding the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier_service.cli import main
from classifier_service.errors import DataError
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.routing.classifier import TierClassifier
from tests.conftest import write_jsonl
from tests.support.rows import small_rows
from tier_router_training.dataset import (
    Columns,
    Example,
    LoadReport,
    bundled_corpus_files,
    data_hash,
    load_category_map,
    load_examples,
)
from tier_router_training.feedback import load_feedback_examples
from tier_router_training.pipeline import Recipe, fit_bundle
from tier_router_training.train import train


def test_load_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "a.jsonl", [{"text": "hello", "tier": "simple"},
                                              {"prompt": "why", "tier": "medium", "category": "q"}])
    csv = tmp_path / "b.csv"
    csv.write_text('prompt,tier\n"a, b",complex\nHELLO,simple\n', encoding="utf-8")
    report = LoadReport()
    examples = load_examples([jsonl, csv], report=report)
    assert [(e.prompt, e.tier, e.category) for e in examples] == [
        ("hello", "simple", None), ("why", "medium", "q"), ("a, b", "complex", None)]
    assert report.duplicates == 1 and report.rows == 4 and report.kept == 3


def test_custom_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"q": "hi", "level": "low", "kind": "greet"}])
    examples = load_examples([path], Columns(text=("q",), label="level", category="kind"))
    assert examples[0].prompt == "hi" and examples[0].tier == "low"
    assert examples[0].category == "greet"


def test_bad_rows_are_skipped_with_a_report_or_stop(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "tier": "simple"}\n{broken\n[1, 2]\n'
                    '{"prompt": "  ", "tier": "simple"}\n{"prompt": "no label"}\n',
                    encoding="utf-8")
    report = LoadReport()
    assert len(load_examples([path], report=report)) == 1
    assert [s.split(": ", 1)[0] for s in report.skipped] == [
        f"{path}:line 2", f"{path}:line 3", f"{path}:line 4", f"{path}:line 5"]
    assert "invalid JSON" in report.skipped[0]
    assert "no label in column 'tier'" in report.skipped[3]
    with pytest.raises(DataError, match=r"bad.jsonl:line 2: invalid JSON"):
        load_examples([path], strict=True)


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_examples([tmp_path / "missing.jsonl"])
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported file type"):
        load_examples([tmp_path / "x.parquet"])
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no usable labelled rows"):
        load_examples([tmp_path / "empty.jsonl"])


def test_data_hash_ignores_order() -> None:
    rows = load_examples(bundled_corpus_files()[:1])
    assert data_hash(rows) == data_hash(list(reversed(rows)))


def test_train_writes_a_loadable_model(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", small_rows())
    result = train([data], tmp_path / "m", folds=3)
    artifact = load_artifact(tmp_path / "m")
    assert artifact.tier_labels == ["simple", "medium", "complex"]
    assert artifact.metadata["metrics"]["cv_folds"] == 3
    assert artifact.metadata["training_data"]["rows"] == 24
    clf = TierClassifier(artifact)
    assert clf.score("write a poem about the moon").top_tier == "complex"
    assert result.tier_counts == {"simple": 8, "medium": 8, "complex": 8}


def test_train_is_reproducible(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", small_rows())
    first = train([data], tmp_path / "one", folds=2).artifact
    second = train([data], tmp_path / "two", folds=2).artifact
    assert first.metadata["artifact"]["sha256"] == second.metadata["artifact"]["sha256"]


def test_custom_tier_order(tmp_path: Path) -> None:
    rows = [{**r, "tier": {"simple": "t1", "medium": "t2", "complex": "t4"}[str(r["tier"])]}
            for r in small_rows()]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match="--tiers"):
        train([data], tmp_path / "m")
    # rows whose label is outside the given order are skipped with a report, or stop
    partial = train([data], tmp_path / "m", tier_order=["t1", "t2"], folds=2)
    assert partial.artifact.tier_labels == ["t1", "t2"]
    assert len(partial.report.skipped) == 8
    assert "d.jsonl:line 17: unknown tier 't4' (tiers: t1, t2)" in partial.report.skipped[0]
    with pytest.raises(DataError, match=r"line 17: unknown tier 't4'"):
        train([data], tmp_path / "m", tier_order=["t1", "t2"], strict=True)
    artifact = train([data], tmp_path / "m", tier_order=["t1", "t2", "t3", "t4"], folds=2).artifact
    assert artifact.tier_labels == ["t1", "t2", "t4"]


def test_train_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text("text,tier\n" + "".join(f'"{r["prompt"]}",{r["tier"]}\n' for r in small_rows())
                   + '"",simple\n', encoding="utf-8")
    out = tmp_path / "model"
    assert main(["train", "--data", str(csv), "--out", str(out), "--folds", "2"]) == 0
    captured = capsys.readouterr()
    assert "kept 24" in captured.out and "skipped 1" in captured.out
    assert f"wrote {out}" in captured.out
    assert "no text in column" in captured.err
    assert load_artifact(out).metadata["labels"]["category"] is None
    assert main(["train", "--data", str(csv), "--out", str(out), "--on-bad-row", "stop"]) == 2
    assert "line 26" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_train_rebuilds_the_shipped_model(tmp_path: Path) -> None:
    shipped = load_artifact(bundled_model_dir())
    rebuilt = train(None, tmp_path / "model").artifact
    assert rebuilt.metadata["training_data"] == shipped.metadata["training_data"]
    assert rebuilt.metadata["thresholds"] == shipped.metadata["thresholds"]
    assert rebuilt.metadata["metrics"] == shipped.metadata["metrics"]
    prompts = [e.prompt for e in load_examples(bundled_corpus_files())][::7]
    a, b = TierClassifier(shipped), TierClassifier(rebuilt)
    for prompt in prompts:
        np.testing.assert_allclose(list(a.score(prompt).tiers.values()),
                                   list(b.score(prompt).tiers.values()), atol=1e-6)


def test_rare_features_are_dropped_after_fitting() -> None:
    rows = small_rows()
    examples = load_examples_from_rows([*rows, {"prompt": "zyzzyva frobnicate", "tier": "simple"}])
    bundle = fit_bundle(examples, Recipe(keep_min_df=2))
    vocab = bundle["vectorizer"].vocabulary_
    assert "zyzzyva" not in vocab  # seen in one prompt only
    assert "write" in vocab and "write a" in vocab
    for _, est in bundle["heads"]["tier"]:
        weights = getattr(est, "coef_", None)
        if weights is None:
            weights = est.feature_log_prob_
        assert weights.shape[1] == len(vocab)
    kept_all = fit_bundle(examples, Recipe(keep_min_df=1))
    assert "zyzzyva" in kept_all["vectorizer"].vocabulary_


def load_examples_from_rows(rows: list[dict[str, object]]) -> list[Example]:
    return [Example(str(r["prompt"]), str(r["tier"])) for r in rows]


def test_category_map_labels_rows_by_kind(tmp_path: Path) -> None:
    rows = [{"prompt": r["prompt"], "category": str(r["tier"]).upper()} for r in small_rows()]
    data = write_jsonl(tmp_path / "kinds.jsonl", rows)
    cmap = tmp_path / "map.yaml"
    cmap.write_text("SIMPLE: simple\nMEDIUM: medium\nCOMPLEX: complex\n", encoding="utf-8")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"),
                 "--category-map", str(cmap), "--folds", "2", "--quiet"]) == 0
    artifact = load_artifact(tmp_path / "m")
    assert artifact.tier_labels == ["simple", "medium", "complex"]
    assert artifact.metadata["labels"]["category"] == ["COMPLEX", "MEDIUM", "SIMPLE"]
    partial = tmp_path / "partial.yaml"
    partial.write_text("SIMPLE: simple\nMEDIUM: medium\n", encoding="utf-8")
    report = LoadReport()
    load_examples([data], report=report, category_map=load_category_map(partial))
    assert "the category map has no tier for kind 'COMPLEX'" in report.skipped[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match="kind -> tier"):
        load_category_map(bad)


def test_conflicting_duplicates_and_thin_tiers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "why is the sea salty", "tier": "medium"},
        {"prompt": "Why is the sea salty", "tier": "complex"},
        {"prompt": "why is the sea salty", "tier": "medium"},
        {"prompt": "write a poem", "tier": "complex"},
        {"prompt": "what is rain", "tier": "medium"},
    ])
    report = LoadReport()
    examples = load_examples([path], report=report, min_per_tier=2)
    assert [e.prompt for e in examples] == ["why is the sea salty", "what is rain"]
    assert report.duplicates == 1
    assert (f"{path}:line 2: the same prompt is labelled 'medium' at {path}:line 1 and "
            "'complex' here") in report.skipped
    assert any("tier 'complex' has 1 example(s); at least 2" in s for s in report.skipped)
    with pytest.raises(DataError, match="line 2: the same prompt"):
        load_examples([path], strict=True)


def test_wrong_encoding_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "ok", "tier": "simple"}\n'
                     b'{"prompt": "caf\xe9", "tier": "simple"}\n')
    report = LoadReport()
    load_examples([path], report=report)
    assert report.skipped == [f"{path}:line 2: not UTF-8 text (invalid continuation byte)"]
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b"prompt,tier\nok,simple\ncaf\xe9,simple\nfine,medium\n")
    report = LoadReport()
    kept = load_examples([csv], report=report)  # skipped like the JSONL line, not a stop
    assert [e.prompt for e in kept] == ["ok", "fine"]
    assert report.skipped == [f"{csv}:line 3: not UTF-8 text (invalid bytes); save the file "
                              "as UTF-8"]
    with pytest.raises(DataError, match=r"latin1.csv:line 3: not UTF-8"):
        load_examples([csv], strict=True)


def test_feedback_log_becomes_training_rows(tmp_path: Path) -> None:
    log = tmp_path / "feedback.jsonl"
    log.write_text(
        json.dumps({"request_id": "a", "prompt": "tell me a story about a fox",
                    "tier_used": "medium", "escalated": True, "final_tier": "complex"}) + "\n"
        + json.dumps({"request_id": "b", "tier_used": "simple", "final_tier": "simple"}) + "\n"
        + json.dumps({"request_id": "c", "prompt": "what is 2+2", "label": "simple",
                      "final_tier": "medium"}) + "\n"
        + json.dumps({"request_id": "d", "prompt": "odd", "final_tier": "mega"}) + "\n"
        + '{"request_id": "e", "prompt": "torn',
        encoding="utf-8")
    report = LoadReport()
    examples = load_feedback_examples([log], report, tiers={"simple", "medium", "complex"})
    assert [(e.prompt, e.tier) for e in examples] == [
        ("tell me a story about a fox", "complex"), ("what is 2+2", "simple")]
    assert any("line 5: torn last line" in s for s in report.skipped)
    assert any("line 4: unknown tier 'mega'" in s for s in report.skipped)
    data = write_jsonl(tmp_path / "d.jsonl", small_rows())
    result = train([data], tmp_path / "m", feedback=[log], folds=2)
    assert result.feedback_rows == 2
    assert result.artifact.metadata["training_data"]["rows"] == 26
    assert "feedback.jsonl" in result.artifact.metadata["training_data"]["sources"]


def test_skipped_rows_are_listed_even_when_training_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "why is the sky blue", "tier": "medium"},
        {"prompt": "what is rain", "tier": "medium"},
        {"prompt": "", "tier": "simple"},
    ])
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "line 3: no text" in err
    assert "need at least two distinct tiers" in err
