"""A second, secured local broker for the tenant-isolation tests (deploy/local/kafka.sh).

SASL/SCRAM-SHA-512 on 127.0.0.1:19092, SASL_SSL on 19093 with the CA the script makes,
controller on 19094, state in .local/tenant-kafka (``PMM_TENANT_KAFKA_*`` override). Started
once per session within a bounded time and stopped afterwards if this session started it;
the catalogue's topics and the services' principals are provisioned by the same command
``make topics`` runs.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.connection import Connection
from pmm_runtime.testing import REPO_ROOT

START_TIMEOUT_S = 180


@dataclass(frozen=True)
class SecuredBroker:
    state_dir: Path
    bootstrap: str
    tls_bootstrap: str

    @property
    def credentials_dir(self) -> Path:
        return self.state_dir / "credentials"

    @property
    def orgs_dir(self) -> Path:
        return self.state_dir / "orgs"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "tls" / "ca.pem"

    def admin(self) -> Connection:
        return Connection.from_properties(self.credentials_dir / "admin.properties")

    def principal(self, name: str) -> Connection:
        return Connection.from_properties(self.credentials_dir / f"{name}.properties")

    def cli_args(self) -> list[str]:
        return [
            "--bootstrap",
            self.bootstrap,
            "--admin-properties",
            str(self.credentials_dir / "admin.properties"),
            "--credentials-dir",
            str(self.credentials_dir),
            "--orgs-dir",
            str(self.orgs_dir),
        ]


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="session")
def secured() -> Iterator[SecuredBroker]:
    env = os.environ.get
    port = int(env("PMM_TENANT_KAFKA_PORT") or 19092)
    state = Path(env("PMM_TENANT_KAFKA_STATE_DIR") or REPO_ROOT / ".local" / "tenant-kafka")
    script_env = {
        "PMM_KAFKA_SECURITY": "scram",
        "PMM_KAFKA_STATE_DIR": str(state),
        "PMM_KAFKA_PORT": str(port),
        "PMM_KAFKA_TLS_PORT": str(port + 1),
        "PMM_KAFKA_CONTROLLER_PORT": str(port + 2),
        "PMM_KAFKA_HEAP": "384m",
    }
    was_running = _script("status", script_env).returncode == 0
    started = _script("start", script_env)
    if started.returncode != 0:
        pytest.fail(f"the secured broker did not start:\n{started.stdout}\n{started.stderr}")
    broker = SecuredBroker(state, f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}")
    assert contracts_cli(["topics", *broker.cli_args()]) == 0
    yield broker
    if not was_running:
        _script("stop", script_env)


def login_error(conn: Connection) -> str:
    """The broker's answer when ``conn`` logs in and asks for metadata ("" when it worked)."""
    from confluent_kafka import KafkaError as RdKafkaError
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[RdKafkaError] = []
    admin = AdminClient({**conn.librdkafka_config(), "log_level": 0, "error_cb": errors.append})
    try:
        admin.list_topics(timeout=10)
    except KafkaException as exc:
        errors.append(exc.args[0])
        for _ in range(10):  # the authentication error arrives through error_cb
            admin.poll(0.5)
            if any(e.code() == RdKafkaError._AUTHENTICATION for e in errors):
                break
    auth = [e for e in errors if e.code() == RdKafkaError._AUTHENTICATION]
    return str(auth[0]) if auth else ("" if not errors else f"other: {errors[0]}")
