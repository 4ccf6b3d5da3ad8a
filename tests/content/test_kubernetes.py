"""The Kubernetes manifests (deploy/k8s, issue 15) are valid for a pinned Kubernetes and safe.

Validated offline with kubernetes-validate against the API schemas of K8S_VERSION, strictly (an
unknown field is an error), and checked for what the service needs: three replicas and a
disruption budget, probes on /readyz and /healthz, a non-root read-only container, secrets by
reference only, metrics files on an emptyDir, ingress from the ingress controller only, egress
to DNS, PostgreSQL and HTTPS only, and the migration as a Job.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds_service.config import ENV_VARS
from cds_service.shipped import SERVE_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"


def _documents() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            found[document["kind"]] = document
    return found


DOCS = _documents()


def test_every_manifest_file_is_listed_in_the_kustomization():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert present == listed


@pytest.mark.parametrize("kind", sorted(DOCS))
def test_manifest_is_valid_for_the_pinned_kubernetes(kind):
    kubernetes_validate.validate(DOCS[kind], K8S_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest():
    broken = copy.deepcopy(DOCS["Deployment"])
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = copy.deepcopy(DOCS["Deployment"])
    unknown["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def _container(kind: str) -> dict[str, Any]:
    spec = DOCS[kind]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return container


def test_deployment_is_replicated_probed_and_bounded():
    deployment = DOCS["Deployment"]
    assert deployment["spec"]["replicas"] >= 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    api = _container("Deployment")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(api["resources"]["requests"])
    assert {"cpu", "memory"} <= set(api["resources"]["limits"])


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_containers_run_non_root_on_a_read_only_root(kind):
    pod = DOCS[kind]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 1000
    assert pod["automountServiceAccountToken"] is False
    context = _container(kind)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


def test_secrets_are_referenced_never_written_down():
    assert "Secret" not in DOCS
    for kind in ("Deployment", "Job"):
        sources = _container(kind)["envFrom"]
        assert {"secretRef": {"name": "lumbar-cds-secrets"}} in sources
    config = DOCS["ConfigMap"]["data"]
    for name in ("CDS_DATABASE_URL", "CDS_PSEUDONYM_KEY", "CDS_REPORT_TOKEN"):
        assert name not in config


def test_config_names_only_settings_the_service_reads():
    entrypoint = set(re.findall(r"CDS_[A-Z0-9_]+", SERVE_SCRIPT.read_text()))
    config = DOCS["ConfigMap"]["data"]
    names = {key for key in config if key.startswith("CDS_")}
    assert names <= set(ENV_VARS) | entrypoint
    assert config["CDS_ENV"] == "production"
    assert config["CDS_PUBLIC_BASE_URL"].startswith("https://")


def test_metrics_files_live_on_an_empty_dir():
    directory = DOCS["ConfigMap"]["data"]["PROMETHEUS_MULTIPROC_DIR"]
    pod = DOCS["Deployment"]["spec"]["template"]["spec"]
    mount = next(m for m in _container("Deployment")["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume


def test_disruption_budget_and_autoscaler_keep_three_replicas():
    labels = DOCS["Deployment"]["spec"]["selector"]["matchLabels"]
    assert DOCS["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert DOCS["PodDisruptionBudget"]["spec"]["minAvailable"] >= 2
    hpa = DOCS["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == DOCS["Deployment"]["metadata"]["name"]
    assert hpa["minReplicas"] >= 3 and hpa["maxReplicas"] > hpa["minReplicas"]


def test_network_policy_lets_in_the_ingress_only_and_out_dns_postgres_https():
    policy = DOCS["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    (source,) = ingress["from"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert ports == {53, 5432, 443}


def test_migrations_run_as_a_job_before_the_rollout():
    job = _container("Job")
    assert job["command"][-2:] == ["db", "upgrade"]
    assert DOCS["Job"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "CDS_DATABASE_AUTO_UPGRADE" not in DOCS["ConfigMap"]["data"]


def test_report_rollups_are_refreshed_by_a_cron_job_one_run_at_a_time():
    cron = DOCS["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][-2:] == ["report", "refresh"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == _container("Job")["image"]
