"""``deploy/grafana/tier-router.json`` and ``deploy/prometheus/alerts.yml``: every metric they
query exists on a live ``/metrics``, and the rule file has Prometheus' structure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from classifier_service.app import create_app
from classifier_service.settings import Settings
from tests.doubles import FakeNvidiaSmi, Script, fake_ollama, fake_openai, running
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.gateway import portfolio

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "tier-router.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\btier_router_[A-Za-z0-9_:]*")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*"}


def dashboard_queries() -> list[str]:
    """Every PromQL text of the dashboard: panel targets and the template variables."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("expr", "definition") and isinstance(item, str):
                    found.append(item)
                elif key == "query" and isinstance(item, dict) and "query" in item:
                    found.append(str(item["query"]))
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    return found


def rule_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return data


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_file()["groups"] for rule in group["rules"]]


@pytest.fixture
def live_metrics(tmp_path: Path, fake_smi: FakeNvidiaSmi) -> Iterator[str]:
    """``/metrics`` of a service that has routed, checked, escalated, failed over, reloaded
    and read a GPU, so that every labelled series exists."""
    fake_smi.gpus((0, "NVIDIA L4", 20000, 23034))
    fake_o, fake_a = fake_ollama(), fake_openai()
    with running(fake_o.app) as o_url, running(fake_a.app) as a_url:
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio(o_url, a_url, "http://127.0.0.1:9"), encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                                  gpu_source="nvidia-smi", gpu_poll_s=0.1,
                                  admin_keys=ADMIN_KEY))
        fake_o.scripts["small-a"] = Script(status=500)  # a failover
        fake_o.scripts["small-b"] = Script(content="I'm not sure, maybe positive?")  # fallback
        fake_o.scripts["mid"] = Script(content="Positive")
        with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/v1/route", json={"prompt": "Translate 'dog'"}).is_success
            reply = client.post("/v1/chat/completions", json={"model": "auto", "messages": [
                {"role": "user", "content": "Is this review positive or negative? 'Great.'"}]})
            assert reply.json()["tier_router"]["endpoint"] == "mid"
            assert client.post("/api/chat", json={"model": "mid", "stream": False, "messages": [
                {"role": "user", "content": "x"}]}).is_success
            assert client.post("/v1/admin/reload", json={}, headers=ADMIN).is_success
            deadline = time.monotonic() + 10
            text = client.get("/metrics").text
            while 'tier_router_gpu_monitor_up{source="nvidia-smi"} 1.0' not in text \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
                text = client.get("/metrics").text
            yield text


def test_every_queried_metric_exists_on_metrics(live_metrics: str) -> None:
    exposed = {sample.name for family in text_string_to_metric_families(live_metrics)
               for sample in family.samples}  # with _total, _bucket, _count, _sum as exposed
    queries = dashboard_queries() + [rule["expr"] for rule in rules()]
    queried = {name for query in queries for name in METRIC.findall(query)}
    assert len(queries) > 15 and all(METRIC.search(q) for q in queries)
    assert queried - exposed == set()
    # the dashboard covers what it says it covers
    for wanted in ("tier_router_decisions_total", "tier_router_escalations_total",
                   "tier_router_fallbacks_total", "tier_router_failovers_total",
                   "tier_router_routing_seconds_bucket", "tier_router_gateway_seconds_bucket",
                   "tier_router_gpu_memory_used_bytes", "tier_router_gpu_memory_total_bytes",
                   "tier_router_gpu_memory_alert"):
        assert any(wanted in q for q in dashboard_queries()), wanted


def test_alert_rules_have_prometheus_structure() -> None:
    data = rule_file()
    assert set(data) == {"groups"} and isinstance(data["groups"], list) and data["groups"]
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        assert isinstance(group["rules"], list) and group["rules"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert {"TierRouterVramAboveThreshold", "TierRouterEscalationRateHigh",
            "TierRouterFailovers", "TierRouterNoDecisions",
            "TierRouterGpuMonitorDown"} <= set(names)
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations",
                             "keep_firing_for"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert all(isinstance(v, str) for v in rule["labels"].values())
        assert {"summary", "description"} <= set(rule["annotations"])


def test_dashboard_is_a_grafana_dashboard() -> None:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert data["uid"] == "tier-router" and data["title"] == "tier-router"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"


def test_promtool_accepts_the_rules_and_the_dashboards_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: the prometheus package)")
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the dashboard's queries, with Grafana's variables filled in, as recording rules
    exprs = []
    for query in dashboard_queries():
        for variable, value in GRAFANA_VARS.items():
            query = query.replace(variable, value)
        if not query.startswith("label_values("):  # Grafana's own function
            exprs.append(query)
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(recording), encoding="utf-8")
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
