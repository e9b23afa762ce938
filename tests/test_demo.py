"""``tier-router demo``: its portfolio, its errors before anything starts, and (with a real
llama.cpp server, marker ``real_server``) a routed answer, then Ctrl-C stopping every child."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from classifier_service.cli.demo import TIERS, LlamaServer, portfolio_yaml
from classifier_service.portfolio.model import load_portfolio
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.runtime import Runtime
from tests.conftest import free_port


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "classifier_service", "demo", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finished(*args: str) -> tuple[int, str]:
    proc = demo(*args)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_the_portfolio_loads_and_fits_the_bundled_model(tmp_path: Path) -> None:
    servers = [LlamaServer(t, f"smol-{n}", 9100 + i, n) for i, (t, n) in enumerate(TIERS)]
    path = tmp_path / "p.yaml"
    path.write_text(portfolio_yaml(servers), encoding="utf-8")
    portfolio = load_portfolio(path)
    assert portfolio.tier_names == ["simple", "medium", "complex"]
    assert [e.context_length for e in portfolio.all_endpoints()] == [1024, 2048, 4096]
    assert portfolio.endpoint("smol-2048").base_url == "http://127.0.0.1:9101/v1"
    assert Runtime.load(path, bundled_model_dir()).portfolio.tier_names == portfolio.tier_names


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = finished("--port", str(port))
        assert code == 2
        assert f"port {port} on 127.0.0.1 (--port, the gateway) is taken" in err
        code, err = finished("--port", str(free_port()), "--llama-base-port", str(port - 1))
        assert code == 2 and "(--llama-base-port, the medium llama.cpp server)" in err
    assert "Traceback" not in err


def test_a_missing_model_file_or_llama_cpp_is_a_clear_error(tmp_path: Path) -> None:
    code, err = finished("--port", str(free_port()), "--llama-base-port", str(free_port()),
                         "--model-file", str(tmp_path / "none.gguf"))
    assert code == 2 and f"the model file {tmp_path / 'none.gguf'} does not exist" in err
    code, err = finished("--port", str(free_port()), "--llama-base-port", str(free_port()),
                         "--llama-python", sys.executable)
    if "llama_cpp.server cannot be imported" not in err:  # this Python has the demo extra
        pytest.skip("llama_cpp is installed here: the missing-package error cannot be shown")
    assert code == 2 and "pip install '.[demo]'" in err and "Traceback" not in err


def consecutive_free_ports(n: int) -> int:
    """A port whose next ``n - 1`` ports are free too (the demo's llama.cpp servers)."""
    for _ in range(50):
        base = free_port()
        sockets = [socket.socket() for _ in range(n - 1)]
        try:
            for i, s in enumerate(sockets, start=1):
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports")


@pytest.mark.real_server
def test_demo_answers_then_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    from tests.llama import require_llama

    python, model = require_llama()
    port, base = free_port(), consecutive_free_ports(3)
    proc = demo("--port", str(port), "--llama-base-port", str(base), "--llama-python", python,
                "--model-file", str(model), "--workdir", str(tmp_path))
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # readline blocks; the demo prints or exits
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        assert "Ctrl-C stops everything" in lines[-1], (lines, proc.stderr)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # three llama.cpp servers and tier-router serve
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
            "model": "auto", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Is 'Great phone.' positive?"}]})
        assert r.status_code == 200 and r.json()["tier_router"]["endpoint"].startswith("smol-")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], [p.pid for p in alive]
        assert len(gone) == len(children)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
