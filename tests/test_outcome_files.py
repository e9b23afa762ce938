"""Outcome files: several processes writing one outcomes folder at once, and reading JSONL,
CSV and folders of outcome records for training (each kind of bad row, skip and stop)."""

from __future__ import annotations

import json
import multiprocessing
import socket
from pathlib import Path

import pytest

from classifier_service.errors import DataError
from classifier_service.feedback import OutcomeLog, OutcomeRecord
from tests.support.outcomes import TIERS, outcome_lines
from tier_router_training.outcome_records import read_outcomes

# -- several processes at once ------------------------------------------------------------


def _writer(folder: str, worker: int, count: int) -> None:
    log = OutcomeLog(folder, max_file_bytes=20_000)
    for i in range(count):
        log.append([OutcomeRecord(f"worker {worker} prompt {i} " + "x" * 200, "simple",
                                  (i % 3) / 2, request_id=f"{worker}-{i}")], "2026-01-01")


def test_check_escalations_are_stored_as_weak_outcomes(tmp_path: Path) -> None:
    """Issue 13, 6c: the gateway's check writes source=check records; training keeps them."""
    log = OutcomeLog(tmp_path)
    log.append([OutcomeRecord("Write a proof", "simple", 0.0, answer="idk", source="check",
                              endpoint="llama3-8b", request_id="r1")])
    records, _ = read_outcomes([tmp_path], TIERS, on_bad_row="stop")
    assert records == [OutcomeRecord("Write a proof", "simple", 0.0, answer="idk",
                                     endpoint="llama3-8b", request_id="r1", source="check")]
    assert outcome_lines(tmp_path)[0]["ts"].endswith("+00:00")


def test_processes_writing_one_folder_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(tmp_path), w, 150))
                 for w in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    records, report = read_outcomes([tmp_path], TIERS, on_bad_row="stop")
    assert report.skipped == [] and report.rows == 600
    assert sorted(r.request_id or "" for r in records) == sorted(
        f"{w}-{i}" for w in range(4) for i in range(150))
    prefix = f"outcomes-{socket.gethostname()}-"
    pids = {p.name.removeprefix(prefix).split(".")[0] for p in tmp_path.iterdir()}
    assert len(pids) == 4  # one file (and its rotations) per process
    assert len(list(tmp_path.iterdir())) > 4  # 20 kB files: each process rotated


# -- reading files for training -----------------------------------------------------------


GOOD = {"prompt": "p", "tier": "simple", "score": 1}


def test_reading_jsonl_reports_each_bad_row_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    rows = [json.dumps(GOOD).encode(), b"{not json", b'{"prompt": "\xff", "tier": "x"}',
            json.dumps({**GOOD, "score": None}).encode(),
            json.dumps({**GOOD, "score": "x"}).encode(), b'{"prompt": "p", "tier": '
            b'"simple", "score": Infinity}', json.dumps({**GOOD, "score": 3}).encode(),
            json.dumps({**GOOD, "tier": "galaxy"}).encode(),
            json.dumps({**GOOD, "prompt": ""}).encode(),
            json.dumps({**GOOD, "source": "oracle"}).encode(), b"[1, 2]",
            json.dumps({**GOOD, "source": "check", "score": 0}).encode()]
    path.write_bytes(b"\n".join(rows) + b"\n" + b'{"prompt": "torn')
    records, report = read_outcomes([path], TIERS)
    assert records == [OutcomeRecord("p", "simple", 1.0),
                       OutcomeRecord("p", "simple", 0.0, source="check")]
    where = [s.split(": ", 1)[0] for s in report.skipped]
    assert where == [f"{path}:line {n}" for n in (13, *range(2, 12))]  # the torn line first
    for needle in ("torn last line", "invalid JSON", "not UTF-8", "score: missing",
                   "not a number", "finite", "outside 0-1", "unknown tier 'galaxy'",
                   "prompt: missing or empty", "unknown source 'oracle'", "an object per row"):
        assert any(needle in s for s in report.skipped), needle
    assert report.rows == 12 and report.kept == 2
    with pytest.raises(DataError, match=rf"{path}:line 2: invalid JSON"):
        read_outcomes([path], TIERS, on_bad_row="stop")


def test_a_torn_last_line_never_stops_reading(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"prompt": "half', encoding="utf-8")
    records, report = read_outcomes([path], TIERS, on_bad_row="stop")
    assert len(records) == 1 and "torn last line" in report.skipped[0]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_reading_csv_sniffs_the_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "o.csv"
    lines = [["prompt", "tier", "score", "answer", "avg_logprob", "source"],
             ["Sum 2 and 3", "simple", "1", "5", "-0.5", ""],
             ["Write a saga", "complex", "0.5", "", "", "judge"],
             ["Bad", "simple", "1.5", "", "", ""],
             ["", "simple", "1", "", "", ""]]
    path.write_text("\n".join(delimiter.join(cells) for cells in lines) + "\n",
                    encoding="utf-8")
    records, report = read_outcomes([path], TIERS)
    assert records == [OutcomeRecord("Sum 2 and 3", "simple", 1.0, answer="5",
                                     avg_logprob=-0.5),
                       OutcomeRecord("Write a saga", "complex", 0.5, source="judge")]
    assert [s.split(": ", 1)[0] for s in report.skipped] == [f"{path}:line 4",
                                                             f"{path}:line 5"]
    with pytest.raises(DataError, match=rf"{path}:line 4: score"):
        read_outcomes([path], TIERS, on_bad_row="stop")


def test_a_csv_row_that_is_not_utf8_is_skipped_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(b"prompt,tier,score\nok,simple,1\n\xe9t\xe9,simple,1\nfine,simple,0\n")
    records, report = read_outcomes([path], TIERS)
    assert [r.prompt for r in records] == ["ok", "fine"]
    assert report.skipped == [f"{path}:line 3: not UTF-8 text (invalid bytes); save the file "
                              "as UTF-8"]
    with pytest.raises(DataError, match=r"line 3: not UTF-8"):
        read_outcomes([path], TIERS, on_bad_row="stop")


def test_reading_a_folder_takes_its_jsonl_and_csv_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(json.dumps({**GOOD, "prompt": "from b"}) + "\n")
    (tmp_path / "a.csv").write_text("prompt;tier;score\nfrom a;medium;0\n")
    (tmp_path / "notes.txt").write_text("not read")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jsonl").write_text(json.dumps(GOOD) + "\n")
    records, _ = read_outcomes([tmp_path], TIERS)
    assert [r.prompt for r in records] == ["from a", "from b"]
    with pytest.raises(DataError, match="no usable outcome records"):
        read_outcomes([tmp_path / "sub" / "c.jsonl"], ["medium"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*\.jsonl or \*\.csv"):
        read_outcomes([tmp_path / "empty"], TIERS)
    with pytest.raises(DataError, match="file not found"):
        read_outcomes([tmp_path / "missing.jsonl"], TIERS)
