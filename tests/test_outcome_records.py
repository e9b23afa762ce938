"""Outcome records: the record, POST /v1/feedback and its batch, and the log's limits (rate,
bytes, rotation, readiness). Files and several writers: ``test_outcome_files.py``."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import build_parser
from classifier_service.feedback import OutcomeError, OutcomeRecord, read_records
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings, default_state_dir
from tests.support.outcomes import TIERS, outcome_lines

LOOPBACK = ("127.0.0.1", 50000)


def make_client(tmp_path: Path, runtime: Runtime, **settings: Any) -> TestClient:
    options: dict[str, Any] = {"feedback_log": tmp_path / "feedback.jsonl",
                               "outcomes_dir": tmp_path / "outcomes", **settings}
    return TestClient(create_app(Settings(**options), runtime=runtime), client=LOOPBACK)


@pytest.fixture
def client(tmp_path: Path, runtime: Runtime) -> Iterator[TestClient]:
    with make_client(tmp_path, runtime) as c:
        yield c


# -- the record ---------------------------------------------------------------------------


def test_a_record_round_trips_through_json() -> None:
    record = OutcomeRecord("Sum 2 and 3", "simple", 1.0, answer="5", finish_reason="stop",
                           avg_logprob=-0.2, category="math", endpoint="llama3-8b",
                           request_id="r1", source="judge")
    data = record.to_json()
    assert data["score"] == 1.0 and data["source"] == "judge"
    assert OutcomeRecord.from_json(json.loads(json.dumps({"ts": "t", **data})), TIERS) == record
    # unset optional fields are left out; numbers as text (CSV, Dify) are numbers
    minimal = OutcomeRecord.from_json({"prompt": "p", "tier": "medium", "score": "0.5",
                                       "answer": "", "avg_logprob": None, "source": ""})
    assert minimal == OutcomeRecord("p", "medium", 0.5)
    assert minimal.to_json() == {"prompt": "p", "tier": "medium", "score": 0.5,
                                 "source": "user"}


@pytest.mark.parametrize(("row", "field", "needle"), [
    ({"tier": "simple", "score": 1}, "prompt", "missing or empty"),
    ({"prompt": "  ", "tier": "simple", "score": 1}, "prompt", "missing or empty"),
    ({"prompt": "p", "score": 1}, "tier", "missing"),
    ({"prompt": "p", "tier": "galaxy", "score": 1}, "tier", "unknown tier 'galaxy'"),
    ({"prompt": "p", "tier": "simple"}, "score", "missing"),
    ({"prompt": "p", "tier": "simple", "score": "high"}, "score", "not a number"),
    ({"prompt": "p", "tier": "simple", "score": True}, "score", "must be a number"),
    ({"prompt": "p", "tier": "simple", "score": float("nan")}, "score", "finite"),
    ({"prompt": "p", "tier": "simple", "score": "inf"}, "score", "finite"),
    ({"prompt": "p", "tier": "simple", "score": 1.2}, "score", "outside 0-1"),
    ({"prompt": "p", "tier": "simple", "score": -0.1}, "score", "outside 0-1"),
    ({"prompt": "p", "tier": "simple", "score": 1, "source": "oracle"}, "source",
     "unknown source 'oracle'"),
    ({"prompt": "p", "tier": "simple", "score": 1, "answer": 7}, "answer", "a string"),
])
def test_a_bad_record_names_its_field(row: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(OutcomeError, match=needle) as caught:
        OutcomeRecord.from_json(row, TIERS)
    assert caught.value.field == field


# -- over HTTP ----------------------------------------------------------------------------


def test_an_outcome_record_is_written_to_this_process_file(client: TestClient,
                                                           tmp_path: Path) -> None:
    answer = client.post("/v1/feedback", json={
        "prompt": "Summarise this memo", "tier": "medium", "score": "0.5", "answer": "It says…",
        "finish_reason": "stop", "avg_logprob": "-0.31", "category": "", "endpoint": None,
        "source": "judge"})
    assert answer.status_code == 200, answer.text
    generated = answer.json()["request_id"]
    assert answer.json()["status"] == "recorded" and len(generated) == 32
    given = client.post("/v1/feedback", json={"prompt": "p", "tier": "simple", "score": 0,
                                              "request_id": "abc"})
    assert given.json()["request_id"] == "abc"
    files = list((tmp_path / "outcomes").iterdir())
    host = socket.gethostname()
    assert [f.name for f in files] == [f"outcomes-{host}-{os.getpid()}.jsonl"]
    first, second = outcome_lines(tmp_path / "outcomes")
    assert first["ts"].endswith("+00:00")
    assert {k: v for k, v in first.items() if k != "ts"} == {
        "prompt": "Summarise this memo", "tier": "medium", "score": 0.5, "answer": "It says…",
        "finish_reason": "stop", "avg_logprob": -0.31, "request_id": generated,
        "source": "judge"}
    assert second["request_id"] == "abc" and second["source"] == "user"
    assert not (tmp_path / "feedback.jsonl").exists()  # the older form's log is apart


def test_the_feedback_form_still_goes_to_the_feedback_log(client: TestClient,
                                                          tmp_path: Path) -> None:
    ok = client.post("/v1/feedback", json={"request_id": "r1", "final_tier": "complex",
                                           "tier_used": "simple", "escalated": True})
    assert ok.json() == {"status": "recorded", "request_id": "r1"}
    records, _ = read_records(tmp_path / "feedback.jsonl")
    assert records[0][1]["final_tier"] == "complex"
    assert not (tmp_path / "outcomes").exists()


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"prompt": "p", "tier": "simple", "score": 1.5}, 422, "outside 0-1"),
    ({"prompt": "p", "tier": "simple", "score": "1e9"}, 422, "outside 0-1"),
    ({"prompt": "p", "tier": "simple", "score": "lots"}, 422, "not a number"),
    ({"prompt": "p", "tier": "simple", "score": True}, 422, "score"),
    ({"prompt": "p", "tier": "galaxy", "score": 1}, 422, "unknown tier 'galaxy'"),
    ({"prompt": "", "tier": "simple", "score": 1}, 422, "prompt"),
    ({"tier": "simple", "score": 1}, 422, "prompt"),
    ({"prompt": "p", "tier": "simple"}, 422, "score"),
    ({"prompt": "p", "score": 1}, 422, "tier"),
    ({"prompt": "p", "tier": "simple", "score": 1, "source": "oracle"}, 422, "source"),
    ({"prompt": "p", "tier": "simple", "score": 1, "avg_logprob": "x"}, 422, "avg_logprob"),
    ({"prompt": "x" * 64_001, "tier": "simple", "score": 1}, 413, "max_prompt_chars"),
    ({"prompt": "p", "tier": "simple", "score": 1, "answer": "x" * 64_001}, 413, "answer"),
])
def test_a_bad_outcome_record_is_a_clear_4xx(client: TestClient, tmp_path: Path,
                                             body: dict[str, Any], status: int,
                                             needle: str) -> None:
    answer = client.post("/v1/feedback", json=body)
    assert answer.status_code == status, answer.text
    assert needle in answer.text
    assert not (tmp_path / "outcomes").exists()


def test_a_non_finite_score_is_refused(client: TestClient) -> None:
    answer = client.post("/v1/feedback", content=b'{"prompt": "p", "tier": "simple", '
                         b'"score": NaN}', headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500 and "score" in answer.text


@pytest.mark.parametrize("body", [
    b'{"prompt": "\\ud800", "tier": "simple", "score": 1}',
    b'{"prompt": "p", "tier": "simple", "score": 1, "answer": "a\\udfff"}',
    b'{"request_id": "r", "final_tier": "simple", "prompt": "\\ud800"}',
])
def test_a_lone_surrogate_is_a_422_not_a_500(client: TestClient, tmp_path: Path,
                                            body: bytes) -> None:
    answer = client.post("/v1/feedback", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert "lone surrogate" in answer.text
    assert not (tmp_path / "outcomes").exists()


def test_the_batch_records_the_good_and_answers_each_bad(client: TestClient,
                                                        tmp_path: Path) -> None:
    answer = client.post("/v1/feedback/batch", json={"records": [
        {"prompt": "a", "tier": "simple", "score": 1},
        {"prompt": "b", "tier": "simple", "score": 2},
        "not an object",
        {"request_id": "r9", "label": "medium"},
        {"prompt": "c", "tier": "complex", "score": "0", "source": "check"},
    ]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r.get("status") for r in results] == ["recorded", None, None, "recorded",
                                                  "recorded"]
    assert results[1]["error"]["status"] == 422 and "outside 0-1" in json.dumps(results[1])
    assert results[2]["error"]["detail"][0]["loc"] == ["body", "records", 2]
    assert results[3]["request_id"] == "r9"
    rows = outcome_lines(tmp_path / "outcomes")
    assert [(r["prompt"], r["score"], r["source"]) for r in rows] == [
        ("a", 1.0, "user"), ("c", 0.0, "check")]
    assert [r["request_id"] for r in rows] == [results[0]["request_id"],
                                               results[4]["request_id"]]
    assert read_records(tmp_path / "feedback.jsonl")[0][0][1]["label"] == "medium"


def test_a_batch_over_max_batch_is_413(client: TestClient) -> None:
    record = {"prompt": "a", "tier": "simple", "score": 1}
    answer = client.post("/v1/feedback/batch", json={"records": [record] * 257})
    assert answer.status_code == 413 and "policy.max_batch" in answer.json()["detail"]


def test_the_openapi_document_states_both_shapes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["components"]["schemas"]["FeedbackRequest"]["properties"]
    assert body["tier"]["enum"] == [*TIERS, "", None]
    assert body["score"]["type"] == "number" and body["prompt"]["maxLength"] == 64_000
    assert all(p.get("type") in ("string", "number", "boolean") for p in body.values())
    batch = doc["components"]["schemas"]["FeedbackBatchRequest"]["properties"]["records"]
    assert batch["maxItems"] == 256
    described = doc["paths"]["/v1/feedback"]["post"]
    assert "Outcome record" in described["description"]
    assert {"429", "503", "507"} <= set(described["responses"])


# -- limits -------------------------------------------------------------------------------


def test_the_rate_limit_is_per_key_with_retry_after(tmp_path: Path, runtime: Runtime) -> None:
    with make_client(tmp_path, runtime, api_keys="k1,k2", feedback_rate=0.5,
                     feedback_burst=3) as c:
        record = {"prompt": "p", "tier": "simple", "score": 1}
        one = {"authorization": "Bearer k1"}
        assert [c.post("/v1/feedback", json=record, headers=one).status_code
                for _ in range(3)] == [200, 200, 200]
        limited = c.post("/v1/feedback", json=record, headers=one)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "TIER_ROUTER_FEEDBACK_RATE" in limited.json()["detail"]
        # another key has its own bucket; a batch counts each record
        two = {"authorization": "Bearer k2"}
        assert c.post("/v1/feedback/batch", json={"records": [record] * 2},
                      headers=two).status_code == 200
        assert c.post("/v1/feedback/batch", json={"records": [record] * 2},
                      headers=two).status_code == 429
        too_many = c.post("/v1/feedback/batch", json={"records": [record] * 4}, headers=two)
        assert too_many.status_code == 429 and "FEEDBACK_BURST" in too_many.json()["detail"]
    assert len(outcome_lines(tmp_path / "outcomes")) == 5


def test_a_record_over_the_byte_limit_is_413(tmp_path: Path, runtime: Runtime) -> None:
    with make_client(tmp_path, runtime, feedback_max_record_bytes=1000) as c:
        answer = c.post("/v1/feedback", json={"prompt": "é" * 600, "tier": "simple",
                                              "score": 1})
        assert answer.status_code == 413
        assert "TIER_ROUTER_FEEDBACK_MAX_RECORD_BYTES" in answer.json()["detail"]


def test_a_full_outcomes_file_rotates_and_a_full_feedback_log_is_507(
        tmp_path: Path, runtime: Runtime) -> None:
    with make_client(tmp_path, runtime, outcomes_max_file_bytes=400,
                     feedback_log_max_bytes=300) as c:
        for i in range(6):
            assert c.post("/v1/feedback", json={"prompt": f"prompt {i}", "tier": "simple",
                                                "score": 1}).status_code == 200
        codes = [c.post("/v1/feedback", json={"request_id": f"r{i}", "label": "simple"}
                        ).status_code for i in range(4)]
        full = c.post("/v1/feedback", json={"request_id": "last", "label": "simple"})
    files = sorted((tmp_path / "outcomes").iterdir())
    assert len(files) >= 3 and all(f.stat().st_size <= 400 for f in files)
    assert files[1].name.endswith(".part0001.jsonl")
    assert [r["prompt"] for r in outcome_lines(tmp_path / "outcomes")] == [  # in order
        f"prompt {i}" for i in range(6)]
    assert codes[0] == 200 and 507 in codes
    assert full.status_code == 507 and "TIER_ROUTER_FEEDBACK_LOG_MAX_BYTES" in full.text
    assert (tmp_path / "feedback.jsonl").stat().st_size <= 300


def test_an_unwritable_outcomes_dir_fails_readiness_and_answers_503(
        tmp_path: Path, runtime: Runtime) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with make_client(tmp_path, runtime, outcomes_dir=blocker / "outcomes") as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert str(blocker / "outcomes") in ready.json()["detail"]
        assert "Not a directory" in ready.json()["detail"]
        answer = c.post("/v1/feedback", json={"prompt": "p", "tier": "simple", "score": 1})
        assert answer.status_code == 503
        assert str(blocker / "outcomes") in answer.json()["detail"]
        assert "Not a directory" in answer.json()["detail"]


def test_an_unwritable_feedback_log_fails_readiness(tmp_path: Path, runtime: Runtime) -> None:
    (tmp_path / "log-dir").mkdir()
    with make_client(tmp_path, runtime, feedback_log=tmp_path / "log-dir") as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and str(tmp_path / "log-dir") in ready.text
        answer = c.post("/v1/feedback", json={"request_id": "r", "label": "simple"})
        assert answer.status_code == 503 and "feedback log" in answer.json()["detail"]


def test_defaults_live_under_the_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings()
    assert settings.outcomes_dir == tmp_path / "state" / "tier-router" / "outcomes"
    assert settings.feedback_log == tmp_path / "state" / "tier-router" / "feedback.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "tier-router"
    monkeypatch.setenv("TIER_ROUTER_OUTCOMES_DIR", str(tmp_path / "elsewhere"))
    assert Settings().outcomes_dir == tmp_path / "elsewhere"
    monkeypatch.setenv("COLUMNS", "300")  # argparse wraps at hyphens too
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--outcomes-dir" in text and "~/.local/state/tier-router/outcomes" in text
