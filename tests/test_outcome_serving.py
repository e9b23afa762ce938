"""Outcome models in the service: load, serve, reload; decisions and their reasons; the learned
check in /v1/quality and the gateway (logprobs asked and stripped); the CLI's train, calibrate
and evaluate on outcome files. Every model here is trained in the test on synthetic records."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.errors import ModelArtifactError
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.routing.outcome_model import OutcomeModel
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.doubles import Double, Script, fake_ollama, fake_openai, running
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.gateway import portfolio as gateway_portfolio
from tests.support.outcomes import (
    EASY,
    HARD,
    LONG,
    LOOPBACK,
    TIERS,
    portfolio_text,
    records,
    train,
    write,
)


@pytest.fixture(scope="module")
def thin_model(tmp_path_factory: pytest.TempPathFactory, outcome_portfolio: Path) -> Path:
    return train(tmp_path_factory.mktemp("thin"), records(simple_only=20), outcome_portfolio)


def test_the_folder_carries_its_classifier_and_routes_by_outcomes(
        outcome_model_dir: Path, outcome_portfolio: Path) -> None:
    model = OutcomeModel.load(outcome_model_dir)
    assert model.classifier_dir == outcome_model_dir / "classifier"
    assert "classifier/model.joblib" in model.metadata["files"]
    assert model.has_check and model.uses_logprobs
    runtime = Runtime.load(outcome_portfolio, outcome_model_dir)
    assert runtime.model_kind == "outcomes" and runtime.model_version.startswith("outcomes-")
    easy = runtime.route(EASY.format("table")).decision
    assert (easy.tier, easy.reason) == ("simple", "outcome")
    assert "outcome model: P(good) simple" in easy.reason_detail
    assert "threshold" in easy.reason_detail
    hard = runtime.route(HARD.format("Hodge")).decision
    assert hard.reason == "outcome" and "P(good) simple 0.0" in hard.reason_detail
    # The records make the cascade the best point (the check also escalates medium's bad
    # answers), so a hard prompt starts at simple and its answer is sent up by the check.
    assert hard.tier == "simple" and model.check_thresholds
    outcome = runtime.outcome
    assert outcome is not None
    p_bad, _ = outcome.check(HARD.format("Hodge"), "idk", "simple", avg_logprob=-2.5)
    assert outcome.escalate(p_bad, "simple")
    p_ok, _ = outcome.check(EASY.format("table"), LONG, "simple", avg_logprob=-0.2)
    assert not outcome.escalate(p_ok, "simple")
    floor = runtime.route(EASY.format("table"), min_tier="complex").decision
    assert (floor.tier, floor.reason, floor.adjustments) == ("complex", "outcome", [])
    capped = runtime.route(HARD.format("Hodge"), max_tier="simple").decision
    assert capped.tier == "simple" and "most expensive tier allowed" in capped.reason_detail


def test_a_thinly_covered_tier_falls_back_to_the_classifier(thin_model: Path,
                                                            outcome_portfolio: Path) -> None:
    runtime = Runtime.load(outcome_portfolio, thin_model)
    assert "simple" in OutcomeModel.load(thin_model).fallback
    prompt = "Translate 'cat' into French."
    top = runtime.classifier.score(prompt).top_tier
    decision = runtime.route(prompt).decision
    assert top == "simple"  # the classifier's call, which the fallback follows
    assert decision.tier == "simple" and decision.reason == "classifier"
    assert ("outcome model: tier simple has 20 records, too few; classifier decides"
            in decision.reason_detail)


def test_tiers_must_match_the_portfolio(outcome_model_dir: Path, tmp_path: Path) -> None:
    two = tmp_path / "two.yaml"
    two.write_text(portfolio_text(("simple", "medium")), encoding="utf-8")
    with pytest.raises(ModelArtifactError, match=r"tiers \['complex'\] are missing from the "
                       r"portfolio"):
        Runtime.load(two, outcome_model_dir)


def test_readyz_portfolio_and_reload_of_an_outcome_model(
        outcome_model_dir: Path, outcome_portfolio: Path, tmp_path: Path) -> None:
    app = create_app(Settings(portfolio=outcome_portfolio, feedback_log=tmp_path / "f.jsonl",
                              outcomes_dir=tmp_path / "outcomes", admin_keys=ADMIN_KEY,
                              models_dir=outcome_model_dir.parent, portfolios_dir=tmp_path))
    with TestClient(app, client=LOOPBACK, headers=ADMIN) as client:
        assert client.get("/readyz").json()["model_kind"] == "classifier"
        r = client.post("/v1/admin/reload", json={"model_dir": str(outcome_model_dir)})
        assert r.status_code == 200, r.text
        version = OutcomeModel.load(outcome_model_dir).model_version
        assert r.json()["model_version"] == version
        ready = client.get("/readyz").json()
        assert ready["model_kind"] == "outcomes"
        assert ready["model_dir"] == str(outcome_model_dir)
        assert set(ready["operating_point"]["router_thresholds"]) == set(TIERS)
        model = client.get("/v1/portfolio").json()["model"]
        assert model["kind"] == "outcomes" and model["check"] is True
        routed = client.post("/v1/route", json={"prompt": EASY.format("chair")}).json()
        assert routed["reason"] == "outcome" and routed["model_version"] == version
        batch = client.post("/v1/route/batch", json={"items": [
            {"prompt": EASY.format("chair")}, {"prompt": HARD.format("Yang")}]}).json()
        assert [item["reason"] for item in batch["results"]] == ["outcome", "outcome"]

        # a tampered classifier copy is refused; the outcome model keeps serving
        broken = outcome_model_dir.parent / "broken"  # under the models folder reload may read
        shutil.copytree(outcome_model_dir, broken)
        with (broken / "classifier" / "model.joblib").open("ab") as fh:
            fh.write(b"x")
        r = client.post("/v1/admin/reload", json={"model_dir": str(broken)})
        assert r.status_code == 422 and "checksum mismatch" in r.text, r.text
        meta = json.loads((broken / "metadata.json").read_text())
        del meta["files"]
        (broken / "metadata.json").write_text(json.dumps(meta))
        r = client.post("/v1/admin/reload", json={"model_dir": str(broken)})
        assert r.status_code == 422 and "lists no checksummed files" in r.text, r.text
        two = tmp_path / "two.yaml"
        two.write_text(portfolio_text(("simple", "medium")), encoding="utf-8")
        r = client.post("/v1/admin/reload", json={"portfolio": str(two)})
        assert r.status_code == 422 and "['complex'] are missing" in r.text, r.text
        assert client.get("/readyz").json()["model_version"] == version

        r = client.post("/v1/admin/reload", json={"model_dir": str(bundled_model_dir())})
        assert r.status_code == 200 and client.get("/readyz").json()["model_kind"] == "classifier"


def test_quality_uses_the_learned_check(outcome_model_dir: Path, outcome_portfolio: Path,
                                        tmp_path: Path) -> None:
    app = create_app(Settings(portfolio=outcome_portfolio, model_dir=outcome_model_dir,
                              feedback_log=tmp_path / "f.jsonl"))
    with TestClient(app) as client:
        bad = client.post("/v1/quality", json={"prompt": EASY.format("door"), "response": "idk",
                                                "tier": "simple", "avg_logprob": -2.5}).json()
        assert bad["check"] == "learned" and bad["escalate"] is True
        assert bad["p_bad"] > bad["threshold"] and bad["next_tier"] == "medium"
        assert len(bad["signals"]) == 3
        assert all(set(s) == {"name", "weight"} for s in bad["signals"])
        good = client.post("/v1/quality", json={"prompt": EASY.format("door"), "response": LONG,
                                                 "tier": "simple", "avg_logprob": -0.2}).json()
        assert good["escalate"] is False and good["p_bad"] <= good["threshold"]
        assert abs(good["score"] - (1 - good["p_bad"])) < 1e-3


def test_quality_without_a_learned_check_answers_as_before(client: TestClient) -> None:
    body = client.post("/v1/quality", json={"prompt": "Write an essay on tides",
                                            "response": "idk"}).json()
    assert "check" not in body and "signals" not in body and "p_bad" not in body


@pytest.fixture
def outcome_stack(tmp_path: Path, outcome_model_dir: Path
                  ) -> Iterator[tuple[str, Double, Double, openai.OpenAI]]:
    """The service with an outcome model over real uvicorn, before the gateway doubles."""
    fake_o, fake_a = fake_ollama(), fake_openai()
    with running(fake_o.app) as o_url, running(fake_a.app) as a_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(gateway_portfolio(o_url, a_url, "http://127.0.0.1:9"), encoding="utf-8")
        app = create_app(Settings(portfolio=path, model_dir=outcome_model_dir,
                                  feedback_log=tmp_path / "f.jsonl"))
        with running(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                max_retries=0) as client:
            yield url, fake_o, fake_a, client


def test_the_gateway_escalates_by_the_learned_check_and_keeps_logprobs_private(
        outcome_stack: tuple[str, Double, Double, openai.OpenAI]) -> None:
    url, ollama, backend, client = outcome_stack
    ollama.scripts["small-a"] = Script(content="idk", logprob=-2.5)
    ollama.scripts["mid"] = Script(content=LONG, logprob=-0.2)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY.format("spoon")}])
    reply = raw.parse()
    info = reply.model_extra["tier_router"]  # type: ignore[index]
    assert info["reason"] == "outcome"
    assert [s["outcome"] for s in info["route"]] == ["escalated", "answered"]
    assert any(d.startswith("p_bad ") and " > " in d for d in info["route"][0]["detail"])
    assert info["endpoint"] == "mid" and reply.choices[0].message.content == LONG
    sent = ollama.requests[-2:]
    assert all(r["logprobs"] is True and r["top_logprobs"] == 1 for r in sent)
    assert reply.choices[0].logprobs is None  # the client did not ask
    assert "logprobs" not in httpx.post(f"{url}/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": EASY.format("cup")}]}
        ).json()["choices"][0]
    # the decision's id, in the summary and the header
    assert len(info["request_id"]) == 32
    assert raw.headers["x-tier-router-request-id"] == info["request_id"]

    backend.scripts["big-model"] = Script(content=LONG, logprob=-0.1)
    asked = client.chat.completions.create(
        model="complex", messages=[{"role": "user", "content": EASY.format("fork")}],
        logprobs=True, top_logprobs=2)
    tokens = asked.choices[0].logprobs.content if asked.choices[0].logprobs else None
    assert tokens and tokens[0].logprob == -0.1
    assert backend.requests[-1]["top_logprobs"] == 2


def test_cli_train_calibrate_evaluate(outcome_model_dir: Path, outcome_portfolio: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    shutil.copytree(outcome_model_dir, model)
    data = write(tmp_path / "ref.jsonl", records(90, seed=9))
    before = OutcomeModel.load(model).model_version
    assert main(["calibrate", "--model", str(model), "--outcomes", str(data),
                 "--match-tier", "medium"]) == 0
    out = capsys.readouterr().out
    after = OutcomeModel.load(model)
    assert after.model_version != before and f"{before} -> {after.model_version}" in out
    point = after.metadata["operating_point"]
    assert point["target"]["match_tier"] == "medium"
    assert "expected quality" in out and "shares answered: simple" in out and "cost" in out
    assert main(["calibrate", "--model", str(model), "--outcomes", str(data),
                 "--max-share", "complex=0.1"]) == 0
    capped = OutcomeModel.load(model)
    assert capped.model_version != after.model_version
    assert capped.metadata["operating_point"]["shares"]["complex"] <= 0.1 + 1e-9
    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(model), "--outcomes", str(data),
                 "--report-dir", str(report)]) == 0
    written = json.loads((report / "report.json").read_text())
    assert set(written["always"]) == set(TIERS) and "calibrated" in written
    assert (report / "cost_quality.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_outcome_files(outcome_portfolio: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    rows = records(90)
    lines = [json.dumps(r) for r in rows]
    lines.insert(4, json.dumps({"prompt": "x", "tier": "huge", "score": 1}))
    lines.insert(7, json.dumps({"prompt": "y", "tier": "simple", "score": 1.5}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "m"
    args = ["train", "--outcomes", str(bad), "--portfolio", str(outcome_portfolio), "--out",
            str(out)]
    assert main([*args, "--on-bad-row", "stop"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:line 5: tier: unknown tier 'huge'" in err and not out.exists()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}:line 5" in err and f"skipped {bad}:line 8" in err
    assert OutcomeModel.load(out).metadata["records"]["complex"]["records"] == 90
    empty = write(tmp_path / "empty.jsonl", [{"prompt": "", "tier": "simple", "score": 1}])
    assert main(["train", "--outcomes", str(empty), "--portfolio", str(outcome_portfolio),
                 "--out", str(tmp_path / "e")]) == 2
    assert "no usable outcome records" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(out), "--outcomes", str(bad)]) == 2
    assert "needs a target: --max-share" in capsys.readouterr().err
    assert main(["train", "--outcomes", str(bad), "--out", str(out)]) == 2
    assert "--portfolio" in capsys.readouterr().err
