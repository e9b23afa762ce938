"""Portfolio validation: every problem names the file, the field and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_service.errors import PortfolioError
from classifier_service.portfolio.model import (
    Specialist,
    bundled_portfolio_path,
    load_portfolio,
    parse_portfolio,
)
from tests.conftest import portfolio_yaml

BASE = portfolio_yaml()


def test_bundled_portfolio_is_the_guides_server() -> None:
    p = load_portfolio(bundled_portfolio_path())
    assert p.tier_names == ["simple", "medium", "complex"]
    assert p.gpus["gpu0"].memory_gb == 24
    coder = p.endpoint("coder-7b")
    assert isinstance(coder, Specialist) and p.tier_of(coder) == "medium"
    assert p.tier_of(p.endpoint("qwen-32b")) == "complex"
    assert p.endpoint("llama3-8b").keep_alive == "-1"
    assert p.endpoint("qwen-32b").base_url == "http://127.0.0.1:8001/v1"
    assert p.agents["code-review"].endpoint == "coder-7b"
    assert p.policy.max_batch == 256
    assert p.policy.confidence_threshold is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("code-review: {endpoint: coder-7b}", "code-review: {endpoint: coder}",
         "agents.code-review.endpoint: unknown endpoint 'coder'"),
        ("research: {tier: complex}", "research: {tier: huge}",
         "agents.research.tier: unknown tier 'huge'"),
        ("research: {tier: complex}", "research: {tier: complex, endpoint: qwen-32b}",
         "agents.research: set exactly one of 'tier' or 'endpoint'"),
        ("code: {endpoint: coder-7b, max_tier: medium}", "code: {endpoint: nowhere}",
         "categories.code: unknown endpoint 'nowhere'"),
        ("code: {endpoint: coder-7b, max_tier: medium}", "code: nowhere",
         "categories.code: unknown endpoint 'nowhere'"),
        ("max_tier: medium}", "max_tier: huge}", "categories.code.max_tier: unknown tier 'huge'"),
        ("max_tier: medium}", "max_tier: medium, tier: x}",
         "categories.code.tier: Extra inputs are not permitted"),
        ("name: qwen-32b", "name: llama3-8b", "endpoints: duplicate endpoint name 'llama3-8b'"),
        ("- name: complex", "- name: medium", "tiers: duplicate tier name 'medium'"),
        ("context_length: 2048", "context_lenght: 2048",
         "tiers.0.endpoints.0.context_lenght: Extra inputs are not permitted"),
        ("context_length: 2048", "context_length: -5",
         "tiers.0.endpoints.0.context_length: Input should be greater than 0"),
        ("api: openai", "api: grpc", "tiers.2.endpoints.0.api: Input should be 'ollama' or"),
        ("tier: medium}", "tier: mega}", "specialists.0.tier: unknown tier 'mega'"),
        ("gpu: gpu0, loading: on_demand, keep_alive: \"10m\"",
         "gpu: gpu9, loading: on_demand, keep_alive: \"10m\"",
         "specialists.0.gpu: unknown gpu 'gpu9'"),
        ("loading: concurrent", "loading: sometimes", "tiers.0.endpoints.0.loading"),
        ("version: 1", "version: 2", "version: Input should be 1"),
        ('base_url: "http://127.0.0.1:8001/v1"', 'base_url: "127.0.0.1:8001"',
         "tiers.2.endpoints.0.base_url: String should match pattern"),
        ("alert_threshold: 0.9", "alert_threshold: 1.5", "gpus.gpu0.alert_threshold"),
    ],
)
def test_invalid_portfolio_names_field_and_problem(old: str, new: str, message: str) -> None:
    assert old in BASE
    with pytest.raises(PortfolioError) as info:
        parse_portfolio(BASE.replace(old, new, 1), "servers/gpu.yaml")
    text = str(info.value)
    assert text.startswith("servers/gpu.yaml: ")
    assert message in text


def test_tier_without_endpoints() -> None:
    with pytest.raises(PortfolioError, match=r"tiers\.0\.endpoints: List should have at least 1"):
        parse_portfolio("version: 1\ntiers: [{name: solo, endpoints: []}]\n")


def test_minimal_portfolio_uses_defaults() -> None:
    p = parse_portfolio(
        "version: 1\ntiers:\n"
        "  - {name: small, endpoints:\n"
        "      [{name: a, api: ollama, base_url: 'http://h:1/', model: m}]}\n"
    )
    assert p.endpoint("a").base_url == "http://h:1"
    assert p.endpoint("a").context_length == 4096
    assert p.policy.max_prompt_chars == 64_000
    assert p.specialists == [] and p.agents == {} and p.categories == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\ntiers: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping at the top level"),
        ("", "expected a mapping at the top level"),
        ("tiers: []\n", "version: Field required"),
    ],
)
def test_unreadable_portfolio(text: str, message: str) -> None:
    with pytest.raises(PortfolioError, match=message):
        parse_portfolio(text, "p.yaml")


def test_yaml_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ntiers:\n  - name: [x\n", encoding="utf-8")
    with pytest.raises(PortfolioError) as info:
        load_portfolio(path)
    assert str(info.value).startswith(f"{path}: line ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PortfolioError, match="file not found"):
        load_portfolio(tmp_path / "nope.yaml")


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "."])
def test_special_files_are_refused_without_reading(special: str) -> None:
    with pytest.raises(PortfolioError, match="not a regular file"):
        load_portfolio(special)


def test_a_huge_portfolio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * (5 * 1024 * 1024), encoding="utf-8")
    with pytest.raises(PortfolioError, match="larger than"):
        load_portfolio(path)
