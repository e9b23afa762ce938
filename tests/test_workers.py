"""Multi-process serving: ``tier-router serve --workers 2`` as a real process tree.

The service does not expose its pid, so each answer is matched to the worker that gave it
through the connection itself: the client's local port is the remote port of exactly one
worker's socket (psutil). A reload reaching every worker, and SIGHUP to the parent, are
tested in ``test_reload.py``; here: both workers answer, and a worker that dies is replaced
by one that serves the reloaded model.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from tests.conftest import portfolio_yaml
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.processes import fresh_versions, serve, stop, wait_for


def workers(parent: int, port: int) -> set[int]:
    """Children of ``parent`` listening on ``port`` (uvicorn's workers, not helpers); a child
    that is gone by the time it is asked (a killed worker being reaped) is none."""
    found = set()
    for child in psutil.Process(parent).children():
        try:
            connections = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
               for c in connections):
            found.add(child.pid)
    return found


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


def _models_dir_copy(tmp_path: Path, source: Path, name: str) -> Path:
    folder = tmp_path / "models" / name
    shutil.copytree(source, folder)
    return folder


def test_a_killed_worker_returns_although_the_files_on_disk_no_longer_load(
    tmp_path: Path, other_model: Path
) -> None:
    """Issue 15: the replacement starts on the last good model (the state file's snapshot)
    although SIGHUP refused the broken files and the reloaded folder is gone."""
    model = _models_dir_copy(tmp_path, bundled_model_dir(), "start")
    served = tmp_path / "portfolio.yaml"
    served.write_text(portfolio_yaml(), encoding="utf-8")
    log = tmp_path / "serve.log"
    proc, url = serve("--workers", "2", "--model", str(model), "--portfolio", str(served),
                      "--feedback-log", str(tmp_path / "f.jsonl"), log=log,
                      env={"TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY,
                           "TIER_ROUTER_MODELS_DIR": str(tmp_path / "models")})
    port = int(url.rsplit(":", 1)[1])
    try:
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 2)
        shipped = fresh_versions(url, 1)
        # 1. a bad edit in place, refused by SIGHUP; a worker dies
        (model / "model.joblib").write_bytes(b"garbage")
        served.write_text("version: 1\ntiers: [\n", encoding="utf-8")
        os.kill(proc.pid, signal.SIGHUP)
        assert wait_for(lambda: log.read_text().count("SIGHUP reload refused") >= 2)
        pids = workers(proc.pid, port)
        os.kill(min(pids), signal.SIGKILL)
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 3, timeout=60)
        assert proc.poll() is None
        now = workers(proc.pid, port)
        assert len(now) == 2 and min(pids) not in now
        assert set.union(*every_worker_answers(url, now).values()) == shipped

        # 2. a reload to a folder that is then deleted; a worker dies
        served.write_text(portfolio_yaml(), encoding="utf-8")
        reloaded = _models_dir_copy(tmp_path, other_model, "reloaded")
        expected = load_artifact(reloaded).model_version
        answer = httpx.post(f"{url}/v1/admin/reload", json={"model_dir": str(reloaded)},
                            headers=ADMIN, timeout=30)
        assert answer.status_code == 200, answer.text
        assert wait_for(lambda: fresh_versions(url, 12) == {expected}, timeout=20)
        shutil.rmtree(reloaded)
        os.kill(max(now), signal.SIGKILL)
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 4, timeout=60)
        assert proc.poll() is None
        after = workers(proc.pid, port)
        assert len(after) == 2
        assert set.union(*every_worker_answers(url, after).values()) == {expected}
        routed = httpx.post(f"{url}/v1/route", json={"prompt": "hello there"}, timeout=10)
        assert routed.status_code == 200 and routed.json()["model_version"] == expected
    finally:
        stop(proc)


def test_workers_converge_although_the_folder_changes_after_the_reload(
    tmp_path: Path, other_model: Path
) -> None:
    """Issue 15: the follower loads what the reloading worker verified, not the folder that
    changed on disk before it looked (300 requests afterwards: one version)."""
    log = tmp_path / "serve.log"
    proc, url = serve("--workers", "2", "--feedback-log", str(tmp_path / "f.jsonl"), log=log,
                      env={"TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY,
                           "TIER_ROUTER_MODELS_DIR": str(tmp_path / "models")})
    try:
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 2)
        folder = _models_dir_copy(tmp_path, other_model, "m")
        expected = load_artifact(folder).model_version
        answer = httpx.post(f"{url}/v1/admin/reload", json={"model_dir": str(folder)},
                            headers=ADMIN, timeout=30)
        assert answer.status_code == 200, answer.text
        # before the other worker's next look at the state file (once a second)
        for child in folder.iterdir():
            shutil.copyfile(bundled_model_dir() / child.name, child)
        assert load_artifact(folder).model_version != expected
        assert wait_for(lambda: log.read_text().count("followed reload generation") >= 1,
                        timeout=20)
        seen = [httpx.get(f"{url}/readyz", timeout=10).json()["model_version"]
                for _ in range(300)]
        assert set(seen) == {expected}, {v: seen.count(v) for v in set(seen)}
    finally:
        stop(proc)


def test_a_replacement_that_cannot_start_leaves_the_rest_serving(tmp_path: Path) -> None:
    """Issue 15: with the snapshots gone too, the replacement fails to start; the parent goes
    on with the other worker, says so, and tries again until the files load."""
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    served = tmp_path / "portfolio.yaml"
    served.write_text(portfolio_yaml(), encoding="utf-8")
    log = tmp_path / "serve.log"
    proc, url = serve("--workers", "2", "--model", str(model), "--portfolio", str(served),
                      "--feedback-log", str(tmp_path / "f.jsonl"), log=log)
    port = int(url.rsplit(":", 1)[1])
    try:
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 2)
        pids = workers(proc.pid, port)
        state = Path(psutil.Process(min(pids)).environ()["TIER_ROUTER_STATE_FILE"])
        shutil.rmtree(state.parent / "snapshots")
        good = (model / "model.joblib").read_bytes()
        (model / "model.joblib").write_bytes(b"garbage")
        os.kill(min(pids), signal.SIGKILL)
        assert wait_for(lambda: "serving with 1 of 2 workers" in log.read_text(), timeout=60)
        assert proc.poll() is None
        for _ in range(20):
            routed = httpx.post(f"{url}/v1/route", json={"prompt": "hello"}, timeout=10)
            assert routed.status_code == 200
        (model / "model.joblib").write_bytes(good)
        assert wait_for(lambda: log.read_text().count("tier-router ready") == 3, timeout=60)
        assert wait_for(lambda: len(workers(proc.pid, port)) == 2, timeout=30)
    finally:
        stop(proc)
