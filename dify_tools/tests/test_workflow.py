"""The example workflows (DSL): every reference resolves, and they do what they say.

No Dify runs here, so each DSL is checked for what Dify needs of it: nodes and edges that
connect, branch handles that exist, tool nodes that name this plugin's tools and parameters,
variable references to outputs that the nodes declare. tier_routing_workflow.yml has one LLM
node per tier of the live service's portfolio, and a quality check with escalation after
every tier but the top one; record_outcome_workflow.yml is run here node by node, with the
plugin's tools against the live service.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from dify_plugin.core.plugin_registration import PluginRegistration

from build_package import unique_identifier
from conftest import PLUGIN_DIR, Package, Service, invoke, stored_outcome
from plugin_checks import load_yaml, validate

EXAMPLES = PLUGIN_DIR / "examples"
ROUTING = EXAMPLES / "tier_routing_workflow.yml"
OUTCOME = EXAMPLES / "record_outcome_workflow.yml"
DSLS = [ROUTING, OUTCOME]
# the daemon's PluginUniqueIdentifier: author/name:version@checksum
UNIQUE_IDENTIFIER = re.compile(
    r"^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}"
    r"(-\w{1,16})?@[a-f0-9]{32,64}$")
REFERENCE = re.compile(r"\{\{#([a-zA-Z0-9_]+)\.([a-zA-Z0-9_]+)#\}\}")
TOOL_OUTPUTS = {"text", "json", "files"}


def load_graph(dsl: Path) -> dict[str, Any]:
    doc = load_yaml(dsl)
    assert doc["kind"] == "app" and doc["app"]["mode"] == "workflow"
    graph: dict[str, Any] = doc["workflow"]["graph"]
    return graph


@pytest.fixture(scope="module")
def graph() -> dict[str, Any]:
    return load_graph(ROUTING)


@pytest.mark.parametrize("dsl", DSLS, ids=lambda p: p.name)
def test_dependencies_name_the_package_as_dify_identifies_it(package: Package,
                                                             dsl: Path) -> None:
    """Dify checks ``dependencies`` at import against what the workspace has installed.

    The entry has the shape Dify's ``PluginDependency`` reads (type ``package``); its
    identifier is the one the daemon gives the package that build_package.py builds now,
    so a plugin change that is not carried into the example fails here.
    """
    (dependency,) = load_yaml(dsl)["dependencies"]
    assert set(dependency) == {"type", "value", "current_identifier"}
    assert dependency["type"] == "package" and dependency["current_identifier"] is None
    assert set(dependency["value"]) == {"plugin_unique_identifier"}
    identifier = dependency["value"]["plugin_unique_identifier"]
    assert UNIQUE_IDENTIFIER.match(identifier), identifier
    built = unique_identifier(package.path)
    assert identifier == built, (
        f"examples/{dsl.name} names {identifier}, the package built now is "
        f"{built}: run python3 build_package.py and copy its plugin_unique_identifier")


def outputs_of(node: dict[str, Any], tools: dict[str, dict[str, Any]]) -> set[str]:
    data = node["data"]
    kind = data["type"]
    if kind == "start":
        return {v["variable"] for v in data["variables"]}
    if kind == "tool":
        return TOOL_OUTPUTS | set(tools[data["tool_name"]]["output_schema"]["properties"])
    if kind == "llm":
        return {"text"}
    if kind == "variable-aggregator":
        return {"output"}
    if kind == "code":
        return set(data["outputs"])
    return set()


@pytest.mark.parametrize("dsl", DSLS, ids=lambda p: p.name)
def test_every_reference_resolves(dsl: Path) -> None:
    graph = load_graph(dsl)
    plugin = validate(PLUGIN_DIR)
    manifest = plugin.manifest
    provider_id = f"{manifest.author}/{manifest.name}/{plugin.providers[0].identity.name}"
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert len(nodes) == len(graph["nodes"])
    outputs = {nid: outputs_of(n, plugin.raw_tools) for nid, n in nodes.items()}

    def check_selector(selector: list[str], where: str) -> None:
        node_id, var = selector
        assert node_id in nodes, f"{where}: unknown node {node_id}"
        assert var in outputs[node_id], f"{where}: {node_id} has no output {var}"

    for nid, node in nodes.items():
        data = node["data"]
        for text in REFERENCE.findall(str(data)):
            check_selector(list(text), nid)
        if data["type"] == "tool":
            assert data["provider_id"] == provider_id and data["provider_type"] == "builtin"
            tool = plugin.raw_tools[data["tool_name"]]
            params = {p["name"]: p for p in tool["parameters"]}
            assert set(data["tool_parameters"]) <= set(params), nid
            required = {n for n, p in params.items() if p.get("required")}
            assert required <= set(data["tool_parameters"]), nid
            for name, given in data["tool_parameters"].items():
                assert given["type"] in {"mixed", "constant", "variable"}, (nid, name)
                if given["type"] == "variable":
                    check_selector(given["value"], f"{nid}.{name}")
                if params[name]["type"] == "select" and given["type"] == "constant":
                    options = [o["value"] for o in params[name]["options"]]
                    assert given["value"] in options, (nid, name)
        if data["type"] == "code":
            for variable in data["variables"]:
                check_selector(variable["value_selector"], nid)
            assert set(data["outputs"]) == set(code_node(data)(**{
                v["variable"]: CODE_SAMPLES[v["variable"]] for v in data["variables"]}))
        if data["type"] == "if-else":
            for case in data["cases"]:
                for condition in case["conditions"]:
                    check_selector(condition["variable_selector"], nid)
        if data["type"] == "variable-aggregator":
            for selector in data["variables"]:
                check_selector(selector, nid)
        if data["type"] == "end":
            for out in data["outputs"]:
                check_selector(out["value_selector"], nid)
    for edge in graph["edges"]:
        source = nodes[edge["source"]]["data"]
        assert edge["target"] in nodes
        handles = ({c["case_id"] for c in source["cases"]} | {"false"}
                   if source["type"] == "if-else" else {"source"})
        assert edge["sourceHandle"] in handles, edge["id"]


@pytest.mark.parametrize("dsl", DSLS, ids=lambda p: p.name)
def test_every_node_is_reached_from_start_and_reaches_end(dsl: Path) -> None:
    graph = load_graph(dsl)
    forward: dict[str, set[str]] = {}
    backward: dict[str, set[str]] = {}
    for edge in graph["edges"]:
        forward.setdefault(edge["source"], set()).add(edge["target"])
        backward.setdefault(edge["target"], set()).add(edge["source"])

    def reach(start: str, links: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, deque([start])
        while todo:
            for nxt in links.get(todo.popleft(), set()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    ids = {n["id"] for n in graph["nodes"]}
    assert reach("start", forward) == ids
    assert reach("end", backward) == ids


def test_one_llm_per_tier_and_escalation_up_the_ladder(graph: dict[str, Any],
                                                       service: Service) -> None:
    tiers = [t["name"] for t in httpx.get(
        f"{service.url}/v1/portfolio",
        headers={"Authorization": f"Bearer {service.api_key}"}).json()["tiers"]]
    nodes = {n["id"]: n["data"] for n in graph["nodes"]}
    targets: dict[tuple[str, str], str] = {(e["source"], e["sourceHandle"]): e["target"]
                                           for e in graph["edges"]}
    # IF/ELSE on the route tool's tier: one case per tier but the top, ELSE for the top
    (switch_id,) = [nid for nid, d in nodes.items() if d["type"] == "if-else" and any(
        c["variable_selector"] == ["route", "tier"] for case in d["cases"]
        for c in case["conditions"])]
    cases = nodes[switch_id]["cases"]
    assert [c["conditions"][0]["value"] for c in cases] == tiers[:-1]
    llm_of = {tier: targets[(switch_id, case["case_id"])]
              for tier, case in zip(tiers[:-1], cases, strict=True)}
    llm_of[tiers[-1]] = targets[(switch_id, "false")]
    assert all(nodes[llm]["type"] == "llm" for llm in llm_of.values())
    assert len(set(llm_of.values())) == len(tiers)
    # after each tier but the top: check_quality (tier set), then IF/ELSE escalate -> next LLM
    for tier, nxt in pairwise(tiers):
        check = targets[(llm_of[tier], "source")]
        assert nodes[check]["tool_name"] == "check_quality"
        assert nodes[check]["tool_parameters"]["tier"]["value"] == tier
        assert llm_of[tier] in nodes[check]["tool_parameters"]["response"]["value"]
        decide = targets[(check, "source")]
        (case,) = nodes[decide]["cases"]
        assert case["conditions"][0]["variable_selector"] == [check, "escalate"]
        assert targets[(decide, case["case_id"])] == llm_of[nxt]


# -- record_outcome_workflow.yml ------------------------------------------------------------

CODE_SAMPLES: dict[str, Any] = {"rating": "good", "escalate": True}


def code_node(data: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A Code node's main(), as Dify's sandbox runs it with the node's input variables."""
    assert data["code_language"] == "python3"
    namespace: dict[str, Any] = {}
    exec(data["code"], namespace)
    main: Callable[..., dict[str, Any]] = namespace["main"]
    return main


def run_outcome_workflow(registration: PluginRegistration, service: Service,
                         inputs: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """Run the DSL node by node from Start: the path taken and the End node's outputs.

    IF/ELSE, Code and Variable Aggregator nodes are evaluated as Dify evaluates them; tool
    nodes are the plugin's tools, invoked against the live service with the inputs the
    node's parameters resolve to.
    """
    graph = load_graph(OUTCOME)
    nodes = {n["id"]: n["data"] for n in graph["nodes"]}
    edges = {(e["source"], e["sourceHandle"]): e["target"] for e in graph["edges"]}
    values: dict[str, dict[str, Any]] = {"start": dict(inputs)}

    def resolve(given: dict[str, Any]) -> Any:
        if given["type"] == "constant":
            return given["value"]
        if given["type"] == "variable":
            node_id, var = given["value"]
            return values[node_id][var]
        return REFERENCE.sub(lambda m: str(values[m[1]].get(m[2], "")), given["value"])

    path, node_id = [], "start"
    while True:
        path.append(node_id)
        data = nodes[node_id]
        handle = "source"
        if data["type"] == "end":
            return path, {o["variable"]: values[o["value_selector"][0]][o["value_selector"][1]]
                          for o in data["outputs"]}
        if data["type"] == "if-else":
            handle = "false"
            for case in data["cases"]:
                (condition,) = case["conditions"]
                assert condition["comparison_operator"] == "not empty"
                owner, var = condition["variable_selector"]
                if values[owner].get(var):
                    handle = case["case_id"]
                    break
        elif data["type"] == "code":
            values[node_id] = code_node(data)(**{
                v["variable"]: values[v["value_selector"][0]][v["value_selector"][1]]
                for v in data["variables"]})
        elif data["type"] == "tool":
            params = {name: resolve(given) for name, given in data["tool_parameters"].items()}
            values[node_id] = invoke(registration, data["tool_name"], service.credentials,
                                     params)["variables"]
        elif data["type"] == "variable-aggregator":
            # the first of its variables whose node ran
            values[node_id] = {"output": next(values[n][v] for n, v in data["variables"]
                                              if n in values)}
        node_id = edges[(node_id, handle)]


@pytest.mark.parametrize(("rating", "score"), [("good", 1.0), ("bad", 0.0), ("tie", 0.5)])
def test_a_persons_rating_is_recorded(registration: PluginRegistration, service: Service,
                                      rating: str, score: float) -> None:
    prompt = "Is this review positive or negative? 'Loved it!'"
    routed = invoke(registration, "route_request", service.credentials, {"prompt": prompt})
    path, outputs = run_outcome_workflow(registration, service, {
        "query": prompt, "answer": "Positive.", "tier": routed["variables"]["tier"],
        "request_id": routed["variables"]["request_id"], "rating": rating})
    assert path == ["start", "rated", "human_score", "record_user", "recorded", "recorded_id",
                    "end"]
    assert outputs == {"score": score, "request_id": routed["variables"]["request_id"]}
    stored = stored_outcome(service, routed["variables"]["request_id"])
    assert (stored["prompt"], stored["answer"], stored["score"], stored["source"]) == (
        prompt, "Positive.", score, "user")


@pytest.mark.parametrize(("answer", "score"), [("I'm not sure.", 0.0), ("Positive.", 1.0)])
def test_without_a_rating_the_check_scores_the_answer(registration: PluginRegistration,
                                                      service: Service, answer: str,
                                                      score: float) -> None:
    path, outputs = run_outcome_workflow(registration, service, {
        "query": "Is this review positive or negative? 'Loved it!'", "answer": answer,
        "tier": "simple", "request_id": "", "rating": ""})
    assert path == ["start", "rated", "check", "check_score", "record_check", "recorded",
                    "recorded_id", "end"]
    assert set(outputs) == {"score", "request_id"} and outputs["score"] == score
    stored = stored_outcome(service, outputs["request_id"])
    assert (stored["answer"], stored["score"], stored["source"]) == (answer, score, "check")


def test_the_record_nodes_name_their_source() -> None:
    nodes = {n["id"]: n["data"] for n in load_graph(OUTCOME)["nodes"]}
    assert nodes["record_user"]["tool_parameters"]["source"]["value"] == "user"
    assert nodes["record_check"]["tool_parameters"]["source"]["value"] == "check"
    assert code_node(nodes["human_score"])(rating="tie") == {"score": 0.5}
    assert code_node(nodes["check_score"])(escalate=False) == {"score": 1.0}
