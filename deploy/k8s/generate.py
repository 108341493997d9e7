"""Generate deploy/k8s/generated/ from the code: ``make k8s`` (checked in; a test fails
when a file is out of date).

What the manifests must agree with lives in the code, so it is read from there instead of
being copied by hand:

- the topic catalogue (``pmm_contracts.topics``): a Strimzi ``KafkaTopic`` per topic and
  per dead-letter topic, with its partitions, cleanup policy and retention;
- the tenant model (``pmm_contracts.tenants``): each service's and seed organisation's
  ``KafkaUser`` with its ACLs;
- each service's subscriptions, read off the FastStream broker that ``create_app``
  builds (no broker or store is contacted): its consumer groups and the topics it reads,
  hence the Kafka lag triggers of its KEDA ``ScaledObject`` and its maximum replica count
  (the partitions of the topics it consumes), and a check that the ACLs grant them;
- each service's HTTP port (its settings) and version (its package), for the
  ``Deployment``, ``Service`` and image tag;
- the seed organisations (services/register/seed/organisations.json): their two signal
  topics and their ``KafkaUser``;
- deploy/observability/: the alert rules as a ``PrometheusRule`` and the Grafana
  dashboard as a ``ConfigMap`` for Grafana's dashboard sidecar.

Everything else (Kafka, MongoDB, the shared settings, the overlays) is written by hand.
Run: ``uv run --no-sync python deploy/k8s/generate.py [--check]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from pmm_contracts.tenants import (
    Grant,
    organisation_grants,
    organisation_principal,
    service_grants,
)
from pmm_contracts.topics import (
    CATALOGUE,
    REGISTER_PROFESSIONALS,
    SIGNALS_RESPONSES_PATTERN,
    TopicSpec,
    by_name,
    dead_letter_topic,
    org_topics,
    signals_assigned_topic,
    signals_responses_topic,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "generated"
OBSERVABILITY = ROOT / "deploy" / "observability"
SEED = ROOT / "services" / "register" / "seed" / "organisations.json"

SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
PART_OF = {"app.kubernetes.io/part-of": "pmm"}

KAFKA_CLUSTER = "pmm-kafka"
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:9093"
KAFKA_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"
MONGODB = "pmm-mongodb"
KAFKA_CLIENT = {"pmm/kafka-client": "true"}
MONGODB_CLIENT = {"pmm/mongodb-client": "true"}
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
OBSERVABILITY_NAMESPACE = "observability"
INGRESS_DOMAIN = "pmm.example.nl"  # the overlays replace the hosts
REPLICATION = 3
MIN_ISR = 2
MIN_REPLICAS = 2  # two replicas of every service: one may be drained or restarted
HTTP_MAX_REPLICAS = 6
LAG_PER_REPLICA = 100
CPU_TARGET_PERCENT = 70

RAW_CONSUMERS: dict[str, tuple[str, ...]] = {
    # Read without a consumer group, so not on the FastStream broker: the register's search
    # index replays its own changelog in every replica (decision register-0001).
    "register": (REGISTER_PROFESSIONALS,),
}
PATTERN_PREFIXES: dict[str, str] = {
    # The topics a pattern subscription can match, as the prefix a Kafka ACL can name.
    SIGNALS_RESPONSES_PATTERN: signals_responses_topic("xx").removesuffix("xx"),
}
ORG_TOPIC_PRODUCERS: dict[str, tuple[str, ...]] = {
    # Publishes the signals assigned to each organisation (pmm.signalen.assigned.<org>).
    "signalen": (signals_assigned_topic("xx").removesuffix("xx"),),
}


# What the code says ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    group: str
    topics: tuple[str, ...]
    pattern: str | None = None


@dataclass(frozen=True)
class ServiceFacts:
    name: str
    port: int
    version: str
    group_prefix: str
    group_root: str
    database: str
    subscriptions: tuple[Subscription, ...]

    @property
    def deployment(self) -> str:
        return f"pmm-{self.name}"

    @property
    def consumed(self) -> tuple[str, ...]:
        """The catalogue topics its consumer groups read (pattern topics are per org)."""
        return tuple(sorted({t for s in self.subscriptions for t in s.topics}))

    @property
    def max_replicas(self) -> int:
        """More consumers than partitions sit idle: the largest consumed topic bounds it."""
        if not self.subscriptions:
            return HTTP_MAX_REPLICAS
        return max(by_name(t).partitions for t in self.consumed)


def _settings_class(service: str) -> Any:
    from pmm_runtime.settings import ServiceSettings

    module = importlib.import_module(f"pmm_{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
    ]
    if len(found) != 1:
        raise RuntimeError(f"pmm_{service}.settings: expected one settings class, got {found}")
    return found[0]


@contextlib.contextmanager
def _without_pmm_environment() -> Iterator[None]:
    saved = {name: value for name, value in os.environ.items() if name.startswith("PMM_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def service_facts(service: str) -> ServiceFacts:
    """Build the service's app as ``create_app`` does (nothing is connected) and read its
    subscriptions off the broker."""
    from pmm_runtime.auth import generate_key_pair

    settings_class = _settings_class(service)
    with _without_pmm_environment():  # the defaults, as a pod without overrides has them
        settings = settings_class(jwt_public_key=generate_key_pair()[1], log_json=True)
        app = importlib.import_module(f"pmm_{service}.app").create_app(settings)
    platform = app.state.platform
    subscriptions = []
    for subscriber in platform.broker.subscribers:
        pattern = subscriber.pattern
        subscriptions.append(
            Subscription(
                group=subscriber.group_id,
                topics=tuple(t.name for t in subscriber.topics),
                pattern=None if pattern is None else pattern.template,
            )
        )
    return ServiceFacts(
        name=service,
        port=int(settings.http_port),
        version=version(f"pmm-{service}"),
        group_prefix=settings.group_id(""),
        group_root=settings.group_prefix,
        database=settings.database_name,
        subscriptions=tuple(sorted(subscriptions, key=lambda s: s.group)),
    )


def seed_organisations() -> list[str]:
    data = json.loads(SEED.read_text(encoding="utf-8"))
    return sorted(str(org["code"]) for org in data["organisations"])


# Kafka: topics and users -------------------------------------------------------------------


_TOPIC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
"""A topic name is used as the KafkaTopic's resource name: it must be a DNS subdomain."""


def _topic(name: str, partitions: int, config: dict[str, str]) -> dict[str, Any]:
    if not _TOPIC_NAME.match(name) or len(name) > 253:
        raise ValueError(f"{name!r} cannot name a KafkaTopic resource")
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {
            "name": name,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **PART_OF},
        },
        "spec": {
            "topicName": name,
            "partitions": partitions,
            "replicas": REPLICATION,
            "config": {**config, "min.insync.replicas": str(MIN_ISR)},
        },
    }


def topic_resources(specs: Iterable[TopicSpec]) -> Iterator[dict[str, Any]]:
    """The topic and, when anyone consumes it, its dead-letter topic (one partition, kept
    forever), as ``pmm-contracts topics`` provisions them."""
    for spec in specs:
        yield _topic(spec.name, spec.partitions, spec.config())
        if spec.consumers:
            yield _topic(dead_letter_topic(spec.name), 1, {"retention.ms": "-1"})


def _acl(kind: str, name: str, operations: list[str], pattern: str = "literal") -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
        "host": "*",
    }


def _user(name: str, acls: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {
            "name": name,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **PART_OF, **labels},
        },
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


_RESOURCE = {"TOPIC": "topic", "GROUP": "group"}
_PATTERN = {"LITERAL": "literal", "PREFIXED": "prefix"}


def _acls(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    """Strimzi's form of the tenant model's grants (Read and Write imply Describe)."""
    return _merged(
        [
            _acl(
                _RESOURCE[g.resource],
                g.name,
                [g.operation.capitalize()],
                _PATTERN[g.pattern],
            )
            for g in sorted(grants)
        ]
    )


def service_user(facts: ServiceFacts) -> dict[str, Any]:
    """The tenant model's grants of the service (``pmm_contracts.tenants``: its catalogue
    topics, the dead-letter topics of what it consumes, its groups ``pmm.<service>.``).

    Locally the TenantProvisioner gives signalen literal ACLs on each organisation's two
    topics as organisations join; Strimzi's User Operator owns a KafkaUser's ACLs and would
    remove ACLs set beside it, so here signalen gets them by prefix. Fails when the code
    reads a topic the model does not grant: the catalogue and the code disagree."""
    grants = set(service_grants(facts.name, CATALOGUE, group_prefix=facts.group_root))
    for subscription in facts.subscriptions:
        if subscription.pattern is not None:
            prefix = PATTERN_PREFIXES[subscription.pattern]  # KeyError: add it above
            # the organisations' answers and their dead-letter topics (<topic>.dlq)
            grants |= {
                Grant("TOPIC", prefix, "PREFIXED", "READ"),
                Grant("TOPIC", prefix, "PREFIXED", "WRITE"),
            }
    for prefix in ORG_TOPIC_PRODUCERS.get(facts.name, ()):
        grants.add(Grant("TOPIC", prefix, "PREFIXED", "WRITE"))
    acls = _acls(grants)
    for topic in (*facts.consumed, *RAW_CONSUMERS.get(facts.name, ())):
        if not any(_grants(acl, "topic", topic, "Read") for acl in acls):
            raise RuntimeError(f"{facts.name} reads {topic}: not in the catalogue's consumers")
    for subscription in facts.subscriptions:
        if not any(_grants(acl, "group", subscription.group, "Read") for acl in acls):
            raise RuntimeError(f"{facts.name}: group {subscription.group} not granted")
    return _user(facts.deployment, acls, {"app.kubernetes.io/name": facts.deployment})


def _grants(acl: dict[str, Any], kind: str, name: str, operation: str) -> bool:
    resource = acl["resource"]
    if resource["type"] != kind or operation not in acl["operations"]:
        return False
    if resource["patternType"] == "prefix":
        return bool(name.startswith(resource["name"]))
    return bool(name == resource["name"])


def _merged(acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One rule per resource, with the union of its operations (in a stable order)."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for acl in acls:
        resource = acl["resource"]
        key = (resource["type"], resource["name"], resource["patternType"])
        if key in merged:
            known = merged[key]["operations"]
            known.extend(op for op in acl["operations"] if op not in known)
        else:
            merged[key] = {**acl, "operations": list(acl["operations"])}
    return list(merged.values())


def keda_user() -> dict[str, Any]:
    """KEDA reads the committed offsets and the end offsets of the PMM consumer groups."""
    return _user(
        "pmm-keda",
        [
            _acl("topic", "pmm.", ["Describe"], "prefix"),
            _acl("group", "pmm.", ["Describe"], "prefix"),
        ],
        {"app.kubernetes.io/name": "pmm-keda"},
    )


def organisation_user(org: str) -> dict[str, Any]:
    """The tenant model (DESIGN.md §5, ``pmm_contracts.tenants``): Read on its assigned
    signals, Write on its responses, its consumer kit's groups ``<org>.pmm-signals...``.
    Nothing else."""
    return _user(
        organisation_principal(org), _acls(organisation_grants(org)), {"pmm/organisation": org}
    )


# Workloads ---------------------------------------------------------------------------------


def _labels(facts: ServiceFacts) -> dict[str, str]:
    return {"app.kubernetes.io/name": facts.deployment, **PART_OF}


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def deployment(facts: ServiceFacts) -> dict[str, Any]:
    labels = _labels(facts)
    secret = {"name": facts.deployment}
    env = [
        {"name": "PMM_HTTP_PORT", "value": str(facts.port)},
        {"name": "PMM_KAFKA_USERNAME", "value": facts.deployment},
        {
            "name": "PMM_KAFKA_PASSWORD",  # written by Strimzi's User Operator
            "valueFrom": {"secretKeyRef": {**secret, "key": "password"}},
        },
        {
            "name": "PMM_MONGODB_URL",  # written by the MongoDB operator for this user
            "valueFrom": {
                "secretKeyRef": {
                    "name": f"{facts.deployment}-mongodb",
                    "key": "connectionString.standard",
                }
            },
        },
        {"name": "OTEL_SERVICE_NAME", "value": facts.deployment},
        {
            "name": "POD_NAME",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": "k8s.pod.name=$(POD_NAME)"},
    ]
    container = {
        "name": facts.name,
        "image": f"{facts.deployment}:{facts.version}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": facts.port}],
        "envFrom": [{"configMapRef": {"name": "pmm-common"}}],
        "env": env,
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 20,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        # Let the Service stop sending requests before SIGTERM starts the graceful stop.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "issuer", "mountPath": "/run/pmm/issuer", "readOnly": True},
            {"name": "kafka-ca", "mountPath": "/run/pmm/kafka-ca", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir of its own
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": facts.deployment,
            "labels": {**labels, "app.kubernetes.io/version": facts.version},
        },
        "spec": {
            # no replicas: KEDA or the HPA owns them (an apply would reset them otherwise)
            "revisionHistoryLimit": 5,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "selector": {"matchLabels": {"app.kubernetes.io/name": facts.deployment}},
            "template": {
                "metadata": {"labels": {**labels, **KAFKA_CLIENT, **MONGODB_CLIENT}},
                "spec": {
                    "serviceAccountName": facts.deployment,
                    "automountServiceAccountToken": False,
                    # PMM_SHUTDOWN_GRACE_S (20 s) for the in-flight work, the outbox flush
                    # and the background jobs, plus the preStop pause.
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": key,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": facts.deployment}
                            },
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    "containers": [container],
                    "volumes": [
                        {"name": "issuer", "configMap": {"name": "pmm-issuer-public-key"}},
                        {
                            "name": "kafka-ca",
                            "secret": {
                                "secretName": KAFKA_CA_SECRET,
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            },
                        },
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def service_account(facts: ServiceFacts) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "automountServiceAccountToken": False,
    }


def service(facts: ServiceFacts) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "selector": {"app.kubernetes.io/name": facts.deployment},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def disruption_budget(facts: ServiceFacts) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": facts.deployment}},
        },
    }


def network_policy(facts: ServiceFacts) -> dict[str, Any]:
    """In: HTTP from the ingress controller, the console and Prometheus. Out: DNS, the Kafka
    brokers, the MongoDB members and the OpenTelemetry collector. Nothing else: services
    talk to each other over Kafka only."""

    def namespace(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    http = [{"port": "http", "protocol": "TCP"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": facts.deployment}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        namespace(INGRESS_NAMESPACE),
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "pmm-console"}}},
                    ],
                    "ports": http,
                },
                {"from": [namespace(MONITORING_NAMESPACE)], "ports": http},
            ],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
                {
                    "to": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "strimzi.io/cluster": KAFKA_CLUSTER,
                                    "strimzi.io/broker-role": "true",
                                }
                            }
                        }
                    ],
                    "ports": [{"port": 9093, "protocol": "TCP"}],
                },
                {
                    "to": [{"podSelector": {"matchLabels": {"app": f"{MONGODB}-svc"}}}],
                    "ports": [{"port": 27017, "protocol": "TCP"}],
                },
                {
                    "to": [namespace(OBSERVABILITY_NAMESPACE)],
                    "ports": [{"port": 4317, "protocol": "TCP"}, {"port": 4318, "protocol": "TCP"}],
                },
            ],
        },
    }


def service_monitor(facts: ServiceFacts) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": facts.deployment}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }


def _scale_behaviour() -> dict[str, Any]:
    # Every change of replicas rebalances the consumer groups: scale down slowly.
    return {
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        }
    }


def scaled_object(facts: ServiceFacts) -> dict[str, Any]:
    """KEDA: one Kafka lag trigger per consumer group and topic (the lag of a pattern
    group over all its topics), and CPU for the HTTP load, up to the partition count."""
    triggers: list[dict[str, Any]] = []
    for subscription in facts.subscriptions:
        topics: list[str | None] = list(subscription.topics) or [None]
        for topic in topics:
            metadata = {
                "bootstrapServers": KAFKA_BOOTSTRAP,
                "consumerGroup": subscription.group,
                "lagThreshold": str(LAG_PER_REPLICA),
                "offsetResetPolicy": "earliest",  # the services start a new group there
            }
            if topic is not None:
                metadata["topic"] = topic
            triggers.append(
                {
                    "type": "kafka",
                    "name": (subscription.group + ("-" + topic if topic else "")).replace(".", "-"),
                    "metadata": metadata,
                    "authenticationRef": {"name": "pmm-keda-kafka"},
                }
            )
    triggers.append(
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(CPU_TARGET_PERCENT)}}
    )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "scaleTargetRef": {"name": facts.deployment},
            "minReplicaCount": MIN_REPLICAS,
            "maxReplicaCount": facts.max_replicas,
            "pollingInterval": 30,
            "cooldownPeriod": 300,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _scale_behaviour()}},
            "triggers": triggers,
        },
    }


def http_autoscaler(facts: ServiceFacts) -> dict[str, Any]:
    """A service without consumer groups scales on CPU only."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": facts.deployment, "labels": _labels(facts)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": facts.deployment,
            },
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": facts.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT},
                    },
                }
            ],
            "behavior": _scale_behaviour(),
        },
    }


def ingress(all_facts: list[ServiceFacts]) -> dict[str, Any]:
    """The public part of each API: /v1, its documentation, OpenAPI and AsyncAPI. Not
    /metrics, /healthz or /readyz, which only the cluster reaches."""
    paths = [
        ("/v1", "Prefix"),
        ("/docs", "Prefix"),
        ("/docs-assets", "Prefix"),
        ("/redoc", "Exact"),
        ("/openapi.json", "Exact"),
        ("/asyncapi.json", "Exact"),
    ]
    rules = [
        {
            "host": f"{facts.name}.{INGRESS_DOMAIN}",
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": kind,
                        "backend": {
                            "service": {"name": facts.deployment, "port": {"name": "http"}}
                        },
                    }
                    for path, kind in paths
                ]
            },
        }
        for facts in all_facts
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "pmm-apis", "labels": PART_OF},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [rule["host"] for rule in rules], "secretName": "pmm-apis-tls"}],
            "rules": rules,
        },
    }


CONSOLE = "pmm-console"
CONSOLE_LABELS = {"app.kubernetes.io/name": CONSOLE, **PART_OF}
NOT_PUBLIC = "pmm-not-public"
OPERATIONS_PATHS = ("/metrics", "/healthz", "/readyz")


def not_public_service() -> dict[str, Any]:
    """A Service without pods: the Ingress sends the operations paths of the console here,
    so the controller answers them itself (503) and they never reach a pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NOT_PUBLIC, "labels": PART_OF},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }


def console_ingress() -> dict[str, Any]:
    """The console's pages are under any path (``/``), but not its ``/metrics`` and probes:
    a longer prefix wins, so those go to ``pmm-not-public`` (controller-neutral; Ingress
    has no exclusions)."""

    def to(service_name: str, path: str) -> dict[str, Any]:
        return {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": service_name, "port": {"name": "http"}}},
        }

    host = f"console.{INGRESS_DOMAIN}"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": CONSOLE, "labels": CONSOLE_LABELS},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": "pmm-console-tls"}],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            to(CONSOLE, "/"),
                            *(to(NOT_PUBLIC, path) for path in OPERATIONS_PATHS),
                        ]
                    },
                }
            ],
        },
    }


def console_autoscaler() -> dict[str, Any]:
    """The console is HTTP only (its sessions are signed cookies): CPU, like the register."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": CONSOLE, "labels": CONSOLE_LABELS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": CONSOLE},
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": HTTP_MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT},
                    },
                }
            ],
            "behavior": _scale_behaviour(),
        },
    }


def service_resources(facts: ServiceFacts) -> list[dict[str, Any]]:
    scaler = scaled_object(facts) if facts.subscriptions else http_autoscaler(facts)
    return [
        service_account(facts),
        deployment(facts),
        service(facts),
        disruption_budget(facts),
        network_policy(facts),
        service_monitor(facts),
        scaler,
        service_user(facts),
    ]


# MongoDB -----------------------------------------------------------------------------------


def mongodb(all_facts: list[ServiceFacts]) -> list[dict[str, Any]]:
    """A three-member replica set (MongoDB Community operator) with one user per service,
    allowed only its own database. The operator writes each user's connection string into
    the Secret ``pmm-<service>-mongodb`` that the Deployment reads."""
    users = [
        {
            "name": facts.deployment,
            "db": "admin",
            "passwordSecretRef": {"name": f"{facts.deployment}-mongodb-password"},
            "roles": [{"name": "readWrite", "db": facts.database}],
            "scramCredentialsSecretName": f"{facts.deployment}-mongodb-scram",
            "connectionStringSecretName": f"{facts.deployment}-mongodb",
        }
        for facts in all_facts
    ]
    replica_set = {
        "apiVersion": "mongodbcommunity.mongodb.com/v1",
        "kind": "MongoDBCommunity",
        "metadata": {"name": MONGODB, "labels": PART_OF},
        "spec": {
            "members": 3,
            "type": "ReplicaSet",
            "version": "8.0.4",
            "security": {"authentication": {"modes": ["SCRAM"]}},
            "users": users,
            "additionalMongodConfig": {"storage.wiredTiger.engineConfig.journalCompressor": "zlib"},
            "statefulSet": {
                "spec": {
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data-volume"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "20Gi"}},
                            },
                        }
                    ]
                }
            },
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": MONGODB, "labels": PART_OF},
        "spec": {
            "podSelector": {"matchLabels": {"app": f"{MONGODB}-svc"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": MONGODB_CLIENT}},
                        {"podSelector": {"matchLabels": {"app": f"{MONGODB}-svc"}}},
                    ],
                    "ports": [{"port": 27017, "protocol": "TCP"}],
                }
            ],
        },
    }
    return [replica_set, policy]


# Observability -----------------------------------------------------------------------------


def observability_resources() -> list[dict[str, Any]]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text(encoding="utf-8"))
    dashboard = (OBSERVABILITY / "grafana" / "pmm-dashboard.json").read_text(encoding="utf-8")
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "pmm", "labels": PART_OF},
            "spec": {"groups": rules["groups"]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "pmm-grafana-dashboard",
                "labels": {**PART_OF, "grafana_dashboard": "1"},
            },
            "data": {"pmm-dashboard.json": dashboard},
        },
    ]


# Output ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, the dashboard JSON) as literal blocks, nothing folded."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)

HEADER = "# GENERATED by deploy/k8s/generate.py from {source}: do not edit, run `make k8s`.\n"


def dump(resources: Iterable[dict[str, Any]], source: str) -> str:
    body = yaml.dump_all(
        list(resources), Dumper=_Dumper, sort_keys=False, width=4096, explicit_start=True
    )
    return HEADER.format(source=source) + body


def render() -> dict[str, str]:
    """Every generated file: name -> content."""
    facts = [service_facts(name) for name in SERVICES]
    organisations = seed_organisations()
    files = {
        "topics.yaml": dump(topic_resources(CATALOGUE), "pmm_contracts.topics.CATALOGUE"),
        "organisations.yaml": dump(
            [
                resource
                for org in organisations
                for resource in [*topic_resources(org_topics(org)), organisation_user(org)]
            ],
            "the seed organisations (services/register/seed/organisations.json)",
        ),
        "keda.yaml": dump([keda_user()], "the consumer groups of the services"),
        "ingress.yaml": dump(
            [ingress(facts), console_ingress(), not_public_service()],
            "the services' HTTP ports and the console's",
        ),
        "console.yaml": dump([console_autoscaler()], "the console (services/console)"),
        "mongodb.yaml": dump(mongodb(facts), "the services' databases"),
        "observability.yaml": dump(observability_resources(), "deploy/observability/"),
    }
    for item in facts:
        files[f"{item.name}.yaml"] = dump(
            service_resources(item), f"pmm_{item.name}.app.create_app and the topic catalogue"
        )
    return files


def write(files: dict[str, str], out: Path = OUT) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, content in files.items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(name)
    for stale in sorted(set(p.name for p in out.glob("*.yaml")) - set(files)):
        (out / stale).unlink()
        changed.append(stale)
    return changed


def stale_files(files: dict[str, str], out: Path = OUT) -> list[str]:
    present = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.yaml")}
    return sorted(n for n in set(files) | set(present) if files.get(n) != present.get(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = stale_files(files)
        if stale:
            print(f"out of date in {OUT}: {', '.join(stale)}; run `make k8s`", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date")
        return 0
    changed = write(files)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(changed)} of {len(files)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
