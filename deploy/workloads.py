"""The Kubernetes workloads of airgrid: a Deployment (and its Service and disruption budget) per
service, hardened containers reading the database from a Secret, and the migration Job.
Rendered to deploy/k8s/base/generated/ by `python -m deploy.generate`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airgrid.topics import INCIDENTS, TELEMETRY_RAW

IMAGE = "ghcr.io/airgrid/airgrid:1.0.0"
LABELS = {"app.kubernetes.io/part-of": "airgrid"}


@dataclass(frozen=True)
class Workload:
    """How one service runs: its port, size and how far it scales."""

    name: str
    port: int
    min_replicas: int
    max_replicas: int  # at most the partitions of the topic its consumer group reads
    cpu: tuple[str, str]  # request, limit
    memory: tuple[str, str]


WORKLOADS = (
    Workload("registry", 8001, 2, 4, ("100m", "500m"), ("256Mi", "512Mi")),
    Workload("telemetry", 8002, 3, TELEMETRY_RAW.partitions, ("250m", "1"), ("384Mi", "768Mi")),
    Workload("dispatch", 8003, 2, INCIDENTS.partitions, ("250m", "1"), ("512Mi", "1Gi")),
)


def _database_env() -> list[dict[str, Any]]:
    """AIRGRID_DATABASE_URL composed from the CloudNativePG app secret (never in a ConfigMap)."""
    secret = "airgrid-db-app"
    return [
        {
            "name": "DB_USER",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}},
        },
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
        },
        {
            "name": "AIRGRID_DATABASE_URL",
            "value": "postgresql+asyncpg://$(DB_USER):$(DB_PASSWORD)@airgrid-db-rw:5432/airgrid",
        },
    ]


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_spec(containers: list[dict[str, Any]], restart: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": "airgrid",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if restart:
        spec["restartPolicy"] = restart
    return spec


def _container(
    name: str, args: list[str], cpu: tuple[str, str], memory: tuple[str, str]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "envFrom": [{"configMapRef": {"name": "airgrid-config"}}],
        "env": [
            *_database_env(),
            {
                "name": "AIRGRID_ADMIN_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": "airgrid-admin", "key": "admin-key", "optional": True}
                },
            },
        ],
        "resources": {
            "requests": {"cpu": cpu[0], "memory": memory[0]},
            "limits": {"cpu": cpu[1], "memory": memory[1]},
        },
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def workload_manifests(w: Workload) -> list[dict[str, Any]]:
    name = f"airgrid-{w.name}"
    selector = {"app.kubernetes.io/name": name}
    labels = {**selector, "app.kubernetes.io/component": w.name, **LABELS}
    container = _container(w.name, ["serve", w.name, "--port", str(w.port)], w.cpu, w.memory)
    container["ports"] = [{"name": "http", "containerPort": w.port, "protocol": "TCP"}]
    probe = {"port": "http"}
    container["startupProbe"] = {
        "httpGet": {"path": "/healthz", **probe},
        "periodSeconds": 2,
        "failureThreshold": 60,
    }
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", **probe},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", **probe},
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 2,
    }
    pod = _pod_spec([container])
    pod["terminationGracePeriodSeconds"] = 30
    pod["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
    ]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": w.min_replicas,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod,
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": w.port, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": w.min_replicas,
                "maxReplicas": w.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def migration_job() -> dict[str, Any]:
    container = _container("migrate", ["db", "upgrade"], ("100m", "500m"), ("128Mi", "256Mi"))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "airgrid-migrate",
            "labels": {"app.kubernetes.io/name": "airgrid-migrate", **LABELS},
        },
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "airgrid-migrate", **LABELS}},
                "spec": _pod_spec([container], restart="OnFailure"),
            },
        },
    }
