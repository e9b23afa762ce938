"""Admin operations need an admin key, always; a reload loads only model folders and
portfolios from configured places, never group- or world-writable ones, and its refusals never
quote a file they could not parse (issue 15, item 3)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.errors import ConfigError
from classifier_service.routing.artifact import bundled_model_dir
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.conftest import portfolio_yaml
from tests.support.admin import ADMIN, ADMIN_KEY

SECRET = "root:$6$very-secret-hash:19000:0:99999:7:::"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def admin(runtime: Runtime, tmp_path: Path, models: Path) -> Iterator[TestClient]:
    portfolios = tmp_path / "portfolios"
    portfolios.mkdir()
    settings = Settings(admin_keys=ADMIN_KEY, models_dir=models, portfolios_dir=portfolios,
                        feedback_log=tmp_path / "f.jsonl")
    with TestClient(create_app(settings, runtime=runtime), headers=ADMIN) as c:
        yield c


def _msg(answer: object) -> str:
    detail = answer.json()["detail"]  # type: ignore[attr-defined]
    assert isinstance(detail, list)
    return str(detail[0]["msg"])


def test_admin_keys_alone_leave_the_api_open_and_admin_keyed(admin: TestClient) -> None:
    assert admin.post("/v1/route", json={"prompt": "hi"}, headers={}).status_code == 200
    assert admin.post("/v1/admin/reload", json={}, headers={"authorization": ""}
                      ).status_code == 401
    assert admin.post("/v1/admin/reload", json={}).status_code == 200


def test_start_up_says_admin_is_off(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tier_router"), \
            TestClient(create_app(Settings(), runtime=runtime)):
        pass
    lines = [r.getMessage() for r in caplog.records if "admin endpoints" in r.getMessage()]
    assert len(lines) == 1 and "TIER_ROUTER_ADMIN_KEYS" in lines[0]


def test_admin_keys_alone_do_not_open_the_network() -> None:
    with pytest.raises(ConfigError, match="TIER_ROUTER_API_KEYS"):
        Settings(host="0.0.0.0", admin_keys="a").check_exposure()


def test_shadow_is_refused_without_reading_it(admin: TestClient, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    for path in ("/etc/shadow", "/etc/passwd", str(secret)):
        answer = admin.post("/v1/admin/reload", json={"portfolio": path})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "portfolio"]
        assert "TIER_ROUTER_PORTFOLIOS_DIR" in _msg(answer)
        assert "root:" not in answer.text and "secret" not in answer.text.replace(
            str(secret), "")


def test_a_portfolio_in_the_folder_that_does_not_parse_is_not_quoted(
        admin: TestClient, tmp_path: Path) -> None:
    for name, text in (("yaml.yaml", SECRET + "\n  - [unclosed"),
                       ("mapping.yaml", f"version: 1\n{SECRET.split(':')[1]}: 1\ntiers: []\n"),
                       ("notmap.yaml", SECRET + "\n")):
        path = tmp_path / "portfolios" / name
        path.write_text(text, encoding="utf-8")
        answer = admin.post("/v1/admin/reload", json={"portfolio": str(path)})
        assert answer.status_code == 422, answer.text
        assert str(path) in _msg(answer)
        assert "very-secret-hash" not in answer.text and "unclosed" not in answer.text
        assert "previous model keeps serving" in _msg(answer)


def test_model_folders_only_from_the_models_dir(admin: TestClient, models: Path,
                                                tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(bundled_model_dir(), outside)
    answer = admin.post("/v1/admin/reload", json={"model_dir": str(outside)})
    assert answer.status_code == 422 and "TIER_ROUTER_MODELS_DIR" in _msg(answer)
    # a link under the folder to a folder elsewhere is elsewhere
    (models / "link").symlink_to(outside)
    answer = admin.post("/v1/admin/reload", json={"model_dir": str(models / "link")})
    assert answer.status_code == 422 and "TIER_ROUTER_MODELS_DIR" in _msg(answer)
    inside = models / "m1"
    shutil.copytree(bundled_model_dir(), inside)
    inside.chmod(0o755)
    for child in inside.iterdir():
        child.chmod(0o644)
    assert admin.post("/v1/admin/reload", json={"model_dir": str(inside)}).status_code == 200
    # the bundled model is always allowed
    assert admin.post("/v1/admin/reload", json={"model_dir": str(bundled_model_dir())}
                      ).status_code == 200


@pytest.mark.parametrize("target", ["folder", "file"])
def test_group_or_world_writable_model_folders_are_refused(
        admin: TestClient, models: Path, target: str) -> None:
    inside = models / "m1"
    shutil.copytree(bundled_model_dir(), inside)
    inside.chmod(0o755)
    for child in inside.iterdir():
        child.chmod(0o644)
    (inside if target == "folder" else inside / "model.joblib").chmod(
        0o777 if target == "folder" else 0o666)
    answer = admin.post("/v1/admin/reload", json={"model_dir": str(inside)})
    assert answer.status_code == 422, answer.text
    assert "writable by group or others" in _msg(answer)


def test_a_portfolio_from_the_portfolios_dir_reloads(admin: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "portfolios" / "p.yaml"
    path.write_text(portfolio_yaml(max_prompt_chars=50), encoding="utf-8")
    path.chmod(0o644)
    assert admin.post("/v1/admin/reload", json={"portfolio": str(path)}).status_code == 200
    assert admin.post("/v1/route", json={"prompt": "x" * 51}).status_code == 413
    path.chmod(0o666)
    answer = admin.post("/v1/admin/reload", json={"portfolio": str(path)})
    assert answer.status_code == 422 and "writable by group or others" in _msg(answer)
