"""Judge sampling in the gateway, the check's escalations as records, and ``tier-router label``.

The service runs over real uvicorn before the wire doubles: a fake Ollama (tiers simple and
medium), a fake OpenAI server (complex) and a fake judge (:class:`tests.doubles.FakeJudge`)
that is consistent, position-biased, nonsense or slow as a test sets it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.feedback import read_records
from classifier_service.gateway.verdicts import combine, parse_verdict
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.settings import Settings
from tests.doubles import Double, FakeJudge, Script, fake_judge, fake_ollama, fake_openai, running
from tests.support.metrics import value

PROMPT = "Is this review positive or negative? 'Great phone, fast delivery.'"


@dataclass
class JudgeStack:
    url: str
    app: FastAPI
    ollama: Double
    judge: FakeJudge
    outcomes: Path
    shutdown_s: float = 0.0

    def ask(self, prompt: str = PROMPT, **body: Any) -> httpx.Response:
        reply = httpx.post(f"{self.url}/v1/chat/completions", timeout=30, json={
            "model": "simple", "messages": [{"role": "user", "content": prompt}], **body})
        assert reply.status_code == 200, reply.text
        return reply

    def judged(self, outcome: str) -> float:
        return value(httpx.get(f"{self.url}/metrics").text, "tier_router_judge_total",
                     outcome=outcome)

    def records(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for path in sorted(self.outcomes.glob("*.jsonl")):
            records, problems = read_records(path)
            assert problems == []
            rows.extend(r for _, r in records)
        return rows


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def portfolio_text(ollama: str, openai: str, judge: str, judge_section: dict[str, Any] | None,
                   record_escalations: bool = False) -> str:
    text = f"""
version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: small, api: ollama, base_url: "{ollama}", model: small}}
  - name: medium
    endpoints:
      - {{name: mid, api: ollama, base_url: "{ollama}", model: mid}}
  - name: complex
    endpoints:
      - {{name: big, api: openai, base_url: "{openai}/v1", model: big}}
specialists:
  - {{name: judge-model, api: openai, base_url: "{judge}/v1", model: judge-7b, tier: complex}}
policy: {{backend_timeout_s: 5, record_escalations: {json.dumps(record_escalations)}}}
"""
    if judge_section is not None:
        text += f"judge: {json.dumps({'endpoint': 'judge-model', **judge_section})}\n"
    return text


@contextmanager
def judge_stack(tmp_path: Path, judge_section: dict[str, Any] | None,
                record_escalations: bool = False, log_prompts: bool = False
                ) -> Iterator[JudgeStack]:
    ollama, openai, judge = fake_ollama(), fake_openai(), fake_judge()
    ollama.scripts["small"] = Script(content="Positive")
    ollama.scripts["mid"] = Script(content="Positive: the reviewer praises phone and delivery.")
    with running(ollama.app) as o_url, running(openai.app) as a_url, \
            running(judge.app) as j_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio_text(o_url, a_url, j_url, judge_section, record_escalations),
                        encoding="utf-8")
        outcomes = tmp_path / "outcomes"
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                                  outcomes_dir=outcomes, log_prompts=log_prompts))
        with running(app) as url:
            stack = JudgeStack(url, app, ollama, judge, outcomes)
            yield stack
            stopping = time.monotonic()
        stack.shutdown_s = time.monotonic() - stopping


# -- the verdicts --------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "verdict"), [
    ("A", "A"), (" b\n", "B"), ("tie", "tie"), ("Tie.", "tie"), ("A.", "A"),
    ("A or B", None), ("Answer A", None), ("", None), ("AB", None), ("A..", None)])
def test_verdicts_are_parsed_strictly(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize(("first", "second", "score"), [
    ("A", "B", 1.0),    # X preferred in both positions
    ("B", "A", 0.0),    # Y preferred in both
    ("A", "A", 0.5),    # the first position wins each time: bias, not preference
    ("B", "B", 0.5),
    ("tie", "B", 0.5), ("A", "tie", 0.5), ("tie", "tie", 0.5)])
def test_both_orders_must_agree_for_a_win(first: str, second: str, score: float) -> None:
    assert combine(first, second) == score


def test_the_judge_section_is_checked() -> None:
    text = portfolio_text("http://o", "http://a", "http://j", {"sample_rate": 0.5})
    assert parse_portfolio(text).judge_endpoint() is not None
    with pytest.raises(Exception, match=r"judge.endpoint: unknown endpoint 'nobody'"):
        parse_portfolio(text.replace("endpoint\": \"judge-model", "endpoint\": \"nobody"))
    with pytest.raises(Exception, match=r"judge.sample_rate"):
        parse_portfolio(text.replace('"sample_rate": 0.5', '"sample_rate": 1.5'))
    inline = text.replace('"judge-model"', '{"api": "openai", "base_url": "http://j/v1", '
                          '"model": "m"}')
    endpoint = parse_portfolio(inline).judge_endpoint()
    assert endpoint is not None and endpoint.name == "judge" and endpoint.model == "m"


# -- sampling in the gateway ----------------------------------------------------------------


def test_a_sampled_answer_is_judged_in_both_orders(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}) as s:
        s.judge.prefer = "praises"
        reply = s.ask()
        assert reply.json()["choices"][0]["message"]["content"] == "Positive"
        assert reply.headers["x-tier-router-tier"] == "simple"
        wait_for(lambda: s.judged("judged") == 1)
        records = s.records()
    # the tier above answered the same request, and the judge saw both orders
    assert s.ollama.requests[-1]["model"] == "mid"
    assert s.ollama.requests[-1]["messages"][-1]["content"] == PROMPT
    ours, theirs = "Positive", "Positive: the reviewer praises phone and delivery."
    assert sorted(s.judge.pairs()) == sorted([(ours, theirs), (theirs, ours)])
    assert all(r["model"] == "judge-7b" and r["max_tokens"] == 4 for r in s.judge.requests)
    by_tier = {r["tier"]: r for r in records}
    assert set(by_tier) == {"simple", "medium"} and len(records) == 2
    assert by_tier["simple"]["score"] == 0.0 and by_tier["medium"]["score"] == 1.0
    assert by_tier["simple"]["answer"] == ours and by_tier["medium"]["answer"] == theirs
    assert by_tier["simple"]["endpoint"] == "small" and by_tier["medium"]["endpoint"] == "mid"
    assert {r["source"] for r in records} == {"judge"}
    assert {r["prompt"] for r in records} == {PROMPT}
    decision_id = reply.json()["tier_router"]["request_id"]  # the gateway's decision id
    assert by_tier["simple"]["request_id"] == decision_id == by_tier["medium"]["request_id"]


def test_a_position_biased_judge_scores_ties(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}) as s:
        s.judge.mode = "biased"
        s.ask()
        wait_for(lambda: s.judged("judged") == 1)
        assert [r["score"] for r in s.records()] == [0.5, 0.5]


def test_a_nonsense_judge_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}) as s:
        s.judge.mode = "nonsense"
        reply = s.ask()
        assert reply.json()["choices"][0]["message"]["content"] == "Positive"
        wait_for(lambda: s.judged("failed") == 1)
        assert s.records() == [] and s.judged("judged") == 0
    failures = [r for r in caplog.records if getattr(r, "fields", {}).get("event")
                == "judge_failed"]
    assert failures and "neither A, B nor tie" in failures[0].getMessage()
    fields = getattr(failures[0], "fields", {})
    assert PROMPT not in failures[0].getMessage() and "prompt" not in fields
    assert "reply" not in fields and fields["tier"] == "simple"


def test_with_log_prompts_a_failure_log_carries_the_prompt_and_reply(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}, log_prompts=True) as s:
        s.judge.mode = "nonsense"
        s.ask()
        wait_for(lambda: s.judged("failed") == 1)
    (failure,) = [getattr(r, "fields", {}) for r in caplog.records
                  if getattr(r, "fields", {}).get("event") == "judge_failed"]
    assert failure["prompt"] == PROMPT and failure["reply"].startswith("Both answers")


def test_the_ollama_gateway_is_sampled_too(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}) as s:
        s.judge.prefer = "praises"
        reply = httpx.post(f"{s.url}/api/chat", timeout=30, json={
            "model": "simple", "stream": False,
            "messages": [{"role": "user", "content": PROMPT}]})
        assert reply.status_code == 200 and reply.json()["message"]["content"] == "Positive"
        wait_for(lambda: s.judged("judged") == 1)
        assert sorted((r["tier"], r["score"]) for r in s.records()) == [
            ("medium", 1.0), ("simple", 0.0)]


def test_a_hook_that_raises_never_fails_the_client(tmp_path: Path) -> None:
    class Broken:
        def answered(self, *args: object) -> None:
            raise RuntimeError("broken hook")

        def escalated(self, *args: object) -> None:
            raise RuntimeError("broken hook")

    with judge_stack(tmp_path, None) as s:
        s.app.state.gateway.hooks.insert(0, Broken())
        assert s.ask().json()["choices"][0]["message"]["content"] == "Positive"
        s.ollama.scripts["small"] = Script(content="I'm not sure, maybe positive?")
        assert s.ask().headers["x-tier-router-tier"] == "medium"


def test_a_slow_judge_times_out_and_never_delays_the_client(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0, "timeout_s": 3.0}) as s:
        s.judge.delay_s = 6.0
        started = time.monotonic()
        reply = s.ask()
        took = time.monotonic() - started
        assert reply.json()["choices"][0]["message"]["content"] == "Positive"
        assert took < 2.0, took  # neither the judge's 6 s nor its 3 s timeout are in it
        wait_for(lambda: s.judged("failed") == 1)
        assert s.records() == []


def test_the_daily_budget_runs_out_and_resets_at_utc_midnight(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0, "daily_budget": 2,
                                "max_concurrent": 10}) as s:
        for _ in range(4):
            s.ask()
        wait_for(lambda: s.judged("judged") == 2)
        assert s.judged("skipped_budget") == 2
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        s.app.state.judge.clock = lambda: tomorrow
        s.ask()
        wait_for(lambda: s.judged("judged") == 3)
        assert len(s.records()) == 6


def test_over_the_concurrency_cap_samples_are_skipped(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0, "max_concurrent": 1}) as s:
        s.judge.delay_s = 2.0
        for _ in range(3):
            s.ask()
        assert s.judged("skipped_busy") == 2
        wait_for(lambda: s.judged("judged") == 1)
        s.ask()  # the slot is free again
        wait_for(lambda: s.judged("judged") == 2)


def test_no_judge_section_or_rate_zero_samples_nothing(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 0.0}) as s:
        s.ask()
        s.ask(model="mid")
        time.sleep(0.3)
        assert s.judge.requests == [] and s.records() == []


def test_the_top_tier_tools_and_direct_streams_are_not_sampled(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0}) as s:
        s.ask(model="complex")
        s.ask(tools=[{"type": "function", "function": {"name": "lookup", "parameters": {
            "type": "object", "properties": {}}}}])
        with httpx.stream("POST", f"{s.url}/v1/chat/completions", timeout=30, json={
                "model": "simple", "stream": True,
                "messages": [{"role": "user", "content": PROMPT}]}) as streamed:
            assert "Positive" in streamed.read().decode()
        time.sleep(0.3)
        assert s.judge.requests == []
        # a buffered stream is answered through the checked path: it is sampled
        with httpx.stream("POST", f"{s.url}/v1/chat/completions", timeout=30,
                          headers={"x-tier-router-stream": "buffered"}, json={
                              "model": "simple", "stream": True,
                              "messages": [{"role": "user", "content": PROMPT}]}) as streamed:
            streamed.read()
        wait_for(lambda: s.judged("judged") == 1)


def test_shutdown_cancels_judging_in_flight(tmp_path: Path) -> None:
    with judge_stack(tmp_path, {"sample_rate": 1.0, "timeout_s": 30}) as s:
        s.judge.delay_s = 8.0
        s.ask()
        wait_for(lambda: len(s.judge.requests) == 2)
    assert s.shutdown_s < 4.0, s.shutdown_s  # not the judge's 8 s
    assert s.records() == [] and len(s.app.state.background) == 0


# -- the check's escalations as records -----------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_escalations_are_recorded_when_enabled(tmp_path: Path, enabled: bool) -> None:
    with judge_stack(tmp_path, None, record_escalations=enabled) as s:
        s.ollama.scripts["small"] = Script(content="I'm not sure, maybe positive?")
        reply = s.ask()
        assert reply.headers["x-tier-router-tier"] == "medium"
        if not enabled:
            time.sleep(0.3)
            assert s.records() == []
            return
        wait_for(lambda: len(s.records()) == 1)
        (record,) = s.records()
    assert record["source"] == "check" and record["score"] == 0.0
    assert record["tier"] == "simple" and record["endpoint"] == "small"
    assert record["answer"] == "I'm not sure, maybe positive?" and record["prompt"] == PROMPT
    assert record["finish_reason"] == "stop" and record["request_id"]


# -- tier-router label ----------------------------------------------------------------------


@dataclass
class LabelSetup:
    portfolio: Path
    prompts: Path
    out: Path
    judge: FakeJudge
    ollama_url: str


@pytest.fixture
def label_setup(tmp_path: Path) -> Iterator[LabelSetup]:
    ollama, openai, judge = fake_ollama(), fake_openai(), fake_judge()
    ollama.scripts["small"] = Script(content="short")
    ollama.scripts["mid"] = Script(content="a longer, better answer")
    openai.scripts["big"] = Script(content="the best answer of all")
    judge.prefer = "better"
    with running(ollama.app) as o_url, running(openai.app) as a_url, \
            running(judge.app) as j_url:
        portfolio = tmp_path / "portfolio.yaml"
        portfolio.write_text(portfolio_text(o_url, a_url, j_url, None), encoding="utf-8")
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n"
                                   for i in range(4)) + "\n{broken\n", encoding="utf-8")
        yield LabelSetup(portfolio, prompts, tmp_path / "labels.jsonl", judge, o_url)


def label(setup: LabelSetup, *extra: str) -> int:
    return main(["label", "--prompts", str(setup.prompts), "--portfolio", str(setup.portfolio),
                 "--judge", "judge-model", "--out", str(setup.out), "--quiet", *extra])


def test_label_judges_every_neighbouring_pair_and_resumes(
        label_setup: LabelSetup, capsys: pytest.CaptureFixture[str]) -> None:
    # an interrupted run: two prompts done, the others not
    assert label(label_setup, "--limit", "2") == 0
    records, _ = read_records(label_setup.out)
    assert len(records) == 2 * 2 * 2  # 2 prompts x 2 pairs x 2 records
    assert len(label_setup.judge.requests) == 2 * 2 * 2  # 2 prompts x 2 pairs x 2 orders
    out = capsys.readouterr()
    assert "line 6: not JSON, skipped" in out.err
    # a crash mid-write left a torn line; the next run skips the prompts already there
    with label_setup.out.open("a", encoding="utf-8") as f:
        f.write('{"prompt": "Question 2?", "tier": "sim')
    assert label(label_setup, "--concurrency", "3") == 0
    records, problems = read_records(label_setup.out)
    assert len(problems) == 1 and "not a JSON record" in problems[0]  # the torn line
    rows = [r for _, r in records]
    assert len(rows) == 4 * 2 * 2
    assert len(label_setup.judge.requests) == 4 * 2 * 2
    asked = [r["messages"][-1]["content"] for r in label_setup.judge.requests]
    assert sum("Question 0?" in text for text in asked) == 4  # not asked again
    by = {(r["prompt"], r["tier"], r["answer"]): r["score"] for r in rows}
    # the judge prefers the answer that says "better" (medium's), in either position
    assert by[("Question 3?", "simple", "short")] == 0.0
    assert by[("Question 3?", "medium", "a longer, better answer")] == 1.0
    assert by[("Question 3?", "complex", "the best answer of all")] == 0.0
    assert {r["source"] for r in rows} == {"judge"}
    assert "labelled 2 prompts (8 records)" in capsys.readouterr().out
    # all done: a third run asks nobody
    assert label(label_setup) == 0
    assert len(label_setup.judge.requests) == 16


def test_label_a_chosen_pair_from_csv(label_setup: LabelSetup) -> None:
    csv = label_setup.prompts.with_suffix(".csv")
    csv.write_text('id,prompt\n1,"First, a question?"\n2,Second\n3,\n', encoding="utf-8")
    label_setup.prompts = csv
    assert label(label_setup, "--tiers", "complex,simple") == 0
    rows = [r for _, r in read_records(label_setup.out)[0]]
    assert {r["tier"] for r in rows} == {"simple", "complex"} and len(rows) == 4
    assert {r["prompt"] for r in rows} == {"First, a question?", "Second"}


def test_a_nonsense_judge_labels_nothing_and_says_so(
        label_setup: LabelSetup, capsys: pytest.CaptureFixture[str]) -> None:
    label_setup.judge.mode = "nonsense"
    assert label(label_setup, "--limit", "1", "--tiers", "simple,medium") == 1
    assert not label_setup.out.exists() or read_records(label_setup.out)[0] == []
    out = capsys.readouterr()
    assert "1 failed" in out.out and "neither A, B nor tie" in out.out
    assert "run the same command again" in out.err


@pytest.mark.parametrize(("extra", "needle"), [
    (["--judge", "oracle"], "unknown judge endpoint 'oracle' (endpoints of"),
    (["--tiers", "simple,galaxy"], "unknown tier 'galaxy'"),
    (["--tiers", "simple"], "name two different tiers"),
    (["--out", "/"], "--out: /: not a regular file"),
])
def test_label_errors_name_the_problem(label_setup: LabelSetup, extra: list[str], needle: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert label(label_setup, *extra) == 2
    assert needle in capsys.readouterr().err


def test_label_names_a_server_it_cannot_reach(label_setup: LabelSetup,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    text = label_setup.portfolio.read_text(encoding="utf-8")
    line = f'name: mid, api: ollama, base_url: "{label_setup.ollama_url}"'
    assert line in text
    label_setup.portfolio.write_text(
        text.replace(line, 'name: mid, api: ollama, base_url: "http://127.0.0.1:9"'),
        encoding="utf-8")
    assert label(label_setup) == 2
    err = capsys.readouterr().err
    assert "cannot reach mid at http://127.0.0.1:9: connection refused" in err
    assert label_setup.judge.requests == []


# -- training weighs check records apart -----------------------------------------------------


def test_training_weighs_records_by_source() -> None:
    from classifier_service.feedback import OutcomeRecord
    from tier_router_training.outcomes.records import OutcomeTable

    records = [OutcomeRecord(prompt="p", tier="simple", score=1.0, source="user"),
               OutcomeRecord(prompt="p", tier="simple", score=0.0, source="check"),
               OutcomeRecord(prompt="q", tier="simple", score=0.0, source="check")]
    tiers = ("simple", "medium")
    assert OutcomeTable.build(records, tiers).scores[0, 0] == 0.5  # as they come
    weighed = OutcomeTable.build(records, tiers, {"check": 0.25})
    assert weighed.scores[0, 0] == pytest.approx(1 / 1.25) and weighed.prompts == ["p", "q"]
    assert weighed.scores[1, 0] == 0.0  # a check record alone still says "not good"
    left_out = OutcomeTable.build(records, tiers, {"check": 0})
    assert left_out.prompts == ["p"] and left_out.scores[0, 0] == 1.0
