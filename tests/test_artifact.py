"""Model folders: refused on any mismatch, written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from classifier_service.errors import ModelArtifactError
from classifier_service.portfolio.model import parse_portfolio
from classifier_service.routing.artifact import (
    METADATA_FILE,
    MODEL_FILE,
    atomic_write,
    bundled_model_dir,
    load_artifact,
    sha256_file,
)
from classifier_service.runtime import Runtime


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), target)
    return target


def edit_metadata(model_dir: Path, **changes: object) -> None:
    path = model_dir / METADATA_FILE
    meta = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = meta
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(json.dumps(meta))


def test_bundled_model_loads_and_checksum_matches() -> None:
    artifact = load_artifact(bundled_model_dir())
    assert artifact.metadata["artifact"]["sha256"] == sha256_file(bundled_model_dir() / MODEL_FILE)
    assert artifact.model_version.startswith("tier-")


def test_garbage_model_file_is_refused(model_dir: Path) -> None:
    (model_dir / MODEL_FILE).write_bytes(b"not a pickle at all")
    with pytest.raises(ModelArtifactError, match="checksum mismatch"):
        load_artifact(model_dir)


def test_garbage_with_matching_checksum_is_refused(model_dir: Path) -> None:
    (model_dir / MODEL_FILE).write_bytes(b"not a pickle at all")
    edit_metadata(model_dir, artifact__sha256=sha256_file(model_dir / MODEL_FILE))
    with pytest.raises(ModelArtifactError, match="cannot load model"):
        load_artifact(model_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"libraries__scikit-learn": "1.2.2"}, "built with scikit-learn 1.2.2"),
        ({"features_version": 99}, "features version 99"),
        ({"format_version": 7}, "format_version 7 is not supported"),
        ({"labels__tier": ["a", "b"]}, "the tier head predicts"),
        ({"thresholds__confidence_threshold": "high"}, "must be a number"),
        ({"thresholds__confidence_threshold": 3}, r"must be in \[0, 1\]"),
    ],
)
def test_mismatched_metadata_is_refused(
    model_dir: Path, change: dict[str, object], message: str
) -> None:
    edit_metadata(model_dir, **change)
    with pytest.raises(ModelArtifactError, match=message) as info:
        load_artifact(model_dir)
    assert str(model_dir) in str(info.value)


def test_missing_pieces(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelArtifactError, match="model folder not found"):
        load_artifact(tmp_path / "nowhere")
    (model_dir / MODEL_FILE).unlink()
    with pytest.raises(ModelArtifactError, match="model file not found"):
        load_artifact(model_dir)
    (model_dir / METADATA_FILE).write_text("{broken")
    with pytest.raises(ModelArtifactError, match="unreadable metadata"):
        load_artifact(model_dir)
    (model_dir / METADATA_FILE).unlink()
    with pytest.raises(ModelArtifactError, match="metadata file not found"):
        load_artifact(model_dir)


def test_model_tiers_must_exist_in_the_portfolio(runtime: Runtime, tmp_path: Path) -> None:
    portfolio = parse_portfolio(
        "version: 1\ntiers:\n"
        "  - {name: small, endpoints: [{name: a, api: ollama, base_url: 'http://h:1', model: m}]}\n"
        "  - {name: large, endpoints: [{name: b, api: ollama, base_url: 'http://h:1', model: n}]}\n"
    )
    with pytest.raises(ModelArtifactError, match="does not define"):
        runtime.with_portfolio(portfolio, tmp_path / "p.yaml")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o644


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="cannot use this path"):
        load_artifact(tmp_path / ("a" * 300))  # longer than a file name may be
