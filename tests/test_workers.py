"""Multi-process serving: ``tier-router serve --workers 2`` as a real process tree.

The service does not expose its pid, so each answer is matched to the worker that gave it
through the connection itself: the client's local port is the remote port of exactly one
worker's socket (psutil). A reload reaching every worker, and SIGHUP to the parent, are
tested in ``test_reload.py``; here: both workers answer, and a worker that dies is replaced
by one that serves the reloaded model.
"""

from __future__ import annotations

import os
import signal
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

from classifier_service.routing.artifact import load_artifact
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.processes import serve, stop, wait_for


def workers(parent: int, port: int) -> set[int]:
    """Children of ``parent`` listening on ``port`` (uvicorn's workers, not helpers)."""
    return {child.pid for child in psutil.Process(parent).children()
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in child.net_connections(kind="tcp"))}


def answers_by_worker(url: str, pids: set[int], connections: int) -> dict[int, set[str]]:
    """``/readyz`` on ``connections`` fresh connections: worker pid -> model versions seen."""
    port = int(url.rsplit(":", 1)[1])
    seen: dict[int, set[str]] = defaultdict(set)
    for _ in range(connections):
        with httpx.Client(timeout=10) as client:
            response = client.get(f"{url}/readyz")
            assert response.status_code == 200, response.text
            local = response.extensions["network_stream"].get_extra_info("client_addr")[1]
            owner = [pid for pid in pids
                     if any(c.laddr and c.laddr.port == port and c.raddr
                            and c.raddr.port == local
                            for c in psutil.Process(pid).net_connections(kind="tcp"))]
            assert len(owner) == 1, f"connection from port {local} held by {owner}"
            seen[owner[0]].add(response.json()["model_version"])
    return seen


def every_worker_answers(url: str, pids: set[int]) -> dict[int, set[str]]:
    """Fresh connections until each worker has answered (the kernel picks which one)."""
    seen: dict[int, set[str]] = defaultdict(set)

    def all_seen() -> bool:
        for pid, versions in answers_by_worker(url, pids, 4).items():
            seen[pid] |= versions
        return set(seen) == pids

    assert wait_for(all_seen), f"only {sorted(seen)} of {sorted(pids)} answered"
    return seen


def test_two_workers_answer_and_a_killed_one_returns_with_the_reloaded_model(
    tmp_path: Path, other_model: Path
) -> None:
    log = tmp_path / "serve.log"
    proc, url = serve("--workers", "2", "--feedback-log", str(tmp_path / "f.jsonl"), log=log,
                      env={"TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY,
                           "TIER_ROUTER_MODELS_DIR": str(other_model.parent)})
    port = int(url.rsplit(":", 1)[1])
    try:
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 2)
        pids = workers(proc.pid, port)
        assert len(pids) == 2 and proc.pid not in pids

        # both workers take connections and answer
        seen = every_worker_answers(url, pids)
        shipped = set.union(*seen.values())
        assert len(shipped) == 1

        # reload through one worker; the other follows
        expected = load_artifact(other_model).model_version
        response = httpx.post(f"{url}/v1/admin/reload", json={"model_dir": str(other_model)},
                              headers=ADMIN, timeout=30)
        assert response.status_code == 200, response.text
        assert wait_for(lambda: set.union(*answers_by_worker(url, pids, 12).values())
                        == {expected})

        # a worker dies; uvicorn starts a new one, which loads the reloaded model
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(workers(proc.pid, port) - {victim}) == 2, timeout=60)
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 3, timeout=60)
        now = workers(proc.pid, port)
        assert victim not in now and len(now & pids) == 1
        assert set.union(*every_worker_answers(url, now).values()) == {expected}
        routed = httpx.post(f"{url}/v1/route", json={"prompt": "hello there"}, timeout=10)
        assert routed.status_code == 200 and routed.json()["model_version"] == expected
    finally:
        stop(proc)
