"""The VRAM planner reproduces the guide's figures and reports a usable plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_service.cli import main
from classifier_service.fleet.vram import (
    architecture,
    bits_per_weight,
    context_limit,
    kv_bytes_per_token,
    plan,
    plan_endpoint,
)
from classifier_service.portfolio.model import (
    Endpoint,
    bundled_portfolio_path,
    load_portfolio,
    parse_portfolio,
)


def weights(model: str, params: float, quantization: str) -> float:
    ep = Endpoint(name="x", api="ollama", base_url="http://127.0.0.1:1", model=model,
                  params_b=params, quantization=quantization)
    return plan_endpoint(ep, 1).weights_gb


@pytest.mark.parametrize(
    ("model", "params", "quantization", "guide_gb"),
    [
        ("llama2:7b", 7, "q4_0", 4.5),
        ("llama2:7b", 7, "q4_K_M", 4.5),
        ("llama2:13b", 13, "q4_K_M", 8.0),
        ("llama2:13b", 13, "q4_0", 8.0),
        ("llama2:13b", 13, "q8_0", 14.0),
    ],
)
def test_guide_weights_within_ten_percent(model: str, params: float, quantization: str,
                                          guide_gb: float) -> None:
    assert weights(model, params, quantization) == pytest.approx(guide_gb, rel=0.10)


def test_guide_server_leaves_about_eleven_gb() -> None:
    portfolio = parse_portfolio("""
version: 1
gpus: {gpu0: {memory_gb: 24}}
tiers:
  - name: simple
    endpoints: [{name: s, api: ollama, base_url: "http://h:1", model: "llama2:7b",
                 params_b: 7, quantization: q4_K_M, gpu: gpu0, loading: concurrent}]
  - name: medium
    endpoints: [{name: m, api: ollama, base_url: "http://h:1", model: "llama2:13b",
                 params_b: 13, quantization: q4_K_M, gpu: gpu0, loading: concurrent}]
""")
    gpu = plan(portfolio)["gpus"][0]
    assert gpu["free_gb"] == pytest.approx(11.0, rel=0.10)
    assert gpu["resident_gb"] == pytest.approx(13.0, rel=0.10)


def test_kv_cache_from_the_architecture() -> None:
    assert architecture("llama3.1:8b-instruct-q4_K_M", 8) == (32, 8, 128)
    assert architecture("Qwen/Qwen2.5-32B-Instruct-AWQ", 32) == (64, 8, 128)
    assert architecture("codellama:34b", 34) == (48, 8, 128)
    assert architecture("some-new-model", 30)[1:] == (8, 128)  # generic rule by size
    # Llama 3 8B at 2,048 tokens: 2 x 32 layers x 8 heads x 128 x 2 bytes x 2048 = 0.27 GB
    assert kv_bytes_per_token("llama3:8b", 8) * 2048 / 1e9 == pytest.approx(0.268, abs=0.001)
    # Llama 2 13B has no grouped-query attention: 40 heads, 3.4 GB at 4,096 tokens
    assert kv_bytes_per_token("llama2:13b", 13) * 4096 / 1e9 == pytest.approx(3.36, abs=0.01)


def test_bundled_portfolio_plan_and_verdicts() -> None:
    portfolio = load_portfolio(bundled_portfolio_path())
    gpu = plan(portfolio)["gpus"][0]
    assert [m["endpoint"] for m in gpu["models"]] == ["llama3-8b", "llama2-13b", "coder-7b"]
    assert gpu["verdict"] == "needs_on_demand"  # both residents fit; the coder swaps in
    assert gpu["free_gb"] == pytest.approx(24 - gpu["resident_gb"], abs=0.01)
    assert gpu["free_after_kv_gb"] == pytest.approx(gpu["free_gb"] - gpu["kv_cache_gb"],
                                                    abs=0.01)
    assert gpu["max_sessions"]["llama3-8b"] > gpu["max_sessions"]["llama2-13b"] >= 1
    assert plan(portfolio, memory_gb=80)["gpus"][0]["verdict"] == "fits_concurrently"
    assert plan(portfolio, memory_gb=10)["gpus"][0]["verdict"] == "does_not_fit"
    more = plan(portfolio, memory_gb=48)["gpus"][0]["max_sessions"]["llama3-8b"]
    assert more > gpu["max_sessions"]["llama3-8b"]
    many = plan(portfolio, sessions=8)["gpus"][0]
    assert many["kv_cache_gb"] == pytest.approx(8 * gpu["kv_cache_gb"], rel=0.02)
    assert [m["endpoint"] for m in plan(portfolio)["unplaced"]] == ["qwen-32b"]


def test_embedding_models_are_planned_on_the_cpu() -> None:
    ep = Endpoint(name="embedder", api="ollama", base_url="http://h:1", model="nomic-embed-text",
                  params_b=0.14, quantization="f16", gpu=None, loading="concurrent")
    assert plan_endpoint(ep, 1).device == "cpu"


def test_plan_command(capsys: pytest.CaptureFixture[str]) -> None:
    # two sessions each: the coder no longer swaps in beside the residents' caches (exit 2)
    assert main(["plan", "--gpu-memory", "24GB", "--sessions", "2", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    gpu = data["gpus"][0]
    assert gpu["verdict"] == "does_not_fit" and gpu["problems"][0].startswith("coder-7b")
    assert set(gpu) >= {"name", "memory_gb", "alert_threshold", "models", "resident_gb",
                        "free_gb", "kv_cache_gb", "free_after_kv_gb", "verdict",
                        "max_sessions"}
    assert set(gpu["models"][0]) >= {"endpoint", "model", "params_b", "quantization",
                                     "loading", "device", "weights_gb", "kv_cache_gb",
                                     "total_gb"}
    assert main(["plan"]) == 0
    assert "needs_on_demand" in capsys.readouterr().out
    bad = subprocess.run([sys.executable, "-m", "classifier_service", "plan", "--gpu-memory",
                          "lots"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a size" in bad.stderr


def test_plan_endpoint(client: TestClient) -> None:
    data = client.get("/v1/plan", params={"sessions": 2, "gpu_memory": 48}).json()
    assert data["sessions"] == 2 and data["gpus"][0]["memory_gb"] == 48
    assert client.get("/v1/plan", params={"sessions": 0}).status_code == 422


def one_gpu(memory: float, models: str) -> dict[str, object]:
    portfolio = parse_portfolio(f"""
version: 1
gpus: {{g: {{memory_gb: {memory}}}}}
tiers:
{models}
""")
    gpu: dict[str, object] = plan(portfolio)["gpus"][0]
    return gpu


def test_verdicts_at_the_edges() -> None:
    resident = ('  - {name: a, endpoints: [{name: s, api: ollama, base_url: "http://h:1", '
                'model: "llama3:8b", params_b: 8, quantization: q4_K_M, gpu: g, '
                'loading: concurrent}]}\n')
    big_on_demand = ('  - {name: b, endpoints: [{name: d, api: ollama, base_url: "http://h:1", '
                     'model: "qwen2.5:14b", params_b: 14, quantization: q8_0, gpu: g, '
                     'context_length: 4096}]}\n')
    # the residents fit, but swapping in the 16 GB on-demand model would overflow 20 GB
    assert one_gpu(20, resident + big_on_demand)["verdict"] == "does_not_fit"
    assert one_gpu(40, resident + big_on_demand)["verdict"] == "fits_concurrently"
    assert one_gpu(23, resident + big_on_demand)["verdict"] == "needs_on_demand"
    # residents alone over the alert line (5.9 GB > 90% of 6 GB)
    assert one_gpu(6, resident)["verdict"] == "does_not_fit"
    unsized = ('  - {name: c, endpoints: [{name: u, api: ollama, base_url: "http://h:1", '
               'model: mystery, gpu: g}]}\n')
    assert one_gpu(80, resident + unsized)["verdict"] == "needs_on_demand"


def test_max_context_and_on_demand_figures() -> None:
    gpu = plan(load_portfolio(bundled_portfolio_path()))["gpus"][0]
    models = {m["endpoint"]: m for m in gpu["models"]}
    assert gpu["on_demand_gb"] == models["coder-7b"]["total_gb"]
    assert gpu["alert_line_gb"] == pytest.approx(21.6)
    room = gpu["alert_line_gb"] - gpu["resident_gb"] - models["llama2-13b"]["kv_cache_gb"]
    per_1k = models["llama3-8b"]["kv_gb_per_1k_tokens"]
    assert gpu["max_context"]["llama3-8b"] == pytest.approx(room / per_1k * 1000, rel=0.01)
    assert gpu["max_sessions"]["llama3-8b"] == pytest.approx(room / (per_1k * 2.048), abs=1)


@pytest.mark.parametrize(
    ("name", "bits"),
    [("Q4_K_M", 4.85), (" q4_0 ", 4.55), ("IQ4_XS", 4.5), ("GPTQ-Int4", 4.5), ("awq", 4.25),
     ("bnb-4bit", 4.5), ("8-bit", 8.5), ("Q5_K", 5.5), ("F16", 16.0), (None, 16.0)],
)
def test_quantization_names(name: str | None, bits: float) -> None:
    assert bits_per_weight(name) == bits


def test_infinite_or_odd_sizes_are_refused(client: TestClient) -> None:
    assert client.get("/v1/plan", params={"gpu_memory": "inf"}).status_code == 422
    assert client.get("/v1/plan", params={"gpu_memory": "nan"}).status_code == 422
    for size in ("inf", "nan", "-3GB"):
        result = subprocess.run([sys.executable, "-m", "classifier_service", "plan",
                                 f"--gpu-memory={size}"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2 and "not a size" in result.stderr


def test_does_not_fit_names_each_model_and_by_how_much() -> None:
    resident = ('  - {name: a, endpoints: [{name: s, api: ollama, base_url: "http://h:1", '
                'model: "llama3:8b", params_b: 8, quantization: q4_K_M, gpu: g, '
                'loading: concurrent}]}\n')
    big_on_demand = ('  - {name: b, endpoints: [{name: d, api: ollama, base_url: "http://h:1", '
                     'model: "qwen2.5:14b", params_b: 14, quantization: q8_0, gpu: g, '
                     'context_length: 4096}]}\n')
    gpu = one_gpu(20, resident + big_on_demand)
    models = {m["endpoint"]: m for m in gpu["models"]}  # type: ignore[attr-defined]
    over = models["s"]["total_gb"] + models["d"]["total_gb"] - 20
    assert gpu["problems"] == [
        f"d (on demand) needs {models['d']['total_gb']:.1f} GB; beside the residents' "
        f"{models['s']['total_gb']:.1f} GB that is {over:.1f} GB over the card's 20.0 GB"]
    alone = one_gpu(6, resident)
    line = 6 * 0.9
    s_total = alone["models"][0]["total_gb"]  # type: ignore[index]
    assert alone["problems"] == [f"s needs {s_total:.1f} GB, {s_total - line:.1f} GB over "
                                 f"the alert line of {line:.1f} GB"]
    assert one_gpu(40, resident + big_on_demand)["problems"] == []


def test_max_context_is_capped_at_the_models_own_limit() -> None:
    assert context_limit("llama2:13b-chat-q4_K_M") == 4096
    assert context_limit("llama3.1:8b-instruct-q4_K_M") == 131072
    assert context_limit("llama3:8b") == 8192
    assert context_limit("Qwen/Qwen2.5-32B-Instruct-AWQ") == 32768
    assert context_limit("mistral:7b") == 32768
    assert context_limit("mystery") is None
    gpu = plan(load_portfolio(bundled_portfolio_path()), memory_gb=80)["gpus"][0]
    assert gpu["max_context"]["llama2-13b"] == 4096 == gpu["context_limit"]["llama2-13b"]
    assert gpu["max_context"]["llama3-8b"] <= 131072


def test_zero_sessions_are_explained() -> None:
    gpu = plan(load_portfolio(bundled_portfolio_path()), memory_gb=10, sessions=4)["gpus"][0]
    assert gpu["max_sessions"]["llama3-8b"] == 0
    assert gpu["zero_sessions"]["llama3-8b"].startswith(
        "the resident weights alone (13.7 GB) cross the alert line of 9.0 GB")


def test_plan_exits_2_and_check_warns_on_does_not_fit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu-memory", "10"]) == 2
    out = capsys.readouterr().out
    assert "-> does_not_fit" in out and "does not fit: coder-7b (on demand) needs" in out
    assert "why zero: the resident weights alone" in out
    assert main(["plan", "--gpu-memory", "10", "--json"]) == 2
    capsys.readouterr()
    small = tmp_path / "small.yaml"
    small.write_text(bundled_portfolio_path().read_text(encoding="utf-8").replace(
        "memory_gb: 24", "memory_gb: 10"), encoding="utf-8")
    assert main(["check", "--portfolio", str(small)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("tier-router: warning: gpu0: does_not_fit: ")
    assert "coder-7b (on demand) needs" in err[0]
    assert main(["check"]) == 0
    assert capsys.readouterr().err == ""


def test_serve_warns_once_when_the_plan_does_not_fit(tmp_path: Path) -> None:
    from tests.support.processes import serve, stop

    small = tmp_path / "small.yaml"
    small.write_text(bundled_portfolio_path().read_text(encoding="utf-8").replace(
        "memory_gb: 24", "memory_gb: 10"), encoding="utf-8")
    log = tmp_path / "serve.log"
    proc, _ = serve("--portfolio", str(small), log=log,
                    env={"XDG_STATE_HOME": str(tmp_path / "state")})
    stop(proc)
    warnings = [line for line in log.read_text(encoding="utf-8").splitlines()
                if line.startswith("tier-router: warning: gpu0: does_not_fit")]
    assert len(warnings) == 1 and "(see `tier-router plan`)" in warnings[0]
