"""The model artifact on disk: a joblib file and the metadata that vouches for it.

A model folder holds two files:

- ``model.joblib``: a dict ``{"format": 1, "vectorizer": TfidfVectorizer, "heads": {"tier":
  HEAD, "category": HEAD | None}}``, where a HEAD is a list of ``(weight, estimator)`` pairs,
  each estimator a fitted ``LogisticRegression`` or ``MultinomialNB`` over the same classes;
- ``metadata.json``: library versions, label sets, training-data hash, metrics, thresholds,
  and the sha256 of ``model.joblib``.

Loading checks the metadata first (format, feature version, scikit-learn version, checksum)
and refuses with a :class:`ModelArtifactError` on any mismatch, before a byte is unpickled.
Writing is atomic per file (temporary file, fsync, rename) and the metadata is written last,
so a reader never pairs a new model with old metadata without the checksum noticing.

joblib files are pickles: load only model folders you trust. The checksum guards against
corruption and mismatches, not against a malicious file with a matching metadata file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from importlib import resources
from pathlib import Path
from typing import Any

from classifier_service.errors import ModelArtifactError
from classifier_service.features import FEATURES_VERSION

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
TRACKED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")


@dataclass(frozen=True)
class Artifact:
    """A loaded model folder: the unpickled bundle and its metadata."""

    path: Path
    bundle: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def model_version(self) -> str:
        return str(self.metadata["model_version"])

    @property
    def tier_labels(self) -> list[str]:
        return list(self.metadata["labels"]["tier"])

    @property
    def confidence_threshold(self) -> float:
        return float(self.metadata["thresholds"]["confidence_threshold"])


def bundled_model_dir() -> Path:
    """The default model shipped inside the package."""
    return Path(str(resources.files("classifier_service") / "models" / "default"))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        versions[name] = pkg_metadata.version(name)
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600; a model is read by other users' services
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_artifact(out_dir: Path, bundle: dict[str, Any], metadata: dict[str, Any]) -> Artifact:
    """Write ``bundle`` and ``metadata`` into ``out_dir``; fills in checksum and versions.

    ``metadata`` must carry ``labels``, ``thresholds`` and may carry ``training_data`` and
    ``metrics``; this function adds ``format_version``, ``features_version``, ``libraries``,
    ``artifact`` and ``model_version``.
    """
    import joblib

    out_dir = Path(out_dir)
    model_path = out_dir / MODEL_FILE
    atomic_write(model_path, lambda tmp: joblib.dump(bundle, tmp, compress=3))
    digest = sha256_file(model_path)
    meta = {
        "format_version": FORMAT_VERSION,
        "features_version": FEATURES_VERSION,
        "model_version": metadata.get("model_version") or f"tier-{digest[:12]}",
        **{k: v for k, v in metadata.items() if k != "model_version"},
        "libraries": library_versions(),
        "artifact": {"file": MODEL_FILE, "sha256": digest},
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write(out_dir / METADATA_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return Artifact(path=out_dir, bundle=bundle, metadata=meta)


def update_metadata(model_dir: Path | str, changes: dict[str, Any]) -> dict[str, Any]:
    """Replace top-level metadata fields of a verified model folder, atomically.

    The model file is untouched, so its checksum and version stay; a service reading the
    folder sees either the old metadata or the new, never a mix.
    """
    artifact = load_artifact(model_dir)
    meta = {**artifact.metadata, **changes}
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write(Path(model_dir) / METADATA_FILE,
                 lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return meta


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """Read and check ``metadata.json`` of a model folder, without unpickling anything."""
    model_dir = Path(model_dir)
    meta_path = model_dir / METADATA_FILE
    try:
        if not model_dir.is_dir():
            raise ModelArtifactError(model_dir, "model folder not found")
        if meta_path.exists() and not meta_path.is_file():
            raise ModelArtifactError(meta_path, "metadata is not a regular file")
    except OSError as exc:  # e.g. a name too long for the file system
        raise ModelArtifactError(model_dir, f"cannot use this path: {exc.strerror or exc}"
                                 ) from None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelArtifactError(meta_path, "metadata file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(meta_path, f"unreadable metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelArtifactError(meta_path, "metadata must be a JSON object")
    for key in ("format_version", "features_version", "model_version", "labels", "thresholds",
                "libraries", "artifact"):
        if key not in meta:
            raise ModelArtifactError(meta_path, f"metadata lacks the field {key!r}")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelArtifactError(
            meta_path,
            f"format_version {meta['format_version']!r} is not supported "
            f"(this tier-router reads {FORMAT_VERSION})",
        )
    if meta["features_version"] != FEATURES_VERSION:
        raise ModelArtifactError(
            meta_path,
            f"the model was trained on features version {meta['features_version']!r}, this "
            f"tier-router computes version {FEATURES_VERSION}; retrain with `tier-router train`",
        )
    built = str(meta["libraries"].get("scikit-learn", "?"))
    installed = pkg_metadata.version("scikit-learn")
    if _minor(built) != _minor(installed):
        raise ModelArtifactError(
            meta_path,
            f"the model was built with scikit-learn {built}, this install has {installed}; "
            f"install scikit-learn~={_minor(built)}.0 or retrain with `tier-router train`",
        )
    labels = meta["labels"]
    if not isinstance(labels, dict) or not labels.get("tier"):
        raise ModelArtifactError(meta_path, "labels.tier must list the tier labels")
    try:
        threshold = float(meta["thresholds"]["confidence_threshold"])
    except (KeyError, TypeError, ValueError):
        raise ModelArtifactError(
            meta_path, "thresholds.confidence_threshold must be a number"
        ) from None
    if not 0.0 <= threshold <= 1.0:
        raise ModelArtifactError(meta_path, "thresholds.confidence_threshold must be in [0, 1]")
    return meta


def load_artifact(model_dir: Path | str) -> Artifact:
    """Load a model folder, refusing on any mismatch; see the module docstring."""
    import joblib

    model_dir = Path(model_dir)
    meta = read_metadata(model_dir)
    model_path = model_dir / str(meta["artifact"].get("file", MODEL_FILE))
    if not model_path.is_file():
        raise ModelArtifactError(model_path, "model file not found")
    digest = sha256_file(model_path)
    expected = meta["artifact"].get("sha256")
    if digest != expected:
        raise ModelArtifactError(
            model_path,
            f"checksum mismatch: the file's sha256 is {digest[:16]}..., metadata.json expects "
            f"{str(expected)[:16]}...; the file is corrupt or belongs to another model",
        )
    try:
        bundle = joblib.load(model_path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "unusable"
        raise ModelArtifactError(model_path, f"cannot load model: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT_VERSION:
        raise ModelArtifactError(model_path, "not a tier-router model bundle")
    _check_heads(model_path, bundle, meta)
    _check_kind_mix(model_path, bundle)
    return Artifact(path=model_dir, bundle=bundle, metadata=meta)


def _check_heads(model_path: Path, bundle: dict[str, Any], meta: dict[str, Any]) -> None:
    heads = bundle.get("heads")
    if not isinstance(heads, dict) or heads.get("tier") is None:
        raise ModelArtifactError(model_path, "the bundle has no tier head")
    for head, labels in (("tier", meta["labels"].get("tier")),
                         ("category", meta["labels"].get("category"))):
        members = heads.get(head)
        if members is None:
            if labels:
                raise ModelArtifactError(model_path, f"metadata lists {head} labels but the "
                                         f"bundle has no {head} head")
            continue
        if not isinstance(members, list) or not members or not all(
            isinstance(m, tuple | list) and len(m) == 2 and isinstance(m[0], float)
            and (hasattr(m[1], "coef_") or hasattr(m[1], "feature_log_prob_"))
            for m in members
        ):
            raise ModelArtifactError(model_path, f"the {head} head is not a list of "
                                     "(weight, fitted linear estimator) pairs")
        classes = [str(c) for c in members[0][1].classes_]
        if any([str(c) for c in est.classes_] != classes for _, est in members):
            raise ModelArtifactError(model_path, f"the experts of the {head} head disagree "
                                     "on their classes")
        if sorted(classes) != sorted(labels or []):
            raise ModelArtifactError(
                model_path,
                f"the {head} head predicts {classes}, metadata lists {labels}",
            )


def _check_kind_mix(model_path: Path, bundle: dict[str, Any]) -> None:
    """The optional ``tier_from_kinds`` entry must fit the two heads it joins."""
    spec = bundle.get("tier_from_kinds")
    if spec is None:
        return
    heads = bundle["heads"]
    problem = None
    try:
        kinds, tiers = list(spec["kinds"]), list(spec["tiers"])
        matrix, prior = spec["matrix"], spec["prior"]
        if heads.get("category") is None:
            problem = "it needs a category head"
        elif not 0 < float(spec["weight"]) <= 1:
            problem = "its weight must be in (0, 1]"
        elif sorted(kinds) != sorted(str(c) for c in heads["category"][0][1].classes_) or \
                sorted(tiers) != sorted(str(c) for c in heads["tier"][0][1].classes_):
            problem = "its kinds or tiers differ from the heads' labels"
        elif len(matrix) != len(kinds) or any(len(row) != len(tiers) for row in matrix) \
                or len(prior) != len(tiers) or min(prior) <= 0:
            problem = "its matrix or prior has the wrong shape or values"
    except (KeyError, TypeError, ValueError):
        problem = "it lacks weight, kinds, tiers, matrix or prior"
    if problem is not None:
        raise ModelArtifactError(model_path, f"tier_from_kinds is unusable: {problem}")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
