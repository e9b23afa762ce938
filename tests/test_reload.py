"""Hot reload (admin endpoint, SIGHUP, several workers) and the feedback log."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from classifier_service import reloading, snapshots
from classifier_service.app import create_app
from classifier_service.errors import ReloadNotPublished
from classifier_service.feedback import read_records
from classifier_service.portfolio.model import bundled_portfolio_path
from classifier_service.reloading import PUBLISH_TRIES, Reloader, publish_initial, read_state
from classifier_service.routing.artifact import bundled_model_dir, load_artifact
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from classifier_service.snapshots import Snapshot
from tests.conftest import portfolio_yaml
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.processes import fresh_versions, serve, stop, wait_for

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(feedback_log=tmp_path / "feedback.jsonl", admin_keys=ADMIN_KEY,
                              models_dir=tmp_path.parent, portfolios_dir=tmp_path))
    with TestClient(app, client=LOOPBACK, headers=ADMIN) as client:
        yield client


@pytest.mark.parametrize("field", ["model_dir", "portfolio"])
def test_reload_of_an_unusable_path_is_422(app_client: TestClient, field: str) -> None:
    r = app_client.post("/v1/admin/reload", json={field: "/tmp/" + "a" * 300})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]


def version(client: TestClient | httpx.Client) -> str:
    data: dict[str, str] = client.get("/readyz").json()
    return data["model_version"]


def test_admin_reload_swaps_model_and_portfolio(
    app_client: TestClient, other_model: Path, tmp_path: Path
) -> None:
    shipped = version(app_client)
    portfolio = tmp_path / "p.yaml"
    portfolio.write_text(portfolio_yaml(max_prompt_chars=50), encoding="utf-8")
    response = app_client.post("/v1/admin/reload", json={"model_dir": str(other_model),
                                                         "portfolio": str(portfolio)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == load_artifact(other_model).model_version != shipped
    assert body["generation"] == 1
    assert version(app_client) == body["model_version"]
    assert app_client.post("/v1/route", json={"prompt": "x" * 51}).status_code == 413
    # no body: reload the current paths
    again = app_client.post("/v1/admin/reload")
    assert again.status_code == 200 and again.json()["generation"] == 2


def test_broken_artifact_is_refused_and_the_old_model_keeps_serving(
    app_client: TestClient, tmp_path: Path
) -> None:
    before = version(app_client)
    broken = tmp_path / "broken"
    shutil.copytree(bundled_model_dir(), broken)
    (broken / "model.joblib").write_bytes(b"garbage")
    response = app_client.post("/v1/admin/reload", json={"model_dir": str(broken)})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "model_dir"]
    assert "checksum mismatch" in detail["msg"] and "previous model keeps serving" in detail["msg"]
    bad_portfolio = tmp_path / "bad.yaml"
    bad_portfolio.write_text("version: 1\ntiers: []\n", encoding="utf-8")
    response = app_client.post("/v1/admin/reload", json={"portfolio": str(bad_portfolio)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "portfolio"]
    assert version(app_client) == before
    assert app_client.post("/v1/route", json={"prompt": "hello"}).status_code == 200


def test_feedback_is_appended_durably(app_client: TestClient, tmp_path: Path) -> None:
    decision = app_client.post("/v1/route", json={"prompt": "tell me a story"}).json()
    ok = app_client.post("/v1/feedback", json={
        "request_id": decision["request_id"], "prompt": "tell me a story", "tier_used": "medium",
        "escalated": True, "final_tier": "complex"})
    assert ok.status_code == 200
    assert ok.json() == {"status": "recorded", "request_id": decision["request_id"]}
    private = app_client.post("/v1/feedback", json={"request_id": "r2", "label": "simple",
                                                    "prompt": ""})
    assert private.status_code == 200
    records, problems = read_records(tmp_path / "feedback.jsonl")
    assert problems == []
    first, second = records[0][1], records[1][1]
    assert first["final_tier"] == "complex" and first["escalated"] is True
    assert first["model_version"] == decision["model_version"] and "ts" in first
    assert "prompt" not in second  # the caller decides whether the text is kept


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"request_id": "x", "final_tier": "galaxy"}, "unknown tier 'galaxy'"),
        ({"request_id": "x", "tier_used": "simple"}, "give final_tier"),
        ({"final_tier": "simple"}, "request_id"),
        ({"request_id": "", "final_tier": "simple"}, "request_id"),
        ({"request_id": "x", "final_tier": "simple", "escalated": "perhaps"}, "escalated"),
    ],
)
def test_bad_feedback_is_422(app_client: TestClient, body: dict[str, object], needle: str) -> None:
    response = app_client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert needle in response.text


class Holder:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def two_workers(state_file: Path) -> tuple[Reloader, Reloader]:
    """Two workers' reloaders on one state file, both on generation 0 (the shipped model)."""
    portfolio, shipped = bundled_portfolio_path(), bundled_model_dir()
    publish_initial(state_file, portfolio, shipped)
    a, b = (Reloader(Holder(Runtime.load(portfolio, shipped)), state_file) for _ in range(2))
    return a, b


def test_a_sighup_before_a_worker_followed_a_reload_keeps_the_reloaded_model(
    tmp_path: Path, other_model: Path
) -> None:
    """Worker B gets the SIGHUP before its watcher saw worker A's admin reload: B reloads A's
    paths, not the ones A replaced (else every worker would follow B back to the old model)."""
    a, b = two_workers(tmp_path / "state" / "reload.json")
    a.reload(model_dir=other_model)
    expected = load_artifact(other_model).model_version
    b.reload()  # what a SIGHUP does, with B's watcher a second behind
    assert b.runtime.model_version == expected and b.runtime.model_dir == other_model
    a.follow()
    assert a.runtime.model_version == expected and a.generation == b.generation == 2
    # a SIGHUP once both are on one generation re-reads that generation's paths, as before
    b.reload()
    assert b.runtime.model_dir == other_model and b.generation == 3


def test_a_reload_published_while_another_was_loading_is_not_undone(
    tmp_path: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's SIGHUP reload reads generation 0 and loads the shipped model; meanwhile A's admin
    reload publishes generation 1. B must not publish the shipped model over it: it reloads on
    top of generation 1. Two reloads that name their paths and overlap are both as asked: the
    one that finishes last is the service's."""
    state_file = tmp_path / "state" / "reload.json"
    a, b = two_workers(state_file)
    real = snapshots.take_and_load
    loads: list[Path] = []

    def meanwhile(portfolio: Path, model_dir: Path, root: Path) -> tuple[Runtime, Snapshot]:
        loads.append(model_dir)
        if len(loads) == 1:  # B is loading...
            a.reload(model_dir=other_model)  # ...when A's reload publishes
        return real(portfolio, model_dir, root)

    monkeypatch.setattr(snapshots, "take_and_load", meanwhile)
    b.reload()
    shipped = bundled_model_dir()
    assert loads == [shipped, other_model, other_model]  # B's, A's, B's again on top of A's
    state = read_state(state_file)
    assert state is not None and (state.generation, state.model_dir) == (2, other_model)
    assert b.runtime.model_dir == other_model
    a.follow()
    assert a.runtime.model_dir == other_model and a.generation == b.generation == 2

    loads.clear()
    b.reload(model_dir=shipped, portfolio=bundled_portfolio_path())  # A reloads meanwhile
    assert loads == [shipped, other_model]  # not redone: both its paths were given
    state = read_state(state_file)
    assert state is not None and (state.generation, state.model_dir) == (4, shipped)


def test_a_reload_overtaken_again_and_again_follows_the_newest(
    tmp_path: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of B's loads is overtaken by another of A's reloads (X, then Y, then Z): B gives
    up loading after PUBLISH_TRIES and follows the newest; it never publishes X or Y over Z."""
    state_file = tmp_path / "state" / "reload.json"
    a, b = two_workers(state_file)
    folders = []
    for name in ("x", "y", "z"):
        shutil.copytree(other_model, tmp_path / name)
        folders.append(tmp_path / name)
    real = snapshots.take_and_load
    pending, inside_a = list(folders), [False]

    def meanwhile(portfolio: Path, model_dir: Path, root: Path) -> tuple[Runtime, Snapshot]:
        if not inside_a[0] and pending:  # one of B's loads: A publishes the next folder
            inside_a[0] = True
            try:
                a.reload(model_dir=pending.pop(0))
            finally:
                inside_a[0] = False
        return real(portfolio, model_dir, root)

    monkeypatch.setattr(snapshots, "take_and_load", meanwhile)
    reloaded = b.reload()
    assert PUBLISH_TRIES == 3 and not pending
    state = read_state(state_file)
    assert state is not None and (state.generation, state.model_dir) == (3, folders[2])
    assert reloaded.generation == b.generation == 3 and b.runtime.model_dir == folders[2]


def test_a_state_file_that_cannot_be_written_refuses_the_reload(
    tmp_path: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full while publishing: the reload is refused (503, not a 500), the worker keeps
    its model and its generation (so it still follows the next one), no snapshot is left."""
    state_file = tmp_path / "state" / "reload.json"
    a, b = two_workers(state_file)
    taken = set((state_file.parent / "snapshots").iterdir())

    def full(path: Path, state: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reloading, "write_state", full)
    with pytest.raises(ReloadNotPublished, match="could not be written") as refused:
        b.reload(model_dir=other_model)
    assert refused.value.status_code == 503 and "previous model keeps serving" in str(
        refused.value)
    assert b.generation == 0 and b.runtime.model_dir == bundled_model_dir()
    assert set((state_file.parent / "snapshots").iterdir()) == taken
    monkeypatch.undo()
    a.reload(model_dir=other_model)
    b.follow()
    assert b.generation == 1 and b.runtime.model_dir == other_model


def test_a_snapshot_pruned_before_it_was_published_is_taken_again(
    tmp_path: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many workers reloading at once, the others' publishes can prune a snapshot that is
    still loading; publishing it would name a folder that is gone (a restarted worker could
    not load it), so the reload takes it again."""
    state_file = tmp_path / "state" / "reload.json"
    _, b = two_workers(state_file)
    real = snapshots.take_and_load
    loads = [0]

    def pruned(portfolio: Path, model_dir: Path, root: Path) -> tuple[Runtime, Snapshot]:
        runtime, snapshot = real(portfolio, model_dir, root)
        loads[0] += 1
        if loads[0] == 1:
            snapshots.discard(snapshot)  # what another worker's prune does
        return runtime, snapshot

    monkeypatch.setattr(snapshots, "take_and_load", pruned)
    b.reload(model_dir=other_model)
    state = read_state(state_file)
    assert loads[0] == 2 and state is not None and state.snapshot is not None
    assert state.snapshot.model_dir.is_dir() and state.model_dir == other_model


def test_a_sighup_after_a_failed_follow_loads_the_published_paths(
    tmp_path: Path, other_model: Path
) -> None:
    """A worker that could not follow a generation (its snapshot and its folder were gone)
    still serves the old model; a SIGHUP once the folder is back loads the published paths,
    not the worker's own, which would take every worker back."""
    state_file = tmp_path / "state" / "reload.json"
    a, b = two_workers(state_file)
    deployed = tmp_path / "deployed"
    shutil.copytree(other_model, deployed)
    a.reload(model_dir=deployed)
    state = read_state(state_file)
    assert state is not None and state.snapshot is not None
    state.snapshot.model_dir.parent.rename(tmp_path / "snapshot-gone")
    deployed.rename(tmp_path / "folder-gone")
    b.follow()
    assert b.runtime.model_dir == bundled_model_dir() and b.generation == 1  # did not follow
    (tmp_path / "folder-gone").rename(deployed)
    b.reload()  # what a SIGHUP does
    assert b.runtime.model_dir == deployed
    assert b.runtime.model_version == load_artifact(other_model).model_version


# -- real processes ---------------------------------------------------------------------


class Hammer(threading.Thread):
    """Routes prompts on fresh connections until stopped; counts what failed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                r = httpx.post(f"{self.url}/v1/route", json={"prompt": "why is the sky blue"},
                               timeout=10)
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{r.status_code} {r.text[:100]}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(timeout=30)

    def answered_more(self, n: int) -> bool:
        """Wait until ``n`` more requests have been answered (however slow the machine)."""
        target = self.ok + n
        return wait_for(lambda: self.ok >= target or bool(self.failures), timeout=60)


def test_sighup_reloads_without_dropping_requests(tmp_path: Path, other_model: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), model)
    proc, url = serve("--model", str(model), "--feedback-log", str(tmp_path / "f.jsonl"),
                      log=tmp_path / "serve.log")
    hammer = Hammer(url)
    try:
        before = fresh_versions(url, 1)
        hammer.start()
        assert hammer.answered_more(5)
        for name in ("model.joblib", "metadata.json"):  # deploy the new model in place
            shutil.copy(other_model / name, model / f".{name}.new")
            (model / f".{name}.new").replace(model / name)
        proc.send_signal(signal.SIGHUP)
        expected = load_artifact(other_model).model_version
        assert wait_for(lambda: fresh_versions(url, 1) == {expected}), before
        assert hammer.answered_more(5)
    finally:
        hammer.finish()
        proc.terminate()
        proc.wait(timeout=20)
    assert hammer.failures == []


def test_every_worker_follows_a_reload(tmp_path: Path, other_model: Path) -> None:
    proc, url = serve("--workers", "2", "--feedback-log", str(tmp_path / "f.jsonl"),
                      log=tmp_path / "serve.log",
                      env={"TIER_ROUTER_ADMIN_KEYS": ADMIN_KEY,
                           "TIER_ROUTER_MODELS_DIR": str(other_model.parent)})
    expected = load_artifact(other_model).model_version
    hammer = Hammer(url)
    try:
        assert wait_for(lambda: len(fresh_versions(url, 1)) == 1)
        hammer.start()
        response = httpx.post(f"{url}/v1/admin/reload", json={"model_dir": str(other_model)},
                              headers=ADMIN, timeout=30)
        assert response.status_code == 200, response.text
        # fresh connections spread over the workers (not evenly: all 12 may reach one)
        assert wait_for(lambda: fresh_versions(url, 12) == {expected}, timeout=20)
        # SIGHUP to the parent reaches every worker, which reloads its current paths in place,
        # including a worker whose watcher has not followed the admin reload yet
        os.kill(proc.pid, signal.SIGHUP)
        assert wait_for(lambda: (tmp_path / "serve.log").read_text().count("reloaded: model")
                        >= 3, timeout=30)
        assert wait_for(lambda: fresh_versions(url, 12) == {expected}, timeout=30)
    finally:
        hammer.finish()
        stop(proc)
    assert hammer.failures == []


@pytest.mark.parametrize(("workers", "writers"), [(1, 4), (2, 16)])
def test_sigkill_while_writing_feedback_loses_no_acknowledged_record(
    tmp_path: Path, workers: int, writers: int
) -> None:
    log = tmp_path / "feedback.jsonl"
    proc, url = serve("--workers", str(workers), "--feedback-log", str(log),
                      log=tmp_path / "serve.log")
    acked: list[str] = []
    # kill once writes are under way on every path: a few dozen acknowledged (or 30 s)
    stop_at = time.monotonic() + 30

    def writer(n: int) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            i = 0
            while True:
                rid = f"w{n}-{i}"
                try:
                    r = client.post("/v1/feedback", json={
                        "request_id": rid, "final_tier": "simple", "prompt": "p" * 2000})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked.append(rid)
                i += 1

    threads = [threading.Thread(target=writer, args=(n,), daemon=True)
               for n in range(writers)]
    for t in threads:
        t.start()
    while len(acked) < 4 * writers and time.monotonic() < stop_at:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for t in threads:
        t.join(timeout=10)
    records, problems = read_records(log)
    present = {r["request_id"] for _, r in records}
    assert len(acked) > 10
    assert set(acked) <= present
    assert all("torn last line" in p for p in problems) and len(problems) <= 1
    for _, record in records:
        assert record["prompt"] == "p" * 2000
    # the next append after a torn line starts on a fresh line
    with log.open("ab") as fh:
        fh.write(b'{"request_id": "half')
    app = create_app(Settings(feedback_log=log))
    with TestClient(app) as client:
        assert client.post("/v1/feedback", json={"request_id": "after",
                                                 "final_tier": "simple"}).status_code == 200
    records, problems = read_records(log)
    assert records[-1][1]["request_id"] == "after"
    assert any("not a JSON record" in p for p in problems)


def test_a_starting_worker_survives_an_early_sighup() -> None:
    """Until the lifespan installs the reload handler, a worker ignores SIGHUP (the default
    action would kill it); the lifespan then loads the current files anyway."""
    code = ("import os, signal\n"
            "from classifier_service.app import app_from_env\n"
            "app_from_env()\n"
            "os.kill(os.getpid(), signal.SIGHUP)\n"
            "print('alive')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr
