"""The outcome model's folder, and the loader/scorer that serving uses.

A folder holds files and no code: ``metadata.json`` (format, tiers in cost order, record counts,
which tiers fall back to the classifier, the chosen operating point, library versions, each
file's sha256), ``weights.npz`` (plain arrays, loaded with ``allow_pickle=False``),
``vocabulary.json`` (the router's TF-IDF features in column order) and, when the check weighs
words, ``check_vocabulary.json``. Scoring needs numpy and the project's own feature code.

Router: per tier, ``P(good | prompt) = sigmoid(tfidf(prompt) @ W[:, t] + dense @ D[:, t] + b[t])``
where ``dense`` are the default classifier's tier/kind probabilities (the training mean where a
caller gives none). The decision is the cheapest tier whose score reaches its threshold, the
score being P(good) (router mode ``level``) or P(good) minus the best P(good) of a more
expensive learned tier (mode ``gain``: what going up would not add), whichever calibration chose;
a tier without a learned router (too few records) accepts when the classifier's top tier is at
or below it; the most expensive tier takes what is left.

Check: ``P(not good | prompt, answer, tier) = sigmoid(((x - mean) / std) @ w + b + words)``
over :func:`.answer_features.answer_vector`, where ``words`` is the TF-IDF of the answer's
unigrams and bigrams (``check_vocabulary.json``, when training chose to weigh words) times
their weights; its top signals are the largest terms of that sum (see
:mod:`.learned_check`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from classifier_service.features import FEATURES_VERSION, analyze
from classifier_service.routing.learned_check import CheckTerms, LearnedCheck
from classifier_service.routing.learned_check import sigmoid as _sigmoid
from classifier_service.routing.outcome_layout import OutcomeModelError as OutcomeModelError
from classifier_service.routing.outcome_layout import check_layout
from classifier_service.routing.tfidf_row import tfidf_row

FloatArray = npt.NDArray[np.float64]
FORMAT = "tier-router-outcomes"
FORMAT_VERSION = 2  # 2: the check may weigh the answer's words (check_vocabulary.json)
READS_VERSIONS = (1, 2)
WEIGHTS_FILE = "weights.npz"
VOCAB_FILE = "vocabulary.json"
CHECK_VOCAB_FILE = "check_vocabulary.json"
METADATA_FILE = "metadata.json"
LOGIT_CACHE = 1024
CLASSIFIER_DIR = "classifier"
CLASSIFIER_FILES = ("model.joblib", "metadata.json")  # the classifier it reads and falls back to


class ClassifierScores(Protocol):
    """What the default classifier says of a prompt (``classifier_service.classifier.Scores``)."""

    @property
    def tiers(self) -> dict[str, float]: ...

    @property
    def categories(self) -> dict[str, float] | None: ...


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_outcome_folder(model_dir: Path | str) -> bool:
    """Whether ``model_dir`` holds an outcome model (its metadata's ``format``)."""
    try:
        meta = json.loads((Path(model_dir) / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def model_version(meta: dict[str, Any]) -> str:
    """``outcomes-`` and 12 hex digits of what decides: the files, the operating point, the
    router mode and the calibration time (so every calibration gives a new version)."""
    keyed = {"files": meta.get("files"), "point": meta.get("operating_point"),
             "mode": (meta.get("router") or {}).get("mode"),
             "calibrated_at": meta.get("calibrated_at")}
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode())
    return "outcomes-" + digest.hexdigest()[:12]


def metadata_text(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def save_model(out_dir: Path, arrays: dict[str, Any], vocabulary: list[str],
               metadata: dict[str, Any], classifier_dir: Path | None = None,
               check_vocabulary: list[str] | None = None) -> Path:
    """Write the folder atomically: a temporary folder beside ``out_dir``, then a rename.

    ``classifier_dir``: the base classifier's folder, copied in as ``classifier/`` (its files'
    sha256 listed in ``files`` like the others, and checked at load)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
        np.savez(tmp / WEIGHTS_FILE, **named)
        (tmp / VOCAB_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False))
        names = [WEIGHTS_FILE, VOCAB_FILE]
        if check_vocabulary is not None:
            (tmp / CHECK_VOCAB_FILE).write_text(json.dumps(check_vocabulary, ensure_ascii=False))
            names.append(CHECK_VOCAB_FILE)
        base: dict[str, Any] | None = None
        if classifier_dir is not None:
            (tmp / CLASSIFIER_DIR).mkdir()
            for name in CLASSIFIER_FILES:
                shutil.copyfile(Path(classifier_dir) / name, tmp / CLASSIFIER_DIR / name)
                names.append(f"{CLASSIFIER_DIR}/{name}")
            base_meta = json.loads((tmp / CLASSIFIER_DIR / METADATA_FILE).read_text())
            base = {"dir": CLASSIFIER_DIR, "model_version": base_meta.get("model_version"),
                    "copied_from": str(Path(classifier_dir).resolve())}
        meta = dict(metadata, format=FORMAT, format_version=FORMAT_VERSION,
                    features_version=FEATURES_VERSION, classifier=base,
                    files={name: _sha256(tmp / name) for name in names})
        meta["model_version"] = model_version(meta)
        (tmp / METADATA_FILE).write_text(metadata_text(meta))
        tmp.chmod(0o755)
        old: Path | None = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


@dataclass(frozen=True)
class OutcomeChoice:
    """A routing decision of the outcome model: the tier, why, and P(good) per learned tier."""

    tier: str
    reason: Literal["outcome", "classifier"]
    detail: str
    p_good: dict[str, float]


class OutcomeModel:
    """A loaded outcome model: router probabilities, the decision, and the answer check."""

    def __init__(self, metadata: dict[str, Any], arrays: dict[str, FloatArray],
                 vocabulary: list[str], path: Path | None = None,
                 check_vocabulary: list[str] | None = None) -> None:
        check_layout(metadata, arrays, len(vocabulary), (path or Path()) / WEIGHTS_FILE,
                     None if check_vocabulary is None else len(check_vocabulary))
        self.metadata = metadata
        self.path = path
        self.tiers: tuple[str, ...] = tuple(metadata["tiers"])
        self.fallback: dict[str, str] = dict(metadata["router"]["fallback"])
        self._learned = [t not in self.fallback for t in self.tiers]
        self.router_mode: str = metadata["router"].get("mode", "level")
        self._vocab = {f: i for i, f in enumerate(vocabulary)}
        self._logits: dict[tuple[str, bool], FloatArray] = {}
        self._idf = arrays["idf"]
        self._w = arrays["router_w"]
        self._dense_w = arrays["router_dense_w"]
        self._dense_fill = arrays["router_dense_fill"]
        self._b = arrays["router_b"]
        # each dense feature as (reads the tier head?, label, value when the label is absent)
        self._dense_keys = [(head == "tier", label, fill) for (head, _, label), fill in zip(
            (name.partition(":") for name in metadata["router"]["dense_features"]),
            self._dense_fill.tolist(), strict=True)]
        point = metadata.get("operating_point") or {}
        self.router_thresholds: dict[str, float] = dict(
            point.get("router_thresholds") or {t: 0.5 for t in self.tiers})
        self.check_thresholds: dict[str, float] = dict(
            point.get("check_thresholds") or {t: 1.0 for t in self.tiers})
        check = metadata.get("check")
        self.learned_check: LearnedCheck | None = (
            LearnedCheck(self.tiers, check, arrays, check_vocabulary) if check else None)

    @classmethod
    def load(cls, model_dir: Path | str) -> OutcomeModel:
        """Load a folder, refusing a wrong format, features version, checksum or array
        layout (:func:`.outcome_layout.check_layout`)."""
        model_dir = Path(model_dir)
        meta_path = model_dir / METADATA_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise OutcomeModelError(meta_path, f"cannot read: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise OutcomeModelError(meta_path, f"not a {FORMAT} model")
        if meta.get("format_version") not in READS_VERSIONS:
            raise OutcomeModelError(meta_path, f"{FORMAT} version {meta.get('format_version')!r}"
                                    f"; this tier-router reads versions "
                                    f"{', '.join(map(str, READS_VERSIONS))}")
        if meta.get("features_version") != FEATURES_VERSION:
            raise OutcomeModelError(meta_path, f"trained with features version "
                                    f"{meta.get('features_version')}, this is {FEATURES_VERSION}")
        files = meta.get("files")
        if not isinstance(files, dict) or WEIGHTS_FILE not in files:
            raise OutcomeModelError(meta_path, "lists no checksummed files")
        for name, digest in files.items():
            path = model_dir / str(name)
            if not path.is_file():
                raise OutcomeModelError(path, "missing (metadata.json lists it)")
            if _sha256(path) != digest:
                raise OutcomeModelError(path, "checksum mismatch: the file is corrupt or "
                                        "belongs to another model")
        try:
            with np.load(model_dir / WEIGHTS_FILE, allow_pickle=False) as npz:
                arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in npz.files}
            vocabulary = json.loads((model_dir / VOCAB_FILE).read_text())
            words = (json.loads((model_dir / CHECK_VOCAB_FILE).read_text())
                     if CHECK_VOCAB_FILE in files else None)
            return cls(meta, arrays, vocabulary, model_dir, words)
        except OutcomeModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise OutcomeModelError(model_dir, f"unusable outcome model: {exc!r}") from None

    # --- router -------------------------------------------------------------------------
    def _dense(self, scores: ClassifierScores | None) -> FloatArray:
        if scores is None or not self._dense_keys:
            return self._dense_fill
        tiers, kinds = scores.tiers, scores.categories or {}
        return np.array([(tiers if tier else kinds).get(label, fill)
                         for tier, label, fill in self._dense_keys])

    def router_logits(self, prompt: str, scores: ClassifierScores | None = None) -> FloatArray:
        """One logit of P(good) per tier (fallback tiers' entries are meaningless zeros); the
        last prompts' are kept, so the gateway's check of an answer reuses its decision's."""
        key = (prompt, scores is None)
        cached = self._logits.get(key)
        if cached is not None:
            return cached
        z = self._router_logits(prompt, scores)
        if len(self._logits) >= LOGIT_CACHE:
            self._logits.clear()
        self._logits[key] = z
        return z

    def _router_logits(self, prompt: str, scores: ClassifierScores | None) -> FloatArray:
        features = getattr(scores, "features", None)
        idx, tf = tfidf_row(analyze(prompt) if features is None else features, self._vocab,
                            self._idf)
        z = self._b + self._dense(scores) @ self._dense_w
        if len(idx):
            z = z + tf @ self._w[idx]
        result: FloatArray = z
        return result

    def tier_probabilities(self, prompt: str, classifier_scores: ClassifierScores | None = None
                           ) -> dict[str, float]:
        """P(an answer at this tier is good enough), for every tier with a learned router."""
        z = self.router_logits(prompt, classifier_scores)
        return {t: _sigmoid(float(z[i])) for i, t in enumerate(self.tiers) if self._learned[i]}

    def decide(self, prompt: str, classifier_scores: ClassifierScores | None = None
               ) -> tuple[str, str]:
        """The cheapest tier likely enough to answer well, and why (:meth:`choose`)."""
        choice = self.choose(prompt, classifier_scores)
        return choice.tier, choice.detail

    @property
    def model_version(self) -> str:
        return str(self.metadata.get("model_version") or model_version(self.metadata))

    @property
    def classifier_dir(self) -> Path | None:
        """The base classifier's folder inside this one (None: the folder holds none)."""
        base = self.metadata.get("classifier")
        if self.path is None or not base:
            return None
        return self.path / str(base.get("dir", CLASSIFIER_DIR))

    def records_of(self, tier: str) -> int:
        return int((self.metadata.get("records") or {}).get(tier, {}).get("records", 0))

    def choose(self, prompt: str, scores: ClassifierScores | None = None,
               lowest: str | None = None, highest: str | None = None) -> OutcomeChoice:
        """The cheapest tier from ``lowest`` to ``highest`` (default: all) that the model
        accepts; the most expensive of them when none does. A thinly covered tier accepts when
        the classifier's top tier is at or below it (reason ``classifier``)."""
        z = self.router_logits(prompt, scores).tolist()
        lo = self.tiers.index(lowest) if lowest else 0
        hi = self.tiers.index(highest) if highest else len(self.tiers) - 1
        p = {t: _sigmoid(z[i]) for i, t in enumerate(self.tiers) if self._learned[i]}
        top = None
        if scores is not None and scores.tiers:
            top = max(scores.tiers, key=scores.tiers.__getitem__)
        head = "outcome model: P(good) " + ", ".join(f"{t} {v:.2f}" for t, v in p.items())
        notes: list[str] = []
        for i in range(lo, hi):
            tier = self.tiers[i]
            if not self._learned[i]:
                thin = f"tier {tier} has {self.records_of(tier)} records, too few"
                if top is not None and top in self.tiers and self.tiers.index(top) <= i:
                    return OutcomeChoice(tier, "classifier", "; ".join(
                        [head, *notes, f"outcome model: {thin}; classifier decides: its top "
                         f"tier {top} is at or below {tier}"]), p)
                notes.append(f"{thin}, the classifier's top tier {top} is above it")
                continue
            score, what = p[tier], f"{tier} {p[tier]:.2f}"
            above = [self.tiers[u] for u in range(i + 1, len(self.tiers)) if self._learned[u]]
            if self.router_mode == "gain" and above:
                best = max(p[u] for u in above)
                score, what = p[tier] - best, f"{tier} {p[tier]:.2f} - {best:.2f} above"
            th = self.router_thresholds.get(tier, 0.5)
            if score >= th:
                notes.append(f"{what} >= threshold {th:.2f}: {tier}")
                return OutcomeChoice(tier, "outcome", "; ".join([head, *notes]), p)
            notes.append(f"{what} < threshold {th:.2f}")
        tier = self.tiers[hi]
        return OutcomeChoice(tier, "outcome", "; ".join(
            [head, *notes, f"{tier}, the most expensive tier allowed"]), p)

    # --- check (routing/learned_check.py) --------------------------------------------------
    def _check(self) -> LearnedCheck:
        if self.learned_check is None:
            raise LookupError("this outcome model has no trained check (no answers in its records)")
        return self.learned_check

    def score_check(self, prompt: str, answer: str, tier: str, finish_reason: str | None = None,
                    avg_logprob: float | None = None,
                    classifier_scores: ClassifierScores | None = None) -> CheckTerms:
        """The learned check of one answer: its vector, P(not good) and every term's push."""
        check = self._check()
        if tier not in self.tiers:
            raise KeyError(f"tier {tier!r} is not one of {list(self.tiers)}")
        i = self.tiers.index(tier)
        kind = None
        if classifier_scores is not None and classifier_scores.categories:
            cats = classifier_scores.categories
            kind = max(cats, key=cats.__getitem__)
        logit = (float(self.router_logits(prompt, classifier_scores)[i])
                 if check.reads_router_logit else 0.0)
        return check.score(prompt, answer, i, kind, finish_reason, avg_logprob, logit)

    def check(self, prompt: str, answer: str, tier: str, finish_reason: str | None = None,
              avg_logprob: float | None = None, classifier_scores: ClassifierScores | None = None,
              top: int = 3) -> tuple[float, list[tuple[str, float]]]:
        """P(this answer is not good enough) and the signals that pushed it most (name, push)."""
        terms = self.score_check(prompt, answer, tier, finish_reason, avg_logprob,
                                 classifier_scores)
        return terms.p_bad, self._check().top_terms(terms, top)

    def top_terms(self, terms: CheckTerms, top: int = 3) -> list[tuple[str, float]]:
        return self._check().top_terms(terms, top)

    @property
    def uses_logprobs(self) -> bool:
        """Whether the check learned from answers with ``avg_logprob`` (then the gateways ask
        the servers for token logprobs)."""
        return self.learned_check is not None and self.learned_check.uses_logprobs

    @property
    def has_check(self) -> bool:
        """Whether the model learned an answer check (its records carried answers)."""
        return self.learned_check is not None

    @property
    def weighs_words(self) -> bool:
        """Whether the check weighs the answer's words (``check_vocabulary.json``)."""
        return self.learned_check is not None and self.learned_check.weighs_words

    def escalate(self, p_bad: float, tier: str) -> bool:
        """Whether the operating point sends an answer with this ``p_bad`` to the next tier."""
        return tier != self.tiers[-1] and p_bad > self.check_thresholds.get(tier, 1.0)
