"""Assertions on what the example workflows produced in a real n8n (called by run.sh).

    python check.py WORK_DIR wrongKeyStatus=401 tierRoutingQualityCheck=0 ... serviceDown=1

``wrongKeyStatus`` is what tier-router answered to a request with the wrong key: it must be 401.
``tierRouterRealLlama=skipped``: run.sh had no llama.cpp (TIER_ROUTER_LLAMA_PYTHON unset).

WORK_DIR holds ``<run>.out`` (``n8n execute --rawOutput``: log lines, then the execution as JSON)
and ``<run>.err`` for each run; the other arguments are ``run=exit code``. Every check prints one
line; the exit code is 1 when any failed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ANSWERS = dict(re.findall(r'^(\w+)="(.*)"$', (HERE / "answers.sh").read_text(), re.M))
SIMPLE, MEDIUM, COMPLEX = (ANSWERS["SIMPLE_ANSWER"], ANSWERS["MEDIUM_ANSWER"],
                           ANSWERS["COMPLEX_ANSWER"])
TOOL_PROMPT, AGENT_ANSWER = ANSWERS["TOOL_PROMPT"], ANSWERS["AGENT_ANSWER"]
DOWN = "tier-router is not reachable (ECONNREFUSED)"
ROUTED = ("tier", "confidence", "category", "endpoint", "fallback", "reason", "request_id",
          "adjustments", "reason_detail")

# The real-model workflow (real-llama.json): each prompt, the tier the classifier gives it and
# the endpoint of portfolio-llama.yaml that must answer it (no escalation there).
REAL_ROUTES = {
    "Convert 5 miles to kilometers.": ("simple", "smol-small"),
    "What is the capital of France?": ("medium", "smol-large"),
    TOOL_PROMPT: ("complex", "smol-large-complex"),  # the migration plan of answers.sh
}
# Which llama.cpp server (run.sh: llama-<name>.log) each endpoint is on.
REAL_SERVERS = {"smol-small": "small", "smol-large": "large", "smol-large-complex": "large"}

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  ({detail})" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def execution(work: Path, run: str) -> dict[str, Any]:
    text = (work / f"{run}.out").read_text()
    start = text.find("{\n")
    if start < 0:
        return {}
    data: dict[str, Any] = json.JSONDecoder().raw_decode(text, start)[0]
    return data


Items = list[dict[str, Any]]


def outputs(run: dict[str, Any], node: str, kind: str = "main") -> list[Items]:
    """The items on each output of ``node``, all its runs together."""
    merged: list[Items] = []
    for node_run in run["data"]["resultData"]["runData"].get(node, []):
        for index, items in enumerate((node_run.get("data") or {}).get(kind, [])):
            while len(merged) <= index:
                merged.append([])
            merged[index].extend(items or [])
    return merged


def texts(items: list[dict[str, Any]], field: str = "text") -> list[str]:
    return [item["json"].get(field) for item in items]


def tier_routing(run: dict[str, Any]) -> None:
    routed = outputs(run, "Route by tier")
    check("tier routing: three tier outputs, two items each (simple, medium, complex), none failed",
          [len(items) for items in routed] == [2, 2, 2, 0], f"got {[len(i) for i in routed]}")
    for index, tier in enumerate(("simple", "medium", "complex")):
        for item in routed[index] if len(routed) > index else []:
            routing = item["json"].get("routing", {})
            check(f"tier routing: {tier} output carries routing.tier={tier} and all fields",
                  routing.get("tier") == tier and all(k in routing for k in ROUTED), str(routing))
            check(f"tier routing: {tier} item has its pairedItem",
                  isinstance(item.get("pairedItem"), dict), str(item.get("pairedItem")))
    check("tier routing: the simple model answered the simple items",
          texts(outputs(run, "Answer (simple)")[0]) == [SIMPLE, SIMPLE])
    checked = outputs(run, "Check answer")
    check("quality check: no simple answer passes, both escalate, none failed",
          [len(items) for items in checked] == [0, 2, 0], f"got {[len(i) for i in checked]}")
    for item in checked[1] if len(checked) > 1 else []:
        quality = item["json"].get("quality", {})
        check("quality check: escalate item carries next_tier=medium and its endpoint",
              quality.get("next_tier") == "medium"
              and (quality.get("next_endpoint") or {}).get("model")
              == "qwen2.5:14b-instruct-q4_K_M",
              str(quality))
    check("escalation: the medium model answered both escalated items",
          texts(outputs(run, "Answer (escalated)")[0]) == [MEDIUM, MEDIUM])
    check("tier routing: the medium and complex models answered their items",
          texts(outputs(run, "Answer (medium)")[0]) == [MEDIUM, MEDIUM]
          and texts(outputs(run, "Answer (complex)")[0]) == [COMPLEX, COMPLEX])


def agent_routing(run: dict[str, Any]) -> None:
    routed = outputs(run, "Route by agent")
    agents = [[item["json"]["agent"] for item in items] for items in routed]
    check("agent routing: customer-support -> simple, research -> complex, no agent -> classifier",
          agents == [["customer-support", "customer-support"], [""],
                     ["research", "research"], []], str(agents))
    reasons = [item["json"]["routing"]["reason"] for items in routed for item in items
               if item["json"]["agent"]]
    check("agent routing: decisions say reason=agent", set(reasons) == {"agent"}, str(reasons))


def chat_model_agent(run: dict[str, Any]) -> None:
    answers = texts(outputs(run, "AI Agent")[0], "output")
    check("chat model: the AI Agent got checked answers (the simple model's hedge escalated)",
          answers == [MEDIUM, MEDIUM], str(answers))
    model_out = outputs(run, "Tier Router Chat Model", "ai_languageModel")
    routes = [item["json"].get("tier_router") for items in model_out for item in items]
    check("chat model: its output shows the route (tier_router) of every call",
          len(routes) == 2 and all(r and r.get("tier") == "medium" for r in routes), str(routes))
    check("chat model: the simple prompt's call escalated once",
          any(r and r.get("escalations") == 1 for r in routes), str(routes))


def openai_model(run: dict[str, Any]) -> None:
    answers = texts(outputs(run, "Basic LLM Chain")[0])
    check("OpenAI Chat Model via tier-router: simple prompt escalated, complex prompt to complex",
          answers == [MEDIUM, COMPLEX], str(answers))


def ollama_model(run: dict[str, Any]) -> None:
    answers = texts(outputs(run, "Basic LLM Chain")[0])
    # n8n's Ollama Chat Model streams, and tier-router passes streamed answers on unchecked.
    check("Ollama Chat Model via tier-router: each prompt answered by its tier's model",
          answers == [SIMPLE, COMPLEX], str(answers))


def agent_tool(run: dict[str, Any]) -> None:
    answers = texts(outputs(run, "AI Agent")[0], "output")
    check("agent tool: the AI Agent answered after calling the Tier Router tool",
          answers == [AGENT_ANSWER], str(answers))
    # What the agent got back from the tool: n8n passes it the items of the tool's first output.
    calls = outputs(run, "Route request", "ai_tool")
    items = calls[0] if calls else []
    routings = [item["json"].get("routing", {}) for item in items]
    check("agent tool: the tool answered the agent with its decision (complex, not the first "
          "tier: the answer is not empty)",
          len(items) == 1 and routings[0].get("tier") == "complex"
          and all(k in routings[0] for k in ROUTED), str(items)[:600])
    check("agent tool: the tool routed the prompt the agent's model asked about",
          [item["json"].get("prompt") for item in items] == [TOOL_PROMPT], str(items)[:600])


def error_output(run: dict[str, Any]) -> None:
    routed = outputs(run, "Route by tier")
    check("error output: with tier-router down, no item on a tier output or failed, all six on "
          "the error output", [len(items) for items in routed] == [0, 0, 0, 0, 6],
          f"got {[len(i) for i in routed]}")
    failed = routed[4] if len(routed) > 4 else []
    # n8n reduces a failed item's JSON to {"error": ...}; its pairedItem leads back to the input.
    check(f"error output: each failed item says {DOWN!r} and is paired with its input item",
          all(item["json"].get("error") == DOWN for item in failed)
          and [(item.get("pairedItem") or {}).get("item") for item in failed] == list(range(6)),
          str(failed[:1])[:600])
    check("error output: nothing was answered",
          not any(outputs(run, node) for node in ("Answer (simple)", "Answer (medium)",
                                                  "Answer (complex)")))


def continue_on_fail(run: dict[str, Any]) -> None:
    routed = outputs(run, "Route by tier")
    check("continue: with tier-router down, all six items on the failed output, none on a tier",
          [len(items) for items in routed] == [0, 0, 0, 6], f"got {[len(i) for i in routed]}")
    failed = routed[3] if len(routed) > 3 else []
    # n8n reduces a failed item's JSON to {"error": ...}; its pairedItem leads back to the input.
    check(f"continue: each failed item says {DOWN!r} and is paired with its input item",
          all(item["json"].get("error") == DOWN for item in failed)
          and [(item.get("pairedItem") or {}).get("item") for item in failed] == list(range(6)),
          str(failed[:1])[:600])
    check("continue: nothing was answered",
          not any(outputs(run, node) for node in ("Answer (simple)", "Answer (medium)",
                                                  "Answer (complex)")))


def record_outcome(run: dict[str, Any]) -> None:
    model_out = outputs(run, "Tier Router Chat Model", "ai_languageModel")
    routes = [item["json"].get("tier_router") or {} for items in model_out for item in items]
    check("record outcome: the chat model answered once, escalated to medium, with a request id",
          len(routes) == 1 and routes[0].get("tier") == "medium"
          and routes[0].get("escalations") == 1
          and re.fullmatch(r"[0-9a-f]{32}", str(routes[0].get("request_id", ""))) is not None,
          str(routes))
    route = routes[0] if routes else {}
    recorded = outputs(run, "Record outcome")
    check("record outcome: one item recorded, none failed",
          [len(items) for items in recorded] == [1, 0], f"got {[len(i) for i in recorded]}")
    outcome = (recorded[0][0]["json"].get("outcome") or {}) if recorded and recorded[0] else {}
    check("record outcome: tier-router answered recorded for that request id, tier and score",
          outcome.get("status") == "recorded"
          and outcome.get("request_id") == route.get("request_id")
          and outcome.get("tier") == "medium" and outcome.get("score") == 1, str(outcome))
    read = outputs(run, "Routing of the answer")
    item = read[0][0]["json"] if read and read[0] else {}
    check("record outcome: the node after it reads the answering tier, request id and endpoint",
          item.get("tier") == "medium" and item.get("request_id") == route.get("request_id")
          and item.get("endpoint") == "qwen-14b" and item.get("score") == 1, str(item))


def logged_outcomes(work: Path) -> list[dict[str, Any]]:
    """Every record in the service's outcomes folder (run.sh: TIER_ROUTER_OUTCOMES_DIR)."""
    rows: list[dict[str, Any]] = []
    for path in sorted((work / "outcomes").glob("*.jsonl")):
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip().startswith("{"):
                    rows.append(json.loads(line))
    return rows


def outcome_logged(work: Path, run: dict[str, Any]) -> None:
    routes = [item["json"].get("tier_router") or {}
              for items in outputs(run, "Tier Router Chat Model", "ai_languageModel")
              for item in items]
    request_id = routes[0].get("request_id") if routes else None
    rows = [row for row in logged_outcomes(work) if row.get("request_id") == request_id]
    check("record outcome: the service logged the outcome record (prompt, tier, score, answer)",
          len(rows) == 1 and rows[0].get("tier") == "medium" and rows[0].get("score") == 1
          and rows[0].get("answer") == MEDIUM
          and str(rows[0].get("prompt", "")).startswith("Is this review"),
          str(rows)[:600] or str(logged_outcomes(work))[:600])


def gateway_lines(log: Path) -> list[dict[str, Any]]:
    """The gateway's one line per answered request (``TIER_ROUTER_LOG_PROMPTS=true``: with the
    prompt and the answer), from tier-router's JSON log."""
    rows: list[dict[str, Any]] = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        if line.startswith("{"):
            with_fields = json.loads(line)
            if with_fields.get("event") == "gateway":
                rows.append(with_fields)
    return rows


def real_llama(work: Path, run: dict[str, Any]) -> None:
    fake = {SIMPLE, MEDIUM, COMPLEX, AGENT_ANSWER}
    prompts = [item["json"].get("prompt") for item in outputs(run, "Questions")[0]]
    check("real model: the three prompts went in", prompts == list(REAL_ROUTES), str(prompts))
    logged = gateway_lines(work / "tier-router-llama.log")
    check("real model: tier-router answered six requests (3 prompts x 2 chat models), none "
          "escalated", len(logged) == 6 and all(r.get("escalations") == 0 for r in logged),
          str(logged)[:800])
    for chain, model in (("Chain (OpenAI Chat Model)", "OpenAI Chat Model"),
                         ("Chain (Tier Router Chat Model)", "Tier Router Chat Model")):
        answers = texts(outputs(run, chain)[0]) if outputs(run, chain) else []
        check(f"real model, {model}: an answer per prompt, each non-empty text that no fake "
              "model gives", len(answers) == len(prompts)
              and all(isinstance(a, str) and a.strip() and a not in fake for a in answers),
              str(answers))
        for prompt, answer in zip(prompts, answers, strict=False):
            tier, endpoint = REAL_ROUTES.get(prompt or "", ("?", "?"))
            # The gateway's line for this item: same prompt, same answer text.
            rows = [r for r in logged if r.get("prompt") == prompt
                    and str(r.get("answer", "")).strip() == str(answer).strip()]
            check(f"real model, {model}: {str(prompt)[:30]!r}... answered by {endpoint} ({tier}, "
                  "routed by the classifier), per the gateway's log",
                  bool(rows) and all(r.get("endpoint") == endpoint and r.get("tier") == tier
                                     and r.get("reason") == "classifier" for r in rows),
                  str(rows or logged)[:800])
    routes = [item["json"].get("tier_router") or {}
              for items in outputs(run, "Tier Router Chat Model", "ai_languageModel")
              for item in items]
    expected = [REAL_ROUTES.get(p or "", ("?", "?")) for p in prompts]
    check("real model, Tier Router Chat Model: its output (tier_router) names each answer's "
          "tier and endpoint", [(r.get("tier"), r.get("endpoint")) for r in routes] == expected,
          str(routes))
    for server in ("small", "large"):
        log = work / f"llama-{server}.log"
        served = log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200') \
            if log.is_file() else -1
        want = 2 * sum(REAL_SERVERS[e] == server for _, e in expected)
        check(f"real model: the llama.cpp server {server!r} answered {want} chat completions",
              served == want, f"its log shows {served}")


def node_error(work: Path, run: str) -> dict[str, Any]:
    """The error of a failed execution (n8n prints the execution after "Execution error:")."""
    data = execution(work, run)
    error: dict[str, Any] = data.get("data", {}).get("resultData", {}).get("error") or {}
    return error


def check_error(work: Path, run: str, what: str, node: str, message: str) -> None:
    error = node_error(work, run)
    check(f"{what}: NodeApiError on the {node} node: {message!r}",
          error.get("name") == "NodeApiError" and (error.get("node") or {}).get("name") == node
          and error.get("message") == message,
          f"{error.get('name')} on {(error.get('node') or {}).get('name')}: {error.get('message')}"
          if error else (work / f"{run}.out").read_text()[-600:])


def main() -> int:
    work = Path(sys.argv[1])
    codes = dict(arg.split("=", 1) for arg in sys.argv[2:])
    print("exit codes: " + " ".join(f"{k}={v}" for k, v in sorted(codes.items())))
    for run, verify in (("tierRoutingQualityCheck", tier_routing),
                        ("tierRouterAgentRouting", agent_routing),
                        ("tierRouterChatModelAgent", chat_model_agent),
                        ("tierRouterAsOpenAiModel", openai_model),
                        ("tierRouterAsOllamaModel", ollama_model),
                        ("tierRouterAsAgentTool", agent_tool),
                        ("tierRouterRecordOutcome", record_outcome),
                        ("serviceDownErrorOutput", error_output),
                        ("serviceDownContinue", continue_on_fail)):
        check(f"{run}: n8n execute exits 0", codes.get(run) == "0", f"exit {codes.get(run)}")
        data = execution(work, run)
        if data:
            verify(data)
        else:
            stderr = (work / f"{run}.err").read_text()
            check(f"{run}: execution JSON on stdout", False, stderr[-600:])

    if codes.get("tierRouterRealLlama") == "skipped":
        print("skip tierRouterRealLlama: TIER_ROUTER_LLAMA_PYTHON is unset, no real llama.cpp "
              "servers (eval \"$(bash .ci/llama-server.sh)\" sets it)")
    else:
        check("tierRouterRealLlama: n8n execute exits 0", codes.get("tierRouterRealLlama") == "0",
              f"exit {codes.get('tierRouterRealLlama')}")
        data = execution(work, "tierRouterRealLlama")
        if data:
            real_llama(work, data)
        else:
            check("tierRouterRealLlama: execution JSON on stdout", False,
                  (work / "tierRouterRealLlama.err").read_text()[-600:])

    recorded_run = execution(work, "tierRouterRecordOutcome")
    if recorded_run:
        outcome_logged(work, recorded_run)

    check("service down: n8n execute exits 1", codes.get("serviceDown") == "1",
          f"exit {codes.get('serviceDown')}")
    check_error(work, "serviceDown", "service down", "Route by tier", DOWN)

    check("wrong key: tier-router itself answers 401 to it", codes.get("wrongKeyStatus") == "401",
          f"got {codes.get('wrongKeyStatus')}")
    check("wrong key: n8n execute exits 1", codes.get("tierRouterWrongKey") == "1",
          f"exit {codes.get('tierRouterWrongKey')}")
    check_error(work, "tierRouterWrongKey", "wrong key", "Route by agent",
                "tier-router refused the API key (HTTP 401)")

    skipped = (" (the real llama.cpp workflow skipped)"
               if codes.get("tierRouterRealLlama") == "skipped" else "")
    print(f"{len(failures)} failed" if failures else "all checks passed" + skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
