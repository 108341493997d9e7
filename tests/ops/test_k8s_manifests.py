"""The Kubernetes manifests as kustomize renders each overlay: every service deploys,
scales on its own consumer lag up to its partitions, can be observed, and reaches only
what it needs; Kafka topics and ACLs follow the topic catalogue and the code."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pmm_contracts.topics import (
    CATALOGUE,
    REGISTER_PROFESSIONALS,
    by_name,
    dead_letter_topic,
    signals_assigned_topic,
    signals_responses_topic,
)

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
Manifests = Any  # tests/ops/conftest.py: Manifests (no import across test modules)
ServiceCode = Any  # tests/ops/conftest.py: ServiceCode

PRODUCTION_REPLICATION, PRODUCTION_MIN_ISR = 3, 2


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(manifests: Manifests, service: str) -> dict[str, str]:
    deployment = manifests.named("Deployment", f"pmm-{service}")
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


# Generation ----------------------------------------------------------------------------------


def test_generated_manifests_are_up_to_date(generator: ModuleType) -> None:
    """generated/ follows the topic catalogue, the subscriptions and the alert rules: after
    a change there, `make k8s` must be run and its output checked in."""
    stale = generator.stale_files(generator.render())
    assert stale == [], f"out of date in deploy/k8s/generated: {stale}; run `make k8s`"


def test_every_document_is_named_once(manifests: Manifests) -> None:
    seen = set()
    for document in manifests:
        assert {"apiVersion", "kind", "metadata"} <= document.keys()
        key = (document["kind"], document["metadata"]["name"])
        assert key not in seen, f"{key} twice"
        seen.add(key)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "pmm"


def test_no_job_provisions_topics(manifests: Manifests) -> None:
    """A Job's template cannot change on the next release: Strimzi's KafkaTopics instead."""
    assert manifests.of("Job") == []
    assert manifests.of("CronJob") == []


# Workloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_resources_and_restricted_security(
    manifests: Manifests, service: str, code: dict[str, ServiceCode]
) -> None:
    deployment = manifests.named("Deployment", f"pmm-{service}")
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    port = code[service].settings.http_port
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    env = {e["name"]: e for e in container["env"]}
    assert env["PMM_HTTP_PORT"]["value"] == str(port)

    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"

    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()

    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # a read-only root filesystem needs a writable /tmp of its own
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
    assert len(tmp) == 1
    assert "emptyDir" in volumes[tmp[0]["name"]]
    # the graceful stop (PMM_SHUTDOWN_GRACE_S) fits in the grace period
    grace = float(manifests.named("ConfigMap", "pmm-common")["data"]["PMM_SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > grace
    # replicas belong to the autoscaler, not to the manifest
    assert "replicas" not in deployment["spec"]


@pytest.mark.parametrize("service", SERVICES)
def test_images_are_tagged_with_the_version(
    manifests: Manifests, service: str, code: dict[str, ServiceCode]
) -> None:
    image = container_of(manifests.named("Deployment", f"pmm-{service}"))["image"]
    name, _, tag = image.rpartition(":")
    assert name.endswith(f"pmm-{service}")
    assert tag == code[service].version
    assert tag != "latest"
    if manifests.overlay == "production":
        assert "/" in name, "production pulls from a registry"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_pdb_service_account_service_and_monitor(
    manifests: Manifests, service: str
) -> None:
    labels = pod_labels(manifests, service)
    name = f"pmm-{service}"
    pdb = manifests.named("PodDisruptionBudget", name)
    assert selects(pdb["spec"]["selector"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1  # a node drain never blocks on one replica
    assert manifests.named("ServiceAccount", name)["automountServiceAccountToken"] is False
    svc = manifests.named("Service", name)
    assert selects({"matchLabels": svc["spec"]["selector"]}, labels)
    monitor = manifests.named("ServiceMonitor", name)
    assert selects(monitor["spec"]["selector"], svc["metadata"]["labels"])
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


@pytest.mark.parametrize("service", SERVICES)
def test_network_policy_admits_only_ingress_console_and_monitoring(
    manifests: Manifests, service: str
) -> None:
    labels = pod_labels(manifests, service)
    policies = [
        p for p in manifests.of("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in sources
        if "namespaceSelector" in p
    }
    pods = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p]
    assert namespaces == {"ingress-nginx", "monitoring"}
    assert pods == [{"app.kubernetes.io/name": "pmm-console"}]  # services use Kafka, not HTTP
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("service", SERVICES)
def test_network_policy_lets_out_only_dns_kafka_mongodb_and_otlp(
    manifests: Manifests, service: str
) -> None:
    labels = pod_labels(manifests, service)
    (policy,) = [
        p for p in manifests.of("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    ports = sorted(port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"])
    assert ports == [53, 53, 4317, 4318, 9093, 27017]
    for rule in policy["spec"]["egress"]:
        assert rule["to"], "an egress rule without peers lets everything out"
        for peer in rule["to"]:
            assert peer.get("podSelector") or peer.get("namespaceSelector")
    # the peers it names are the Kafka brokers and the MongoDB members
    kafka_rule = next(r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 9093)
    assert kafka_rule["to"][0]["podSelector"]["matchLabels"]["strimzi.io/cluster"] == "pmm-kafka"
    mongo_rule = next(r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 27017)
    assert mongo_rule["to"] == [{"podSelector": {"matchLabels": {"app": "pmm-mongodb-svc"}}}]
    # and those admit it back: Strimzi's listener peers and the MongoDB policy
    listener = manifests.named("Kafka", "pmm-kafka")["spec"]["kafka"]["listeners"][0]
    assert any(
        selects(peer["podSelector"], labels)
        for peer in listener["networkPolicyPeers"]
        if "podSelector" in peer
    )
    mongo_policy = manifests.named("NetworkPolicy", "pmm-mongodb")
    assert any(
        selects(peer["podSelector"], labels)
        for rule in mongo_policy["spec"]["ingress"]
        for peer in rule["from"]
    )


# Secrets and the issuer key ------------------------------------------------------------------


def operator_written_secrets(manifests: Manifests) -> set[str]:
    """Secrets that an operator writes: Strimzi (one per KafkaUser, the cluster CA) and
    the MongoDB operator (one connection string per user)."""
    written = set(manifests.names("KafkaUser"))
    written |= {f"{k['metadata']['name']}-cluster-ca-cert" for k in manifests.of("Kafka")}
    for replica_set in manifests.of("MongoDBCommunity"):
        written |= {u["connectionStringSecretName"] for u in replica_set["spec"]["users"]}
    return written


def secrets_for_operators_to_create(manifests: Manifests) -> set[str]:
    names = set()
    for replica_set in manifests.of("MongoDBCommunity"):
        names |= {u["passwordSecretRef"]["name"] for u in replica_set["spec"]["users"]}
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_and_config_map_a_pod_uses_exists_or_is_written_by_an_operator(
    manifests: Manifests, service: str
) -> None:
    pod = manifests.named("Deployment", f"pmm-{service}")["spec"]["template"]["spec"]
    container = container_of(manifests.named("Deployment", f"pmm-{service}"))
    config_maps = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    config_maps |= {e["configMapRef"]["name"] for e in container["envFrom"]}
    assert config_maps <= manifests.names("ConfigMap")
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    secrets |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    available = manifests.names("Secret") | operator_written_secrets(manifests)
    assert secrets <= available, secrets - available
    env = {e["name"]: e for e in container["env"]}
    # SASL credentials of its own KafkaUser; its own MongoDB user's connection string
    assert env["PMM_KAFKA_USERNAME"]["value"] == f"pmm-{service}"
    assert env["PMM_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"pmm-{service}",
        "key": "password",
    }
    assert f"pmm-{service}" in manifests.names("KafkaUser")
    mongo = env["PMM_MONGODB_URL"]["valueFrom"]["secretKeyRef"]
    users = {
        u["connectionStringSecretName"]: u["name"]
        for u in manifests.named("MongoDBCommunity", "pmm-mongodb")["spec"]["users"]
    }
    assert users[mongo["name"]] == f"pmm-{service}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_the_pods_get_is_one_the_service_reads(
    manifests: Manifests, service: str, code: dict[str, ServiceCode]
) -> None:
    """A misspelt PMM_ variable is silently ignored: each must name a settings field."""
    fields = set(type(code[service].settings).model_fields)
    container = container_of(manifests.named("Deployment", f"pmm-{service}"))
    names = {e["name"] for e in container["env"]}
    names |= set(manifests.named("ConfigMap", "pmm-common")["data"])
    for name in sorted(n for n in names if n.startswith("PMM_")):
        assert name.removeprefix("PMM_").lower() in fields, f"{service} has no setting {name}"
    common = manifests.named("ConfigMap", "pmm-common")["data"]
    replication = "3" if manifests.overlay == "production" else "1"
    assert common["PMM_KAFKA_REPLICATION_FACTOR"] == replication
    assert common["PMM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_the_secrets_to_create_by_hand_are_documented(rendered: dict[str, Manifests]) -> None:
    """Every Secret a workload reads that neither the manifests nor an operator create is
    one the ops team creates: deploy/README.md must name it."""
    production = rendered["production"]
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    by_hand = secrets_for_operators_to_create(production)
    for deployment in production.of("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    by_hand.add(ref["name"])
        by_hand |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    by_hand -= production.names("Secret") | operator_written_secrets(production)
    assert by_hand, "the MongoDB passwords at least are created by hand"
    for name in sorted(by_hand):
        assert f"`{name}`" in readme, f"deploy/README.md does not tell to create Secret {name}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_pod_mounts_the_issuer_public_key_the_overlay_provides(
    manifests: Manifests, service: str, issuer_public_key: str
) -> None:
    deployment = manifests.named("Deployment", f"pmm-{service}")
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    common = manifests.named("ConfigMap", "pmm-common")["data"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "issuer")
    assert common["PMM_JWT_PUBLIC_KEY_FILE"] == mount["mountPath"] + "/public.pem"
    volume = next(v for v in pod["volumes"] if v["name"] == "issuer")
    key_map = manifests.named("ConfigMap", volume["configMap"]["name"])
    assert key_map["metadata"]["name"].startswith("pmm-issuer-public-key-")  # rotation rolls
    assert key_map["data"]["public.pem"] == issuer_public_key


def test_the_local_overlay_trusts_the_local_issuer(rendered: dict[str, Manifests]) -> None:
    from pmm_runtime.settings import ServiceSettings

    local = rendered["local"].named("ConfigMap", "pmm-common")["data"]
    assert local["PMM_JWT_ISSUER"] == ServiceSettings(service_name="x").jwt_issuer
    production = rendered["production"].named("ConfigMap", "pmm-common")["data"]
    assert production["PMM_JWT_ISSUER"].startswith("https://")


# Scaling -------------------------------------------------------------------------------------


def consumed_catalogue_topics(service: ServiceCode) -> set[str]:
    return {t for c in service.consumers for t in c.topics}


@pytest.mark.parametrize("service", SERVICES)
def test_consuming_services_scale_on_the_lag_of_each_of_their_groups(
    manifests: Manifests, service: str, code: dict[str, ServiceCode]
) -> None:
    facts = code[service]
    name = f"pmm-{service}"
    if not facts.consumers:
        assert name not in manifests.names("ScaledObject")
        return
    scaled = manifests.named("ScaledObject", name)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == name
    assert name not in manifests.names("HorizontalPodAutoscaler")  # KEDA owns it
    lag = [t for t in spec["triggers"] if t["type"] == "kafka"]
    covered = {(t["metadata"]["consumerGroup"], t["metadata"].get("topic")) for t in lag}
    expected = set()
    for consumer in facts.consumers:
        assert consumer.group.startswith(facts.settings.group_id(""))
        if consumer.pattern is not None:
            expected.add((consumer.group, None))  # the group's lag over all its topics
        expected |= {(consumer.group, topic) for topic in consumer.topics}
    assert covered == expected
    auth_names = manifests.names("TriggerAuthentication")
    for trigger in lag:
        assert trigger["authenticationRef"]["name"] in auth_names
        assert trigger["metadata"]["bootstrapServers"].endswith(":9093")
    assert any(t["type"] == "cpu" for t in spec["triggers"])  # the HTTP load
    # more consumers than partitions sit idle
    partitions = max(by_name(t).partitions for t in consumed_catalogue_topics(facts))
    assert spec["maxReplicaCount"] == partitions
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    if manifests.overlay == "production":
        assert spec["minReplicaCount"] >= 2


def test_http_only_services_scale_on_cpu(
    manifests: Manifests, code: dict[str, ServiceCode]
) -> None:
    http_only = [s for s in SERVICES if not code[s].consumers]
    deployments = [f"pmm-{s}" for s in http_only] + ["pmm-console"]  # the console is HTTP only
    assert manifests.names("HorizontalPodAutoscaler") == set(deployments)
    for name in deployments:
        spec = manifests.named("HorizontalPodAutoscaler", name)["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in manifests.named("Deployment", name)["spec"]
        assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]


def test_the_register_is_http_only_and_keda_scales_the_others(
    code: dict[str, ServiceCode],
) -> None:
    """The register's search index reads without a group (every replica reads all), so it
    has nothing to scale on but its HTTP load; the other four consume."""
    assert code["register"].consumers == ()
    assert all(code[s].consumers for s in SERVICES if s != "register")


# Kafka ---------------------------------------------------------------------------------------


def test_kafka_is_kraft_with_a_three_node_pool(rendered: dict[str, Manifests]) -> None:
    production = rendered["production"]
    kafka = production.named("Kafka", "pmm-kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    (pool,) = production.of("KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "pmm-kafka"
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == PRODUCTION_REPLICATION
    assert config["min.insync.replicas"] == PRODUCTION_MIN_ISR
    assert config["auto.create.topics.enable"] is False
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert listener["tls"] is True
        assert listener["authentication"]["type"] == "scram-sha-512"
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    assert "userOperator" in kafka["spec"]["entityOperator"]
    assert "kafkaExporter" in kafka["spec"]  # the lag metrics of the alerts


def test_every_catalogue_topic_and_its_dead_letter_topic_is_a_kafka_topic(
    manifests: Manifests,
) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in manifests.of("KafkaTopic")}
    replication, min_isr = (
        (PRODUCTION_REPLICATION, PRODUCTION_MIN_ISR)
        if manifests.overlay == "production"
        else (1, 1)
    )
    for spec in CATALOGUE:
        topic = topics[spec.name]
        assert topic["partitions"] == spec.partitions
        assert topic["replicas"] == replication
        assert topic["config"]["min.insync.replicas"] == str(min_isr)
        assert topic["config"]["cleanup.policy"] == spec.cleanup_policy
        if spec.retention_ms is not None:
            assert topic["config"]["retention.ms"] == str(spec.retention_ms)
        if spec.consumers:
            dlq = topics[dead_letter_topic(spec.name)]
            assert dlq["replicas"] == replication
            assert dlq["config"]["retention.ms"] == "-1"
    for topic in manifests.of("KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "pmm-kafka"


def acls_of(user: dict[str, Any]) -> dict[tuple[str, str, str], set[str]]:
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["spec"]["authorization"]["type"] == "simple"
    result: dict[tuple[str, str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        key = (resource["type"], resource["name"], resource.get("patternType", "literal"))
        result.setdefault(key, set()).update(acl["operations"])
    return result


def allows(
    acls: dict[tuple[str, str, str], set[str]], kind: str, name: str, operation: str
) -> bool:
    for (acl_kind, acl_name, pattern), operations in acls.items():
        if acl_kind != kind or operation not in operations:
            continue
        if pattern == "literal" and acl_name == name:
            return True
        if pattern == "prefix" and name.startswith(acl_name):
            return True
    return False


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_user_has_exactly_its_catalogue_topics(
    rendered: dict[str, Manifests], service: str, code: dict[str, ServiceCode]
) -> None:
    facts = code[service]
    acls = acls_of(rendered["production"].named("KafkaUser", f"pmm-{service}"))
    for (kind, name, _), operations in acls.items():
        assert name not in ("*", "", "pmm", "pmm."), f"{service}: too wide {kind} ACL {name}"
        assert "All" not in operations
        assert "Delete" not in operations
        assert "Alter" not in operations
    produced = {s.name for s in CATALOGUE if s.producer == service}
    consumed = consumed_catalogue_topics(facts)
    # the register's search index reads its own changelog, without a group
    consumed_raw = {REGISTER_PROFESSIONALS} if service == "register" else set()
    for topic in produced:
        assert allows(acls, "topic", topic, "Write")
    for topic in consumed | consumed_raw:
        assert allows(acls, "topic", topic, "Read")
    for topic in consumed:
        assert allows(acls, "topic", dead_letter_topic(topic), "Write")
    for consumer in facts.consumers:
        assert allows(acls, "group", consumer.group, "Read")
    # and nothing beyond the catalogue's edges: no other topic, no other service's groups
    for spec in CATALOGUE:
        if spec.producer != service:
            assert not allows(acls, "topic", spec.name, "Write"), spec.name
        replays_own = spec.producer == service and spec.cleanup_policy == "compact"
        if service not in spec.consumers and not replays_own:
            assert not allows(acls, "topic", spec.name, "Read"), spec.name
    for other in SERVICES:
        if other != service:
            assert not allows(acls, "group", code[other].settings.group_id("main"), "Read")
    # signalen publishes every organisation's signals and reads every organisation's answers
    org_topics_allowed = (
        allows(acls, "topic", signals_assigned_topic("uwv"), "Write"),
        allows(acls, "topic", signals_responses_topic("uwv"), "Read"),
        allows(acls, "topic", dead_letter_topic(signals_responses_topic("uwv")), "Write"),
    )
    assert org_topics_allowed == ((True,) * 3 if service == "signalen" else (False,) * 3)


def test_organisations_get_their_two_topics_and_nothing_else(
    rendered: dict[str, Manifests],
) -> None:
    production = rendered["production"]
    users = {u["metadata"]["name"]: u for u in production.of("KafkaUser")}
    orgs = sorted(n.removeprefix("org-") for n in users if n.startswith("org-"))
    assert {"uwv", "svb", "gm0363"} <= set(orgs)  # the seed organisations
    topics = {t["spec"]["topicName"] for t in production.of("KafkaTopic")}
    for org in orgs:
        acls = acls_of(users[f"org-{org}"])
        assigned, responses = signals_assigned_topic(org), signals_responses_topic(org)
        assert {assigned, responses, dead_letter_topic(assigned)} <= topics
        assert allows(acls, "topic", assigned, "Read")
        assert allows(acls, "topic", responses, "Write")
        assert not allows(acls, "topic", responses, "Read")
        assert not allows(acls, "topic", assigned, "Write")
        other = "zz" + org[:8]
        assert not allows(acls, "topic", signals_assigned_topic(other), "Read")
        assert not allows(acls, "topic", signals_responses_topic(other), "Write")
        for spec in CATALOGUE:
            assert not allows(acls, "topic", spec.name, "Read")
            assert not allows(acls, "topic", spec.name, "Write")
        assert allows(acls, "group", f"{org}.pmm-signals", "Read")  # the consumer kit's
        for group in ("pmm.signalen.cases", "pmm.loket.escalations", "pmm.let.cases"):
            assert not allows(acls, "group", group, "Read"), (org, group)


def test_keda_may_only_describe(rendered: dict[str, Manifests]) -> None:
    acls = acls_of(rendered["production"].named("KafkaUser", "pmm-keda"))
    assert all(operations == {"Describe"} for operations in acls.values())
    auth = rendered["production"].named("TriggerAuthentication", "pmm-keda-kafka")
    parameters = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert parameters["password"]["name"] == "pmm-keda"  # Strimzi's Secret of that user
    settings = rendered["production"].named("Secret", parameters["sasl"]["name"])
    assert settings["data"].keys() >= {"sasl", "username", "tls"}


# MongoDB -------------------------------------------------------------------------------------


def test_mongodb_is_a_replica_set_with_a_user_per_service_database(
    rendered: dict[str, Manifests], code: dict[str, ServiceCode]
) -> None:
    replica_set = rendered["production"].named("MongoDBCommunity", "pmm-mongodb")
    assert replica_set["spec"]["type"] == "ReplicaSet"
    assert replica_set["spec"]["members"] == 3
    assert replica_set["spec"]["security"]["authentication"]["modes"] == ["SCRAM"]
    users = {u["name"]: u for u in replica_set["spec"]["users"]}
    for service in SERVICES:
        user = users[f"pmm-{service}"]
        assert user["roles"] == [{"name": "readWrite", "db": code[service].settings.database_name}]
    assert rendered["local"].named("MongoDBCommunity", "pmm-mongodb")["spec"]["members"] == 1


# Ingress -------------------------------------------------------------------------------------


def test_the_ingress_publishes_each_api_but_not_its_metrics_or_probes(
    manifests: Manifests,
) -> None:
    ingress = manifests.named("Ingress", "pmm-apis")
    backends: dict[str, set[str]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backends.setdefault(path["backend"]["service"]["name"], set()).add(path["path"])
            assert not re.match(r"^/(metrics|healthz|readyz)", path["path"])
            assert path["path"] != "/"
    for service in SERVICES:
        assert {"/v1", "/docs", "/openapi.json"} <= backends[f"pmm-{service}"]
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert len(set(hosts)) == len(hosts)
    if manifests.overlay == "production":
        assert sorted(ingress["spec"]["tls"][0]["hosts"]) == sorted(hosts)


def ingress_backend(ingress: dict[str, Any], host: str, path: str) -> str | None:
    """The Service an Ingress sends ``host`` + ``path`` to (Kubernetes' matching: an Exact
    path first, else the longest matching Prefix, by whole path elements)."""
    exact: list[tuple[int, str]] = []
    prefix: list[tuple[int, str]] = []
    for rule in ingress["spec"]["rules"]:
        if rule.get("host") not in (None, host):
            continue
        for entry in rule["http"]["paths"]:
            candidate, name = entry["path"], entry["backend"]["service"]["name"]
            if entry["pathType"] == "Exact" and path == candidate:
                exact.append((len(candidate), name))
            elif entry["pathType"] == "Prefix":
                base = candidate.rstrip("/")
                if path == base or path.startswith(base + "/") or candidate == "/":
                    prefix.append((len(base), name))
    found = exact or prefix
    return max(found)[1] if found else None


OPERATIONS_PATHS = ("/metrics", "/healthz", "/readyz", "/metrics/", "/readyz/x")


def test_no_ingress_reaches_a_pod_with_metrics_or_probes(manifests: Manifests) -> None:
    services = {s["metadata"]["name"]: s for s in manifests.of("Service")}
    ingresses = manifests.of("Ingress")
    assert {i["metadata"]["name"] for i in ingresses} >= {"pmm-apis", "pmm-console"}
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            for path in OPERATIONS_PATHS:
                backend = ingress_backend(ingress, rule["host"], path)
                if backend is None:
                    continue  # the controller's default answer (404)
                # only a Service that selects no pods: the controller answers, no pod does
                assert "selector" not in services[backend]["spec"], (rule["host"], path)


def test_the_console_is_published_under_every_other_path(manifests: Manifests) -> None:
    ingress = manifests.named("Ingress", "pmm-console")
    host = ingress["spec"]["rules"][0]["host"]
    for path in ("/", "/cases/LMM-2026-000001", "/static/console.css", "/metricsx", "/login"):
        assert ingress_backend(ingress, host, path) == "pmm-console", path
    if manifests.overlay == "production":
        assert ingress["spec"]["tls"][0]["hosts"] == [host]


def test_the_console_is_part_of_the_base_when_it_exists() -> None:
    kustomization = yaml.safe_load((REPO / "deploy" / "k8s" / "kustomization.yaml").read_text())
    listed = "console.yaml" in kustomization["resources"]
    assert listed == (REPO / "deploy" / "k8s" / "console.yaml").exists()
