"""An outcome model folder whose arrays do not fit this version (a check trained on another
feature list, router arrays from another vocabulary) is refused at load, by ``tier-router
check`` and by a reload, which keeps the old model. Each broken folder here is a real model
(trained on synthetic records) with one array rewritten and its sha256 put right, so that the
checksum passes and the layout check is what answers."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.routing.answer_features import feature_names
from classifier_service.routing.outcome_model import OutcomeModel, OutcomeModelError
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.support.admin import ADMIN, ADMIN_KEY
from tests.support.outcomes import LOOPBACK, TIERS

Arrays = dict[str, np.ndarray]
RETRAIN = "retrain with `tier-router train --outcomes`"


def rewritten(outcome_model_dir: Path, out: Path, change: Callable[[Arrays], None]) -> Path:
    """A copy of the folder with ``change`` applied to its arrays and the new weights.npz's
    sha256 written into metadata.json."""
    shutil.copytree(outcome_model_dir, out)
    with np.load(out / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(out / "weights.npz", **arrays)
    meta = json.loads((out / "metadata.json").read_text())
    meta["files"]["weights.npz"] = hashlib.sha256((out / "weights.npz").read_bytes()).hexdigest()
    (out / "metadata.json").write_text(json.dumps(meta))
    return out


def truncate_check(arrays: Arrays) -> None:
    arrays["check_w"] = arrays["check_w"][:-1]


def drop_a_tier_column(arrays: Arrays) -> None:
    arrays["router_w"] = arrays["router_w"][:, :-1]


def test_a_check_of_another_feature_layout_is_refused(outcome_model_dir: Path,
                                                      tmp_path: Path) -> None:
    features = len(feature_names(TIERS))
    assert OutcomeModel.load(outcome_model_dir).has_check
    broken = rewritten(outcome_model_dir, tmp_path / "m", truncate_check)
    with pytest.raises(OutcomeModelError) as refused:
        OutcomeModel.load(broken)
    assert str(refused.value) == (f"{broken / 'weights.npz'}: the check has {features - 1} "
                                  f"features (check_w), this version computes {features}: "
                                  f"{RETRAIN}")

    def short_mean(arrays: Arrays) -> None:
        arrays["check_mean"] = np.append(arrays["check_mean"], 0.0)

    other = rewritten(outcome_model_dir, tmp_path / "n", short_mean)
    with pytest.raises(OutcomeModelError, match=rf"the check has {features + 1} features "
                       rf"\(check_mean\), this version computes {features}"):
        OutcomeModel.load(other)


def test_router_arrays_that_do_not_fit_are_refused(outcome_model_dir: Path, tmp_path: Path) -> None:
    vocabulary = len(json.loads((outcome_model_dir / "vocabulary.json").read_text()))
    broken = rewritten(outcome_model_dir, tmp_path / "w", drop_a_tier_column)
    with pytest.raises(OutcomeModelError) as refused:
        OutcomeModel.load(broken)
    assert str(refused.value) == (
        f"{broken / 'weights.npz'}: the array router_w has shape ({vocabulary}, 2), expected "
        f"({vocabulary}, 3) for the {vocabulary} features of vocabulary.json by the 3 tiers: "
        f"the files do not belong together; {RETRAIN}")

    def short_idf(arrays: Arrays) -> None:
        arrays["idf"] = arrays["idf"][:-2]

    with pytest.raises(OutcomeModelError, match=rf"idf has shape \({vocabulary - 2},\), "
                       rf"expected \({vocabulary},\) for the {vocabulary} features of "
                       "vocabulary.json"):
        OutcomeModel.load(rewritten(outcome_model_dir, tmp_path / "i", short_idf))

    def no_fill(arrays: Arrays) -> None:
        del arrays["router_dense_fill"]

    with pytest.raises(OutcomeModelError,
                       match=f"the array router_dense_fill is missing: {RETRAIN}"):
        OutcomeModel.load(rewritten(outcome_model_dir, tmp_path / "f", no_fill))

    def one_more_dense(arrays: Arrays) -> None:
        arrays["router_dense_w"] = np.vstack([arrays["router_dense_w"], np.zeros((1, 3))])

    dense = len(OutcomeModel.load(outcome_model_dir).metadata["router"]["dense_features"])
    with pytest.raises(OutcomeModelError, match=rf"router_dense_w has shape \({dense + 1}, 3\), "
                       rf"expected \({dense}, 3\) for the {dense} dense features by the 3 tiers"):
        OutcomeModel.load(rewritten(outcome_model_dir, tmp_path / "d", one_more_dense))


def test_check_and_start_up_refuse_it(outcome_model_dir: Path, outcome_portfolio: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = rewritten(outcome_model_dir, tmp_path / "m", truncate_check)
    with pytest.raises(OutcomeModelError, match="the check has"):
        Runtime.load(outcome_portfolio, broken)  # what serve --model DIR loads at start-up
    assert main(["check", "--portfolio", str(outcome_portfolio), "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"tier-router: error: {broken / 'weights.npz'}: the check has" in err
    assert "Traceback" not in err


def test_reload_refuses_it_and_keeps_the_old_model(outcome_model_dir: Path, outcome_portfolio: Path,
                                                   tmp_path: Path) -> None:
    models = tmp_path / "models"
    good = models / "good"
    shutil.copytree(outcome_model_dir, good)
    broken = rewritten(outcome_model_dir, models / "broken", truncate_check)
    wrong_router = rewritten(outcome_model_dir, models / "router", drop_a_tier_column)
    app = create_app(Settings(portfolio=outcome_portfolio, model_dir=good,
                              feedback_log=tmp_path / "f.jsonl", admin_keys=ADMIN_KEY,
                              models_dir=models, portfolios_dir=tmp_path))
    with TestClient(app, client=LOOPBACK, headers=ADMIN) as client:
        version = client.get("/readyz").json()["model_version"]
        assert version == OutcomeModel.load(good).model_version
        r = client.post("/v1/admin/reload", json={"model_dir": str(broken)})
        assert r.status_code == 422, r.text
        assert "this version computes" in r.text and "tier-router train --outcomes" in r.text
        r = client.post("/v1/admin/reload", json={"model_dir": str(wrong_router)})
        assert r.status_code == 422 and "the array router_w has shape (" in r.text, r.text
        assert client.get("/readyz").json()["model_version"] == version
        routed = client.post("/v1/route", json={"prompt": "Translate 'cat' into French."})
        assert routed.status_code == 200 and routed.json()["model_version"] == version
