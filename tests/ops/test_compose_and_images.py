"""deploy/compose.yaml and deploy/Dockerfile, parsed: Kafka keeps its data on its volume,
keys, topics and seed come from init services, nothing starts before what it needs is
healthy, and every image is built from the one Dockerfile, tagged with its version."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
ServiceCode = Any  # tests/ops/conftest.py: ServiceCode

DOCKERFILE = REPO / "deploy" / "Dockerfile"
APPS = (*SERVICES, "console")


def volume_target(service: dict[str, Any], volume: str) -> str:
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        if source == volume:
            return str(target)
    raise AssertionError(f"volume {volume} not mounted")


def test_kafka_writes_its_log_dir_on_its_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    log_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert volume_target(kafka, "kafka-data") == log_dir
    assert "kafka-data" in compose["volumes"]
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    mongodb = compose["services"]["mongodb"]
    assert volume_target(mongodb, "mongo-data") == "/data/db"


def test_init_services_create_keys_topics_and_seed(compose: dict[str, Any]) -> None:
    services = compose["services"]
    keys = services["keys"]
    assert keys["command"][:2] == ["pmm-token", "keys"]
    key_dir = keys["command"][keys["command"].index("--key-dir") + 1]
    assert volume_target(keys, "issuer") == key_dir
    topics = services["topics"]
    assert topics["command"][:2] == ["pmm-contracts", "topics"]
    assert topics["depends_on"]["kafka"] == {"condition": "service_healthy"}
    seed = services["seed"]
    assert seed["command"][:2] == ["pmm-register", "seed"]
    assert seed["depends_on"]["register"] == {"condition": "service_healthy"}
    seed_file = seed["command"][2]
    mount = next(v for v in seed["volumes"] if v.startswith("../services/register/seed:"))
    assert seed_file.startswith(mount.split(":")[1] + "/")
    assert (REPO / "services" / "register" / "seed" / seed_file.rsplit("/", 1)[1]).exists()
    for name in ("keys", "topics", "seed"):
        assert "restart" not in services[name], f"{name} runs once"


def test_the_topics_service_provisions_the_seed_organisations(compose: dict[str, Any]) -> None:
    import json

    command = compose["services"]["topics"]["command"]
    orgs = {command[i + 1] for i, arg in enumerate(command) if arg == "--org"}
    seed = json.loads((REPO / "services/register/seed/organisations.json").read_text("utf-8"))
    assert orgs == {org["code"] for org in seed["organisations"]}


@pytest.mark.parametrize("service", SERVICES)
def test_services_start_only_when_what_they_need_is_healthy(
    compose: dict[str, Any], service: str, code: dict[str, ServiceCode]
) -> None:
    entry = compose["services"][service]
    assert entry["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "mongodb": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
        "keys": {"condition": "service_completed_successfully"},
    }
    for dependency in ("kafka", "mongodb"):
        assert compose["services"][dependency]["healthcheck"]["test"]
    check = " ".join(entry["healthcheck"]["test"])
    assert "/readyz" in check  # ready means the broker and the store answer
    port = code[service].settings.http_port
    assert entry["ports"] == [f"{port}:{port}"]
    assert entry["build"]["args"]["PORT"] == str(port)
    env = entry["environment"]
    assert env["PMM_JWT_PUBLIC_KEY_FILE"].startswith(volume_target(entry, "issuer") + "/")
    assert entry["read_only"] is True
    assert entry["cap_drop"] == ["ALL"]


def test_the_console_waits_for_the_register_and_the_loket(compose: dict[str, Any]) -> None:
    console = compose["services"]["console"]
    assert console["depends_on"] == {
        "register": {"condition": "service_healthy"},
        "loket": {"condition": "service_healthy"},
    }
    for name in SERVICES:
        url = console["environment"][f"PMM_CONSOLE_{name.upper()}_URL"]
        port = compose["services"][name]["ports"][0].split(":")[1]
        assert url == f"http://{name}:{port}"


def test_every_image_is_built_from_the_one_dockerfile_with_its_version(
    compose: dict[str, Any],
) -> None:
    from importlib.metadata import version

    for name, entry in compose["services"].items():
        if "build" not in entry:
            assert not entry["image"].startswith("pmm-"), f"{name} must say how it is built"
            continue
        build = entry["build"]
        assert build["context"] == ".."
        assert build["dockerfile"] == "deploy/Dockerfile"
        service = build["args"]["SERVICE"]
        assert service in APPS
        expected = version(f"pmm-{service}")
        assert build["args"]["VERSION"] == expected
        assert entry["image"] == f"pmm-{service}:{expected}"
    for entry in compose["services"].values():
        assert not entry["image"].endswith(":latest")
        assert ":" in entry["image"]


def test_there_is_one_dockerfile() -> None:
    assert [p for p in REPO.glob("services/*/Dockerfile")] == []
    assert DOCKERFILE.exists()


def test_the_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert len(stages) == 2
    assert all(image == "${PYTHON_IMAGE}" for image, _ in stages)
    assert "COPY --from=build /app/.venv /app/.venv" in text
    uv = re.search(r"^ARG UV_VERSION=(\S+)$", text, re.MULTILINE)
    assert uv is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+", uv.group(1))
    assert 'pip install --no-cache-dir "uv==${UV_VERSION}"' in text
    assert "uv sync --locked --no-dev --no-editable" in text
    assert re.search(r"^ARG SERVICE$", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["10001:10001"]
    assert "HEALTHCHECK" in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text  # a read-only root filesystem


def test_the_dockerfile_runs_what_the_package_declares() -> None:
    """pmm-service is a link to the service's console script, so every package needs one
    named pmm-<service>."""
    import tomllib

    for service in APPS:
        project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
        assert f"pmm-{service}" in project["project"]["scripts"]
