"""examples/tier_routing_workflow.yml: a Dify workflow whose every reference resolves.

No Dify runs here, so the DSL is checked for what Dify needs of it: nodes and edges that
connect, branch handles that exist, tool nodes that name this plugin's tools and parameters,
variable references to outputs that the nodes declare, one LLM node per tier of the live
service's portfolio, and a quality check with escalation after every tier but the top one.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import pairwise
from typing import Any

import httpx
import pytest

from build_package import unique_identifier
from conftest import PLUGIN_DIR, Package, Service
from plugin_checks import load_yaml, validate

DSL = PLUGIN_DIR / "examples" / "tier_routing_workflow.yml"
# the daemon's PluginUniqueIdentifier: author/name:version@checksum
UNIQUE_IDENTIFIER = re.compile(
    r"^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}"
    r"(-\w{1,16})?@[a-f0-9]{32,64}$")
REFERENCE = re.compile(r"\{\{#([a-zA-Z0-9_]+)\.([a-zA-Z0-9_]+)#\}\}")
TOOL_OUTPUTS = {"text", "json", "files"}


@pytest.fixture(scope="module")
def graph() -> dict[str, Any]:
    doc = load_yaml(DSL)
    assert doc["kind"] == "app" and doc["app"]["mode"] == "workflow"
    graph: dict[str, Any] = doc["workflow"]["graph"]
    return graph


def test_dependencies_name_the_package_as_dify_identifies_it(package: Package) -> None:
    """Dify checks ``dependencies`` at import against what the workspace has installed.

    The entry has the shape Dify's ``PluginDependency`` reads (type ``package``); its
    identifier is the one the daemon gives the package that build_package.py builds now,
    so a plugin change that is not carried into the example fails here.
    """
    (dependency,) = load_yaml(DSL)["dependencies"]
    assert set(dependency) == {"type", "value", "current_identifier"}
    assert dependency["type"] == "package" and dependency["current_identifier"] is None
    assert set(dependency["value"]) == {"plugin_unique_identifier"}
    identifier = dependency["value"]["plugin_unique_identifier"]
    assert UNIQUE_IDENTIFIER.match(identifier), identifier
    built = unique_identifier(package.path)
    assert identifier == built, (
        f"examples/tier_routing_workflow.yml names {identifier}, the package built now is "
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
    return set()


def test_every_reference_resolves(graph: dict[str, Any]) -> None:
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


def test_every_node_is_reached_from_start_and_reaches_end(graph: dict[str, Any]) -> None:
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
