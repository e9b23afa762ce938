"""Training data as a new user brings it: folders, other delimiters, stray bytes, extra
fields, few rows, and adding rows to the bundled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tier_router_training.train as train_module
from classifier_service.cli import main
from classifier_service.errors import DataError
from classifier_service.routing.artifact import load_artifact
from tests.conftest import write_jsonl
from tests.support.rows import small_rows
from tier_router_training.dataset import LoadReport, load_examples, load_prompts
from tier_router_training.train import train


def test_a_folder_is_read_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", [{"prompt": "from jsonl", "tier": "simple"}])
    (folder / "a.csv").write_text("prompt,tier\nfrom csv,medium\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not data", encoding="utf-8")
    examples = load_examples([folder])
    assert [(e.prompt, e.tier) for e in examples] == [("from csv", "medium"),
                                                      ("from jsonl", "simple")]
    assert load_prompts([folder]) == ["from csv", "from jsonl"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no \*.jsonl or \*.csv files"):
        load_examples([empty])


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_the_delimiter_is_taken_from_the_header(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"prompt{delimiter}tier\nhello, world{delimiter}simple\n"
                    f"why; how{delimiter}medium\n".replace(f"hello, world{delimiter}",
                                                           f'"hello, world"{delimiter}')
                    .replace(f"why; how{delimiter}", f'"why; how"{delimiter}'),
                    encoding="utf-8")
    examples = load_examples([path])
    assert [(e.prompt, e.tier) for e in examples] == [("hello, world", "simple"),
                                                      ("why; how", "medium")]


def test_an_unknown_delimiter_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "pipes.csv"
    path.write_text("prompt|tier\nhello|simple\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_examples([path])
    assert str(info.value) == (f"{path}:line 1: no text in column 'prompt' or 'text'; the "
                               "header has one column 'prompt|tier': is the delimiter '|'?")
    other = tmp_path / "other.csv"
    other.write_text("question,tier\nhello,simple\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"the header has \['question', 'tier'\]"):
        load_examples([other])


def test_a_row_with_more_fields_than_the_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("prompt,tier\nfine,simple\nhello, how are, you,medium\nok,complex\n",
                    encoding="utf-8")
    report = LoadReport()
    examples = load_examples([path], report=report)
    assert [e.prompt for e in examples] == ["fine", "ok"]  # no word became a tier
    assert report.skipped == [f"{path}:line 3: 4 fields, the header has 2 (prompt, tier): "
                              "quote a field that holds the delimiter"]


def test_few_rows_per_tier_get_a_warning_with_the_count_needed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "small.jsonl", small_rows())  # 8 rows per tier
    result = train([data], tmp_path / "model", folds=2)
    assert result.warnings == tuple(
        f"tier '{t}' has 8 rows; at least 50 per tier recommended (42 more)"
        for t in ("complex", "medium", "simple"))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m2"), "--folds", "2",
                 "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "tier-router: warning: tier 'simple' has 8 rows; at least 50 per tier recommended " \
           "(42 more)" in err


def test_data_can_be_added_to_the_bundled_corpus(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in for the bundled corpus keeps the test fast; the wiring is what is tested
    corpus = write_jsonl(tmp_path / "corpus.jsonl", small_rows())
    monkeypatch.setattr(train_module, "bundled_corpus_files", lambda: [corpus])
    mine = write_jsonl(tmp_path / "mine.jsonl", [
        {"prompt": "reverse the word 'stressed'", "tier": "simple"},
        {"prompt": "write a ballad about a lighthouse keeper", "tier": "complex"}])
    alone = train([mine, corpus], tmp_path / "alone", folds=2).artifact
    added = train([mine], tmp_path / "added", folds=2, with_default_corpus=True).artifact
    assert added.metadata["training_data"]["rows"] == 26
    assert added.metadata["training_data"]["sha256"] == alone.metadata["training_data"]["sha256"]
    replaced = train([mine, corpus], tmp_path / "replaced", folds=2)
    assert replaced.artifact.metadata["training_data"]["rows"] == 26
    out = tmp_path / "cli"
    assert main(["train", "--data", str(mine), "--with-default-corpus", "--out", str(out),
                 "--folds", "2", "--quiet"]) == 0
    assert load_artifact(out).metadata["training_data"]["rows"] == 26
    sources = load_artifact(out).metadata["training_data"]["sources"]
    assert sources == ["corpus.jsonl", "mine.jsonl"]
    assert json.loads((out / "metadata.json").read_text())["training_data"]["rows"] == 26
