"""Validate a plugin folder as Dify does: the SDK's own classes, then the daemon's extra rules.

The SDK (dify_plugin) parses manifest.yaml into ``PluginConfiguration``, each provider YAML
into ``ToolProviderConfiguration`` and each tool YAML into ``ToolConfiguration`` (through the
provider). The plugin daemon adds rules of its own when it installs a package: a lower-case
author, icons present in ``_assets/``, ``en_US`` labels, names it accepts, at most 50 MB.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dify_plugin.core.entities.plugin.setup import PluginConfiguration
from dify_plugin.entities.tool import ToolLabelEnum, ToolProviderConfiguration

MAX_PACKAGE_BYTES = 50 * 1024 * 1024
NAME = re.compile(r"^[a-zA-Z0-9_-]+$")  # tool and provider identity names (daemon)
AUTHOR = re.compile(r"^[a-z0-9_-]{1,64}$")  # the daemon's manifest author
OUTPUT_TYPES = {"string", "number", "integer", "boolean", "object", "array"}


@dataclass
class Plugin:
    manifest: PluginConfiguration
    providers: list[ToolProviderConfiguration]
    raw_tools: dict[str, dict[str, Any]]  # tool name -> its YAML


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def validate(root: Path) -> Plugin:
    """Parse and check the plugin in ``root``; an ``AssertionError`` names what is wrong."""
    with contextlib.chdir(root):  # the SDK reads tool YAML paths relative to the plugin root
        raw = load_yaml(Path("manifest.yaml"))
        manifest = PluginConfiguration(**raw)
        providers = [ToolProviderConfiguration(**load_yaml(Path(p)))
                     for p in manifest.plugins.tools]
        raw_tools = {}
        for p in manifest.plugins.tools:
            for tool_path in load_yaml(Path(p))["tools"]:
                tool = load_yaml(Path(tool_path))
                raw_tools[tool["identity"]["name"]] = tool
    check_daemon_rules(root, raw, manifest, providers)
    for name, tool in raw_tools.items():
        check_output_schema(name, tool.get("output_schema"))
    return Plugin(manifest, providers, raw_tools)


def check_daemon_rules(root: Path, raw: dict[str, Any], manifest: PluginConfiguration,
                       providers: list[ToolProviderConfiguration]) -> None:
    assert manifest.author and AUTHOR.match(manifest.author), f"author {manifest.author!r}"
    assert manifest.meta.runner.version == "3.12"
    assert (root / f"{manifest.meta.runner.entrypoint}.py").is_file(), "entrypoint missing"
    assert (root / "requirements.txt").is_file(), "requirements.txt missing"
    privacy = raw.get("privacy")
    assert privacy and (root / privacy).is_file(), "privacy policy missing"
    assert (root / "_assets" / manifest.icon).is_file(), f"icon _assets/{manifest.icon}"
    assert manifest.label.en_us and manifest.description.en_us
    tags = {t.value for t in ToolLabelEnum}
    assert set(raw.get("tags", [])) <= tags, raw.get("tags")
    for provider in providers:
        ident = provider.identity
        where = f"provider {ident.name}"
        assert NAME.match(ident.name), where
        assert ident.author == manifest.author, where
        assert (root / "_assets" / ident.icon).is_file(), f"{where}: icon _assets/{ident.icon}"
        assert ident.label.en_us and ident.description.en_us, where
        assert (root / provider.extra.python.source).is_file(), where
        for credential in provider.credentials_schema:
            assert credential.label.en_us, f"{where}: credential {credential.name}"
            assert credential.help is not None and credential.help.en_us, credential.name
        assert provider.tools, f"{where}: no tools"
        for tool in provider.tools:
            where = f"tool {tool.identity.name}"
            assert NAME.match(tool.identity.name), where
            assert tool.identity.author == manifest.author, where
            assert tool.identity.label.en_us, where
            assert tool.description.human.en_us and tool.description.llm, where
            assert (root / tool.extra.python.source).is_file(), where
            for param in tool.parameters:
                # both audiences: people building a workflow, and an agent's model
                assert param.label.en_us and param.human_description.en_us, (where, param.name)
                assert param.llm_description, (where, param.name)


def check_output_schema(name: str, schema: Any) -> None:
    assert isinstance(schema, dict) and schema.get("type") == "object", name
    properties = schema.get("properties")
    assert isinstance(properties, dict) and properties, name
    for var, prop in properties.items():
        assert NAME.match(var), (name, var)
        assert prop.get("type") in OUTPUT_TYPES, (name, var, prop)
        assert prop.get("description"), (name, var)
        if prop["type"] == "array":
            assert prop.get("items", {}).get("type") in OUTPUT_TYPES, (name, var)
