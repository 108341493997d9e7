"""Fixtures of the ops tests: the manifests as kustomize renders them, and what the code
says they must agree with (each service's subscriptions, settings and version).

No broker, store, Docker or cluster: the overlays are rendered with kustomize v5
(deploy/k8s/kustomize.sh finds or builds one) and parsed with PyYAML; the services' apps
are built as ``create_app`` builds them, which connects to nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pmm_runtime.auth import generate_key_pair
from pmm_runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
OVERLAYS = ("production", "local")


@dataclass(frozen=True)
class Consumer:
    """One subscriber of a service's broker: its consumer group and what it reads."""

    group: str
    topics: tuple[str, ...]
    pattern: str | None


@dataclass(frozen=True)
class ServiceCode:
    name: str
    settings: ServiceSettings
    version: str
    consumers: tuple[Consumer, ...]


def _settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"pmm_{service}.settings")
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(classes) == 1, classes
    return classes[0]


@pytest.fixture(scope="session")
def code() -> dict[str, ServiceCode]:
    """Each service's settings (defaults, as a pod without overrides has them), version and
    the subscribers its ``create_app`` put on the broker."""
    from importlib.metadata import version

    saved = {k: v for k, v in os.environ.items() if k.startswith("PMM_")}
    for name in saved:
        del os.environ[name]
    try:
        public_key = generate_key_pair()[1]
        result = {}
        for service in SERVICES:
            settings = _settings_class(service)(jwt_public_key=public_key, log_json=True)
            app = importlib.import_module(f"pmm_{service}.app").create_app(settings)
            consumers = tuple(
                Consumer(
                    group=sub.group_id,
                    topics=tuple(t.name for t in sub.topics),
                    pattern=None if sub.pattern is None else sub.pattern.template,
                )
                for sub in app.state.platform.broker.subscribers
            )
            result[service] = ServiceCode(service, settings, version(f"pmm-{service}"), consumers)
        return result
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    path = REPO / "deploy" / "k8s" / "generate.py"
    spec = importlib.util.spec_from_file_location("pmm_deploy_generate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def issuer_public_key() -> str:
    return generate_key_pair()[1]


class Manifests:
    """The rendered documents of one overlay."""

    def __init__(self, overlay: str, documents: list[dict[str, Any]]) -> None:
        self.overlay = overlay
        self.documents = documents

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} named {name}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.of(kind)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.documents)


@pytest.fixture(scope="session")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, issuer_public_key: str
) -> dict[str, Manifests]:
    """Every overlay rendered by kustomize, from a copy of deploy/ with an issuer key in each
    overlay (as an operator puts it there)."""
    copy = tmp_path_factory.mktemp("deploy") / "deploy"
    for part in ("k8s", "k8s-overlays"):
        shutil.copytree(REPO / "deploy" / part, copy / part)
    result = {}
    for overlay in OVERLAYS:
        (copy / "k8s-overlays" / overlay / "issuer-public.pem").write_text(
            issuer_public_key, encoding="utf-8"
        )
        done = subprocess.run(
            [
                "bash",
                str(REPO / "deploy" / "k8s" / "kustomize.sh"),
                "build",
                str(copy / "k8s-overlays" / overlay),
            ],
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        documents = [d for d in yaml.safe_load_all(done.stdout) if d]
        result[overlay] = Manifests(overlay, documents)
    return result


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest, rendered: dict[str, Manifests]) -> Manifests:
    overlay: str = request.param
    return rendered[overlay]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text("utf-8"))
    return data
