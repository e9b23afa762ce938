"""VRAM planning: will the portfolio's models fit on its GPUs, and with how many sessions?

Computed, not fitted (GB = 10^9 bytes):

- weights: parameters x the effective bits per weight of the quantization format (block
  scales included: Q4_K_M about 4.85 bits) / 8, plus a fixed runtime overhead per loaded
  model (CUDA context, compute buffers), as the guide counts it;
- KV cache per session: 2 (keys and values) x layers x KV heads x head size x 2 bytes (f16)
  per token, at the endpoint's context length. Layers and heads come from presets for the
  Llama 2 and 3, Qwen 2.5, Mistral and CodeLlama families, matched on the model name and size,
  or from a generic rule by size (grouped-query attention with 8 KV heads).

Per GPU: the resident (``concurrent``) models, what is left (``free_gb``), the resident KV
caches, the alert line (``alert_threshold`` x memory), a verdict, and for each resident model
the largest session count and context that stay under the alert line. Verdicts:
``fits_concurrently`` (residents, their KV caches and every on-demand model under the alert
line), ``needs_on_demand`` (the residents fit under it; the others must swap in one at a
time, and the largest still fits the card), ``does_not_fit`` (the residents cross the alert
line, or a swapped-in model would overflow the card). A model without ``params_b`` counts as
0 GB and keeps the verdict from ``fits_concurrently``. Embedding models are
planned on the CPU, as the guide advises.

A ``does_not_fit`` GPU lists its ``problems``: each model that does not fit and by how much.
``max_context`` is capped at the model's own context limit (:data:`CONTEXT_LIMITS`, by family;
``context_limit`` in the plan, None for a model of no known family), and a resident with room
for no session says why in ``zero_sessions``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from classifier_service.portfolio.model import Endpoint, Portfolio

GB = 1e9
RUNTIME_OVERHEAD_GB = 0.5
KV_BYTES_PER_ELEMENT = 2  # f16 cache

BITS_PER_WEIGHT = {
    "q2_k": 3.35, "q3_k_s": 3.5, "q3_k_m": 3.9, "q3_k_l": 4.3, "q4_0": 4.55, "q4_1": 5.0,
    "q4_k_s": 4.6, "q4_k_m": 4.85, "q5_0": 5.5, "q5_1": 6.0, "q5_k_s": 5.55, "q5_k_m": 5.7,
    "q6_k": 6.6, "q8_0": 8.5, "int8": 8.0, "fp8": 8.0, "f16": 16.0, "fp16": 16.0, "bf16": 16.0,
    "f32": 32.0, "awq": 4.25, "gptq": 4.25, "int4": 4.25, "4bit": 4.25, "8bit": 8.0,
}
DEFAULT_BITS = 16.0

# (family, size in billions) -> (layers, KV heads, head size)
ARCHITECTURES: dict[tuple[str, int], tuple[int, int, int]] = {
    ("llama2", 7): (32, 32, 128), ("llama2", 13): (40, 40, 128), ("llama2", 70): (80, 8, 128),
    ("llama3", 8): (32, 8, 128), ("llama3", 70): (80, 8, 128), ("llama3", 3): (28, 8, 128),
    ("llama3", 1): (16, 8, 64),
    ("qwen2.5", 1): (28, 2, 128), ("qwen2.5", 3): (36, 2, 128), ("qwen2.5", 7): (28, 4, 128),
    ("qwen2.5", 14): (48, 8, 128), ("qwen2.5", 32): (64, 8, 128), ("qwen2.5", 72): (80, 8, 128),
    ("mistral", 7): (32, 8, 128), ("mistral", 12): (40, 8, 128), ("mistral", 24): (40, 8, 128),
    ("codellama", 7): (32, 32, 128), ("codellama", 13): (40, 40, 128),
    ("codellama", 34): (48, 8, 128), ("codellama", 70): (80, 8, 128),
}
FAMILY_PATTERNS = (
    ("codellama", re.compile(r"code-?llama", re.I)),
    ("qwen2.5", re.compile(r"qwen-?2\.5", re.I)),
    ("llama3", re.compile(r"llama-?3", re.I)),
    ("llama2", re.compile(r"llama-?2", re.I)),
    ("mistral", re.compile(r"mistral|mixtral|ministral", re.I)),
)
# The context each family was trained for (its config's max_position_embeddings): Llama 2
# 4,096; Llama 3 8,192 and Llama 3.1 and later 131,072; Qwen 2.5 32,768 (128K only with YaRN
# rope scaling, which Ollama does not turn on); Mistral 7B v0.2 and later 32,768; CodeLlama
# 16,384. The first pattern that matches the model name wins.
CONTEXT_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"code-?llama", re.I), 16_384),
    (re.compile(r"qwen-?2\.5", re.I), 32_768),
    (re.compile(r"llama-?3\.\d", re.I), 131_072),
    (re.compile(r"llama-?3", re.I), 8_192),
    (re.compile(r"llama-?2", re.I), 4_096),
    (re.compile(r"mistral|mixtral|ministral", re.I), 32_768),
)
EMBEDDING = re.compile(r"embed|bge-|e5-|minilm|gte-", re.I)

Verdict = Literal["fits_concurrently", "needs_on_demand", "does_not_fit"]


BITS_IN_NAME = re.compile(r"(?:^|[^a-z])(?:i?q|int|fp?|mxfp)(\d{1,2})|(\d{1,2})[-_]?bits?")


def bits_per_weight(quantization: str | None) -> float:
    """Effective bits per weight of a format name (``Q4_K_M``, ``awq``, ``GPTQ-Int4``, ...)."""
    if not quantization:
        return DEFAULT_BITS
    key = quantization.strip().lower().replace("-", "_").removesuffix(".gguf")
    if key in BITS_PER_WEIGHT:
        return BITS_PER_WEIGHT[key]
    match = BITS_IN_NAME.search(key)
    if match:
        bits = int(match.group(1) or match.group(2))
        return bits + 0.5 if bits < 16 else float(bits)  # block scales cost about half a bit
    if "awq" in key or "gptq" in key:
        return BITS_PER_WEIGHT["awq"]
    return DEFAULT_BITS


def architecture(model: str, params_b: float) -> tuple[int, int, int]:
    """(layers, KV heads, head size): a family preset by nearest size, or a generic rule."""
    for family, pattern in FAMILY_PATTERNS:
        if pattern.search(model):
            sizes = [s for f, s in ARCHITECTURES if f == family]
            nearest = min(sizes, key=lambda s: abs(s - params_b))
            if abs(nearest - params_b) <= max(1.5, 0.25 * params_b):
                return ARCHITECTURES[(family, nearest)]
    layers = max(16, round(11 * math.sqrt(params_b)))
    return layers, 8, 128


def context_limit(model: str) -> int | None:
    """The longest context the model's family supports, or None when its family is unknown."""
    for pattern, limit in CONTEXT_LIMITS:
        if pattern.search(model):
            return limit
    return None


def kv_bytes_per_token(model: str, params_b: float) -> int:
    layers, kv_heads, head = architecture(model, params_b)
    return 2 * layers * kv_heads * head * KV_BYTES_PER_ELEMENT


@dataclass
class ModelPlan:
    endpoint: str
    model: str
    params_b: float | None
    quantization: str | None
    loading: str
    device: Literal["gpu", "cpu"]
    weights_gb: float
    kv_cache_gb: float
    total_gb: float
    context_length: int
    kv_gb_per_1k_tokens: float = 0.0
    sized: bool = True  # False without params_b: counted as 0 GB, so the verdict is unsure


@dataclass
class GpuPlan:
    name: str
    memory_gb: float
    alert_threshold: float
    models: list[ModelPlan]
    resident_gb: float
    free_gb: float
    kv_cache_gb: float
    free_after_kv_gb: float
    on_demand_gb: float
    alert_line_gb: float
    verdict: Verdict
    max_sessions: dict[str, int] = field(default_factory=dict)
    max_context: dict[str, int] = field(default_factory=dict)
    context_limit: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """For ``does_not_fit``: each model that does not fit, and by how much."""
    zero_sessions: dict[str, str] = field(default_factory=dict)
    """Why a resident model has room for no session."""


def plan_endpoint(endpoint: Endpoint, sessions: int) -> ModelPlan:
    params = endpoint.params_b
    cpu = bool(EMBEDDING.search(endpoint.model) or EMBEDDING.search(endpoint.name))
    if params is None:
        weights = kv = per_1k = 0.0
    else:
        weights = params * bits_per_weight(endpoint.quantization) / 8 + RUNTIME_OVERHEAD_GB
        per_token = kv_bytes_per_token(endpoint.model, params)
        kv = per_token * endpoint.context_length * sessions / GB
        per_1k = per_token * 1000 / GB
    return ModelPlan(
        endpoint=endpoint.name, model=endpoint.model, params_b=params,
        quantization=endpoint.quantization, loading=endpoint.loading,
        device="cpu" if cpu else "gpu", weights_gb=round(weights, 2), kv_cache_gb=round(kv, 2),
        total_gb=round(weights + kv, 2), context_length=endpoint.context_length,
        kv_gb_per_1k_tokens=round(per_1k, 4), sized=params is not None,
    )


def plan(portfolio: Portfolio, *, sessions: int = 1,
         memory_gb: float | None = None) -> dict[str, Any]:
    """The plan for every GPU of the portfolio (``memory_gb`` overrides each GPU's size)."""
    gpus: list[dict[str, Any]] = []
    endpoints = list(portfolio.all_endpoints())
    for name, gpu in portfolio.gpus.items():
        memory = memory_gb if memory_gb is not None else gpu.memory_gb
        models = [plan_endpoint(ep, sessions) for ep in endpoints if ep.gpu == name]
        on_gpu = [m for m in models if m.device == "gpu"]
        resident = [m for m in on_gpu if m.loading == "concurrent"]
        on_demand = [m for m in on_gpu if m.loading != "concurrent"]
        resident_gb = sum(m.weights_gb for m in resident)
        kv_gb = sum(m.kv_cache_gb for m in resident)
        largest_on_demand = max((m.total_gb for m in on_demand), default=0.0)
        alert_line = memory * gpu.alert_threshold
        resident_total = resident_gb + kv_gb
        if resident_total + largest_on_demand > memory or resident_total > alert_line:
            # the residents alone cross the alert line, or a swapped-in model overflows
            verdict: Verdict = "does_not_fit"
        elif resident_total + sum(m.total_gb for m in on_demand) <= alert_line and all(
            m.sized for m in on_gpu
        ):
            verdict = "fits_concurrently"
        else:
            verdict = "needs_on_demand"
        budget = alert_line - resident_gb  # what the alert line leaves for KV caches
        max_sessions: dict[str, int] = {}
        max_context: dict[str, int] = {}
        limits: dict[str, int | None] = {}
        zero: dict[str, str] = {}
        for m in resident:
            per_session = m.kv_gb_per_1k_tokens * m.context_length / 1000
            others = kv_gb - m.kv_cache_gb
            room = max(0.0, budget - others)
            if per_session > 0:
                limit = limits[m.endpoint] = context_limit(m.model)
                max_sessions[m.endpoint] = int(room / per_session)
                context = int(room / sessions / m.kv_gb_per_1k_tokens * 1000)
                max_context[m.endpoint] = min(context, limit) if limit else context
                if max_sessions[m.endpoint] == 0:
                    zero[m.endpoint] = _why_zero(m, resident_gb, others, alert_line,
                                                 per_session)
        problems = (_problems(resident, on_demand, resident_total, alert_line, memory)
                    if verdict == "does_not_fit" else [])
        gpus.append(asdict(GpuPlan(
            name=name, memory_gb=round(memory, 2), alert_threshold=gpu.alert_threshold,
            models=models, resident_gb=round(resident_gb, 2),
            free_gb=round(memory - resident_gb, 2), kv_cache_gb=round(kv_gb, 2),
            free_after_kv_gb=round(memory - resident_gb - kv_gb, 2),
            on_demand_gb=round(largest_on_demand, 2), alert_line_gb=round(alert_line, 2),
            verdict=verdict, max_sessions=max_sessions, max_context=max_context,
            context_limit=limits, problems=problems, zero_sessions=zero,
        )))
    unplaced = [asdict(plan_endpoint(ep, sessions)) for ep in endpoints if ep.gpu is None]
    return {"sessions": sessions, "gpus": gpus, "unplaced": unplaced}


def _problems(resident: list[ModelPlan], on_demand: list[ModelPlan], resident_total: float,
              alert_line: float, memory: float) -> list[str]:
    """Each model that does not fit, in words: residents over the alert line, on-demand
    models that would overflow the card when swapped in beside the residents."""
    problems = []
    if resident_total > alert_line:
        over = resident_total - alert_line
        if len(resident) == 1:
            m = resident[0]
            problems.append(f"{m.endpoint} needs {m.total_gb:.1f} GB, {over:.1f} GB over the "
                            f"alert line of {alert_line:.1f} GB")
        else:
            each = ", ".join(f"{m.endpoint} {m.total_gb:.1f} GB" for m in resident)
            problems.append(f"the resident models need {resident_total:.1f} GB together "
                            f"({each}), {over:.1f} GB over the alert line of "
                            f"{alert_line:.1f} GB")
    for m in on_demand:
        if resident_total + m.total_gb > memory:
            over = resident_total + m.total_gb - memory
            problems.append(f"{m.endpoint} (on demand) needs {m.total_gb:.1f} GB; beside the "
                            f"residents' {resident_total:.1f} GB that is {over:.1f} GB over "
                            f"the card's {memory:.1f} GB")
    return problems


def _why_zero(m: ModelPlan, resident_gb: float, others_kv: float, alert_line: float,
              per_session: float) -> str:
    if resident_gb >= alert_line:
        return (f"the resident weights alone ({resident_gb:.1f} GB) cross the alert line of "
                f"{alert_line:.1f} GB: no room for any KV cache")
    left = max(0.0, alert_line - resident_gb - others_kv)
    return (f"one session at its context of {m.context_length} tokens needs "
            f"{per_session:.2f} GB of KV cache; {left:.2f} GB is left under the alert line "
            f"after the weights ({resident_gb:.1f} GB) and the other models' caches "
            f"({others_kv:.1f} GB)")


def does_not_fit(result: dict[str, Any]) -> list[str]:
    """One line per GPU whose verdict is ``does_not_fit``, naming what does not fit."""
    return [f"{gpu['name']}: does_not_fit: {'; '.join(gpu['problems'])}"
            for gpu in result["gpus"] if gpu["verdict"] == "does_not_fit"]


def render(result: dict[str, Any]) -> str:
    """The plan as a table a person reads."""
    lines = []
    for gpu in result["gpus"]:
        lines.append(f"{gpu['name']}: {gpu['memory_gb']:g} GB, alert at "
                     f"{gpu['alert_threshold']:.0%} ({gpu['alert_line_gb']:g} GB), "
                     f"{result['sessions']} session(s) per model")
        lines.append(f"  {'endpoint':<16}{'loading':<12}{'device':<8}{'weights':>9}"
                     f"{'kv':>7}{'total':>8}  model")
        for m in gpu["models"]:
            lines.append(f"  {m['endpoint']:<16}{m['loading']:<12}{m['device']:<8}"
                         f"{m['weights_gb']:>8.1f}G{m['kv_cache_gb']:>6.1f}G"
                         f"{m['total_gb']:>7.1f}G  {m['model']}")
        lines.append(f"  resident {gpu['resident_gb']:.1f} GB, free {gpu['free_gb']:.1f} GB, "
                     f"resident KV {gpu['kv_cache_gb']:.1f} GB, free after KV "
                     f"{gpu['free_after_kv_gb']:.1f} GB -> {gpu['verdict']}")
        for problem in gpu["problems"]:
            lines.append(f"  does not fit: {problem}")
        for name, n in gpu["max_sessions"].items():
            limit = gpu["context_limit"].get(name)
            context = gpu["max_context"][name]
            capped = " (the model's own limit)" if limit is not None and context == limit else ""
            lines.append(f"  {name}: up to {n} sessions at its context, or a context of "
                         f"{context} tokens{capped}, under the alert line")
            if name in gpu["zero_sessions"]:
                lines.append(f"    why zero: {gpu['zero_sessions'][name]}")
    if result["unplaced"]:
        names = ", ".join(m["endpoint"] for m in result["unplaced"])
        lines.append(f"not on a planned GPU (no `gpu` field): {names}")
    return "\n".join(lines)
