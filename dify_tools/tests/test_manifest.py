"""The plugin's YAML, checked with the SDK's classes and the daemon's extra rules."""

from __future__ import annotations

import ast
import re
import shutil
import sys
from importlib.metadata import metadata, requires, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from build_package import package_files
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
    assert set(tools) == {"route_request", "check_quality", "record_outcome"}
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
    outcome = {p.name: p for p in tools["record_outcome"].parameters}
    assert {n for n, p in outcome.items() if p.required} == {"prompt", "tier", "score"}
    assert set(outcome) == {"prompt", "tier", "score", "answer", "finish_reason",
                            "avg_logprob", "category", "endpoint", "request_id", "source"}
    assert outcome["score"].type.value == "number"
    assert (outcome["score"].min, outcome["score"].max) == (0, 1)
    assert [o.value for o in outcome["source"].options] == ["user", "judge", "check"]
    assert tools["record_outcome"].output_schema is not None
    assert set(tools["record_outcome"].output_schema["properties"]) == {
        "status", "request_id", "tier", "score"}


def test_manifest_requests_no_permissions_and_names_the_dify_it_needs() -> None:
    """Dify shows requested permissions at install; this plugin uses none of them.

    The permissions cover calls back into Dify (its tools, models, apps, nodes, storage,
    endpoints) through the SDK's ``session``; the packaged code makes none.
    """
    manifest = validate(PLUGIN_DIR).manifest
    assert manifest.resource.permission is None
    for relative in package_files(PLUGIN_DIR):
        if relative.suffix == ".py":
            code = (PLUGIN_DIR / relative).read_text(encoding="utf-8")
            assert ".session." not in code, f"{relative} calls back into Dify: add the permission"
    assert manifest.meta.minimum_dify_version == sdk_minimum_dify_version() == "1.14.2"


def sdk_minimum_dify_version() -> str:
    """The Dify the installed SDK needs, by the SDK's own Meta.MinimumDifyVersion table.

    The table (in the package's description) pairs a Dify version with the SDK version
    that needs it; the answer is the highest Dify of the rows at or below this SDK.
    """
    description = metadata("dify_plugin").get_payload()  # type: ignore[attr-defined]
    assert isinstance(description, str)
    table = description.split("Meta.MinimumDifyVersion Reference", 1)[1]
    rows = re.findall(r"^\|\s*(\d+\.\d+\.\d+)\s*\|\s*([0-9][^|\s]*)\s*\|", table, re.M)
    assert rows, "the SDK's MinimumDifyVersion table was not found"
    sdk = Version(version("dify_plugin"))
    needed = [Version(dify) for dify, needs in rows if Version(needs) <= sdk]
    return str(max(needed))


def _requirements() -> dict[str, Requirement]:
    lines = (PLUGIN_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(r.name): r for r in reqs}


def test_requirements_pin_the_sdk_that_is_tested() -> None:
    assert str(_requirements()["dify-plugin"].specifier) == f"=={version('dify_plugin')}"


def test_requirements_declare_every_package_the_plugin_imports() -> None:
    """What the daemon installs from requirements.txt is all the packaged code may import."""
    local = {p.stem for p in PLUGIN_DIR.iterdir()} - {"requirements"}
    imported: set[str] = set()
    for relative in package_files(PLUGIN_DIR):
        if relative.suffix == ".py":
            tree = ast.parse((PLUGIN_DIR / relative).read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    third_party = {canonicalize_name(n) for n in imported - sys.stdlib_module_names - local}
    assert third_party == {"dify-plugin", "httpx"}
    assert third_party <= set(_requirements())


def test_httpx_is_pinned_compatibly_with_the_sdk() -> None:
    """The pin admits the httpx installed with the SDK and the SDK's own lowest version."""
    ours = _requirements()["httpx"].specifier
    (sdk,) = [Requirement(r) for r in requires("dify_plugin") or []
              if canonicalize_name(Requirement(r).name) == "httpx"]
    assert version("httpx") in ours and version("httpx") in sdk.specifier
    lowest = [s.version for s in sdk.specifier if s.operator == ">="]
    assert lowest and all(v in ours for v in lowest), (str(ours), str(sdk.specifier))


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
    ("manifest.yaml", {"meta.minimum_dify_version": "one"}, "minimum_dify_version"),
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
