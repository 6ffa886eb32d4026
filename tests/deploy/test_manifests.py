"""Offline validation of deploy/k8s: the base and both overlays render with `kubectl kustomize`;
built-in resources validate against the Kubernetes schemas (kubernetes-validate, strict);
Strimzi, CloudNativePG and prometheus-operator resources against the openAPIV3Schema of their
CRDs in deploy/schemas; topics, rules and dashboards cannot drift from the code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from airgrid.topics import ALL_TOPICS
from tests.deploy.kubectl import Manifest, kustomize

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy/schemas/crds"
K8S_VERSION = "1.31.0"


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


CRD_SCHEMAS = _crd_schemas()


def validate(manifest: Manifest) -> None:
    key = (manifest["apiVersion"], manifest["kind"])
    if key in CRD_SCHEMAS:
        jsonschema.Draft7Validator(CRD_SCHEMAS[key]).validate(manifest)
    else:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


K8S = ROOT / "deploy/k8s"


@pytest.fixture(scope="module", params=["overlays/dev", "overlays/prod"])
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return kustomize(K8S / request.param)


@pytest.fixture(scope="module", params=["base", "overlays/dev", "overlays/prod"])
def any_rendering(request: pytest.FixtureRequest) -> list[Manifest]:
    return kustomize(K8S / request.param)


def _by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def test_every_rendered_manifest_validates(any_rendering: list[Manifest]) -> None:
    failures = []
    for manifest in any_rendering:
        try:
            validate(manifest)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {error}"[:500])
    assert not failures, "\n".join(failures)


def test_each_overlay_is_the_whole_system_in_one_namespace(rendered: list[Manifest]) -> None:
    kinds = {m["kind"] for m in rendered}
    assert {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "NetworkPolicy", "ConfigMap", "Job", "Kafka", "KafkaNodePool", "KafkaTopic", "Cluster",
        "ServiceMonitor", "PrometheusRule", "Namespace",
    } <= kinds  # fmt: skip
    namespaces = {m["metadata"].get("namespace") for m in rendered if m["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces


def test_custom_resources_all_have_a_crd_schema(rendered: list[Manifest]) -> None:
    builtin_groups = ("v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2")
    custom = {
        (m["apiVersion"], m["kind"])
        for m in rendered
        if m["apiVersion"] not in builtin_groups and not m["apiVersion"].endswith(".k8s.io/v1")
    }
    assert custom <= set(CRD_SCHEMAS), custom - set(CRD_SCHEMAS)


def test_validation_rejects_typos_in_builtin_and_custom_resources(
    rendered: list[Manifest],
) -> None:
    deployment = copy.deepcopy(_by_kind(rendered, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    topic = copy.deepcopy(_by_kind(rendered, "KafkaTopic")[0])
    topic["spec"]["partition"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate(topic)
    cluster = copy.deepcopy(_by_kind(rendered, "Cluster")[0])
    cluster["spec"]["instances"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        validate(cluster)


def test_deployments_are_probed_sized_and_locked_down(rendered: list[Manifest]) -> None:
    deployments = _by_kind(rendered, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {
        "airgrid-registry", "airgrid-telemetry", "airgrid-dispatch",
    }  # fmt: skip
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["resources"]["requests"] and c["resources"]["limits"]
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
            assert sc["allowPrivilegeEscalation"] is False
            env = {e["name"]: e for e in c["env"]}
            assert "secretKeyRef" in env["DB_PASSWORD"]["valueFrom"]
            assert {"configMapRef": {"name": "airgrid-config"}} in c["envFrom"]
    selectors = {d["metadata"]["name"]: d["spec"]["selector"] for d in deployments}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"):
        names = {m["metadata"]["name"] for m in _by_kind(rendered, kind)}
        assert set(selectors) <= names, kind
    job = _by_kind(rendered, "Job")[0]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_hpa_never_scales_a_consumer_past_its_partitions(rendered: list[Manifest]) -> None:
    partitions = {t.name: t.partitions for t in ALL_TOPICS}
    limits = {
        "airgrid-telemetry": partitions["airgrid.telemetry.raw"],
        "airgrid-dispatch": partitions["airgrid.incidents"],
    }
    for hpa in _by_kind(rendered, "HorizontalPodAutoscaler"):
        name = hpa["metadata"]["name"]
        assert hpa["spec"]["maxReplicas"] <= limits.get(name, 100), name


def test_kafka_topics_are_the_topic_table(rendered: list[Manifest]) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in _by_kind(rendered, "KafkaTopic")}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for topic in ALL_TOPICS:
        spec = topics[topic.name]
        assert spec["partitions"] == topic.partitions
        for key, value in topic.configs.items():
            assert spec["config"][key] == value
    cluster = _by_kind(rendered, "Kafka")[0]["metadata"]["name"]
    assert all(
        t["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        for t in _by_kind(rendered, "KafkaTopic")
    )


def test_rules_and_dashboards_in_the_cluster_are_the_repository_files(
    rendered: list[Manifest],
) -> None:
    rule = _by_kind(rendered, "PrometheusRule")[0]
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    configmap = next(m for m in rendered if m["metadata"]["name"] == "airgrid-grafana-dashboards")
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert set(configmap["data"]) == {p.name for p in files}
    for path in files:
        assert json.loads(configmap["data"][path.name]) == json.loads(path.read_text())


def test_services_scraped_by_the_servicemonitor_expose_the_named_port(
    rendered: list[Manifest],
) -> None:
    monitor = _by_kind(rendered, "ServiceMonitor")[0]
    wanted = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    ports = {
        s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]}
        for s in _by_kind(rendered, "Service")
    }
    assert wanted <= set(ports)
    assert all(monitor["spec"]["endpoints"][0]["port"] in ports[name] for name in wanted)
