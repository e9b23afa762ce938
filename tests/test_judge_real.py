"""Judge sampling with a real llama.cpp server as the judge (marker ``real_server``; skips
without ``TIER_ROUTER_LLAMA_PYTHON``, fails under ``CI=true``; see ``tests/llama.py``).

The service runs in-process over real uvicorn before the two real servers of the ``llama``
fixture: tier simple is ``small``, tiers medium and complex are ``large``, and ``large`` is
also the judge, its verdict held to ``A``, ``B`` or ``tie`` by a llama.cpp grammar (the judge
section's ``extra_body``). SmolLM2-135M is no judge worth trusting; what this proves is the
wire: the tier above answers, both orders reach a real server, its verdicts parse, and two
records land.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from classifier_service.app import create_app
from classifier_service.feedback import read_records
from classifier_service.settings import Settings
from tests.doubles import running
from tests.llama import LlamaServers
from tests.support.metrics import value

pytestmark = pytest.mark.real_server
GRAMMAR = 'root ::= "A" | "B" | "tie"'


def test_a_real_server_judges_a_sampled_answer(llama: LlamaServers, tmp_path: Path) -> None:
    small, large = llama.running["small"].server, llama.running["large"].server
    judge = {"endpoint": "large", "sample_rate": 1.0, "timeout_s": 120,
             "extra_body": {"grammar": GRAMMAR}}
    text = f"""version: 1
tiers:
  - name: simple
    endpoints:
      - {{name: small, api: openai, base_url: "{small.base_url}", model: {small.alias},
         context_length: {small.n_ctx}}}
  - name: medium
    endpoints:
      - {{name: large, api: openai, base_url: "{large.base_url}", model: {large.alias},
         context_length: {large.n_ctx}}}
  - name: complex
    endpoints:
      - {{name: large-c, api: openai, base_url: "{large.base_url}", model: {large.alias},
         context_length: {large.n_ctx}}}
policy: {{backend_timeout_s: 120}}
judge: {json.dumps(judge)}
"""
    path = tmp_path / "portfolio.yaml"
    path.write_text(text, encoding="utf-8")
    outcomes = tmp_path / "outcomes"
    app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                              outcomes_dir=outcomes))
    with running(app) as url:
        started = time.monotonic()
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "simple", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        answered_in = time.monotonic() - started
        assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 180
        while True:
            metrics = httpx.get(f"{url}/metrics").text
            done = sum(value(metrics, "tier_router_judge_total", outcome=o)
                       for o in ("judged", "failed"))
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert value(metrics, "tier_router_judge_total", outcome="judged") == 1, metrics
    rows = [r for p in outcomes.glob("*.jsonl") for _, r in read_records(p)[0]]
    assert sorted(r["tier"] for r in rows) == ["medium", "simple"]
    assert {r["source"] for r in rows} == {"judge"}
    assert sum(r["score"] for r in rows) == 1.0
    assert {r["score"] for r in rows} <= {0.0, 0.5, 1.0}
    by_tier = {r["tier"]: r for r in rows}
    assert by_tier["simple"]["answer"] == reply.json()["choices"][0]["message"]["content"]
    assert by_tier["medium"]["endpoint"] == "large" and by_tier["medium"]["answer"]
    assert answered_in < 60
