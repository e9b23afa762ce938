"""The plugin's YAML, checked with the SDK's classes and the daemon's extra rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import PLUGIN_DIR
from plugin_checks import validate


def test_plugin_validates_with_the_sdk_and_the_daemon_rules() -> None:
    plugin = validate(PLUGIN_DIR)
    assert plugin.manifest.name == "tier_router" and plugin.manifest.author == "tier-router"
    (provider,) = plugin.providers
    assert [c.name for c in provider.credentials_schema] == ["service_url", "api_key"]
    assert [c.type.value for c in provider.credentials_schema] == ["text-input", "secret-input"]
    assert [c.required for c in provider.credentials_schema] == [True, False]
    tools = {t.identity.name: t for t in provider.tools}
    assert set(tools) == {"route_request", "check_quality"}
    route = {p.name: p for p in tools["route_request"].parameters}
    assert route["prompt"].required and route["prompt"].form.value == "llm"
    assert set(route) == {"prompt", "agent", "min_tier", "max_tier"}
    quality = {p.name: p for p in tools["check_quality"].parameters}
    assert {n for n, p in quality.items() if p.required} == {"prompt", "response"}
    assert set(quality) == {"prompt", "response", "tier", "finish_reason", "max_tokens",
                            "avg_logprob"}
    assert tools["route_request"].output_schema is not None
    assert tools["route_request"].output_schema["properties"]["tier"]["type"] == "string"
    assert tools["check_quality"].output_schema is not None
    assert tools["check_quality"].output_schema["properties"]["escalate"]["type"] == "boolean"


def test_requirements_pin_the_sdk_that_is_tested() -> None:
    from importlib.metadata import version

    pins = (PLUGIN_DIR / "requirements.txt").read_text(encoding="utf-8").split()
    assert f"dify_plugin=={version('dify_plugin')}" in pins


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "plugin"
    shutil.copytree(PLUGIN_DIR, root, ignore=shutil.ignore_patterns("tests", "dist",
                                                                    "__pycache__"))
    return root


def _edit(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    node = data
    *parents, last = next(iter(change)).split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = next(iter(change.values()))
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.mark.parametrize(("file", "change", "needle"), [
    ("manifest.yaml", {"author": "Tier-Router"}, "author"),
    ("manifest.yaml", {"name": "Tier Router"}, "name"),
    ("manifest.yaml", {"version": "one"}, "version"),
    ("manifest.yaml", {"icon": "missing.svg"}, "missing.svg"),
    ("provider/tier_router.yaml", {"identity.label": {"zh_Hans": "x"}}, "en_US"),
    ("tools/route_request.yaml", {"parameters.0.llm_description": None}, "prompt"),
    ("tools/route_request.yaml", {"parameters.0.form": "chat"}, "form"),
    ("tools/check_quality.yaml", {"output_schema.properties.escalate.type": "flag"}, "escalate"),
])
def test_the_checks_catch_broken_plugins(tmp_path: Path, file: str, change: dict[str, object],
                                         needle: str) -> None:
    root = _copy(tmp_path)
    _edit(root / file, change)
    with pytest.raises((AssertionError, ValueError)) as caught:
        validate(root)
    assert needle in str(caught.value)
