from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.support.admin import ADMIN_KEY
from tests.support.gateway import Stack, portfolio
from tests.support.rows import small_rows

if TYPE_CHECKING:
    from tests.doubles import FakeNvidiaSmi
    from tests.llama import LlamaServers

DEFAULT_PORTFOLIO = bundled_portfolio_path()


@pytest.fixture(autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory,
                monkeypatch: pytest.MonkeyPatch) -> None:
    """The default outcomes folder and feedback log go under a temporary folder, not ~."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "state"))


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvidiaSmi:
    """A fake ``nvidia-smi`` first on ``PATH``, showing no GPU line until told."""
    from tests.doubles import FakeNvidiaSmi

    smi = FakeNvidiaSmi(tmp_path / "fake-bin")
    monkeypatch.setenv("PATH", f"{smi.folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return smi


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    return Runtime.load(bundled_portfolio_path(), bundled_model_dir())


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(Settings(), runtime=runtime)
    with TestClient(app) as c:
        yield c


def portfolio_yaml(**policy: object) -> str:
    """The bundled portfolio text, with its policy line replaced by ``policy``."""
    text = DEFAULT_PORTFOLIO.read_text(encoding="utf-8")
    if policy:
        inline = ", ".join(f"{k}: {json.dumps(v)}" for k, v in policy.items())
        text = text.replace("policy: {max_prompt_chars: 64000, max_batch: 256}",
                            f"policy: {{{inline}}}")
    return text


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The service over real uvicorn, its backends a fake Ollama and a fake OpenAI server."""
    from tests.doubles import fake_ollama, fake_openai, running

    fake_o, fake_a = fake_ollama(), fake_openai()
    with running(fake_o.app) as o_url, running(fake_a.app) as a_url:
        fake_o.url, fake_a.url = o_url, a_url
        path = tmp_path / "portfolio.yaml"
        path.write_text(portfolio(o_url, a_url, "http://127.0.0.1:9"), encoding="utf-8")
        app = create_app(Settings(portfolio=path, feedback_log=tmp_path / "f.jsonl",
                                  admin_keys=ADMIN_KEY, portfolios_dir=tmp_path))
        with running(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                max_retries=0) as client:
            yield Stack(url, fake_o, fake_a, client)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different model with the standard tiers."""
    from tier_router_training.train import train

    tmp = tmp_path_factory.mktemp("other")
    data = write_jsonl(tmp / "d.jsonl", small_rows())
    return train([data], tmp / "model", folds=2).artifact.path


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServers]:
    """Real llama.cpp servers (``tests/llama.py``): a skip without them, a failure under CI."""
    from tests.llama import llama_servers

    with llama_servers(tmp_path_factory.mktemp("llama")) as servers:
        yield servers


@pytest.fixture(scope="module")
def outcome_portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portfolio of the outcome tests' three tiers (tests/support/outcomes.py)."""
    from tests.support.outcomes import portfolio_text

    path = tmp_path_factory.mktemp("portfolio") / "portfolio.yaml"
    path.write_text(portfolio_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def outcome_model_dir(tmp_path_factory: pytest.TempPathFactory, outcome_portfolio: Path) -> Path:
    """An outcome model trained with ``tier-router train --outcomes`` on the synthetic
    records of tests/support/outcomes.py."""
    from tests.support.outcomes import records, train

    return train(tmp_path_factory.mktemp("model"), records(), outcome_portfolio)
