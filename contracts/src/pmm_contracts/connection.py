"""How a client reaches the broker: address, SASL/SCRAM credentials and the CA of the TLS listener.

One ``Connection`` serves every client of the platform: aiokafka (``aiokafka_kwargs()``, the
services, the consumer kit), confluent-kafka/librdkafka (``librdkafka_config()``, the
provisioning of principals and ACLs) and a ``client.properties`` file in the format kcat
(``kcat -F``) and librdkafka read (``read_properties`` / ``write_properties``), the file an
organisation gets from ``make org-credentials``. The Java client reads the same settings in
its own format (``write_java_properties``).

The local broker's script (``deploy/local/kafka.sh``) writes the credentials of its principals
into ``.local/kafka/credentials/<principal>.properties``; ``local_connection`` finds them.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PLAINTEXT = "PLAINTEXT"
SASL_PLAINTEXT = "SASL_PLAINTEXT"
SASL_SSL = "SASL_SSL"
SCRAM_SHA_512 = "SCRAM-SHA-512"
SECURITY_PROTOCOLS = (PLAINTEXT, "SSL", SASL_PLAINTEXT, SASL_SSL)

CREDENTIALS_DIR_ENV = "PMM_KAFKA_CREDENTIALS_DIR"
DEFAULT_CREDENTIALS_DIR = Path(".local/kafka/credentials")


@dataclass(frozen=True)
class Connection:
    """How to reach the broker: bootstrap servers and one principal's credentials."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = PLAINTEXT
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"security.protocol is one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"{self.security_protocol} needs a username and a password")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", SASL_SSL)

    def with_client_id(self, client_id: str) -> Connection:
        return replace(self, client_id=client_id)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (verifying the broker against the CA file), or None without TLS."""
        if not self.uses_tls:
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``AIOKafkaProducer``/``Consumer``/``AdminClient``."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.client_id:
            options["client_id"] = self.client_id
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism or SCRAM_SHA_512
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    kwargs = aiokafka_kwargs  # the consumer kit's earlier name

    def librdkafka_config(self) -> dict[str, str]:
        """The configuration of a confluent-kafka client (librdkafka property names)."""
        config = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.client_id:
            config["client.id"] = self.client_id
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism or SCRAM_SHA_512
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = self.sasl_password or ""
        if self.ssl_cafile:
            config["ssl.ca.location"] = self.ssl_cafile
        return config

    def java_config(self) -> dict[str, str]:
        """The same for the Java client (``sasl.jaas.config``, a PEM trust store)."""
        config = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.uses_sasl:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            config["sasl.mechanism"] = self.sasl_mechanism or SCRAM_SHA_512
            config["sasl.jaas.config"] = (
                f'{module} required username="{self.sasl_username}" '
                f'password="{self.sasl_password}";'
            )
        if self.uses_tls and self.ssl_cafile:
            config["ssl.truststore.type"] = "PEM"
            config["ssl.truststore.location"] = self.ssl_cafile
        return config

    @classmethod
    def from_config(cls, config: dict[str, str], *, bootstrap: str | None = None) -> Connection:
        """From librdkafka-style properties (what ``read_properties`` returns)."""
        protocol = config.get("security.protocol", PLAINTEXT).upper()
        return cls(
            bootstrap=bootstrap or config.get("bootstrap.servers", cls.bootstrap),
            security_protocol=protocol,
            sasl_mechanism=config.get("sasl.mechanism")
            or (SCRAM_SHA_512 if protocol.startswith("SASL_") else None),
            sasl_username=config.get("sasl.username"),
            sasl_password=config.get("sasl.password"),
            ssl_cafile=config.get("ssl.ca.location"),
            client_id=config.get("client.id"),
        )

    @classmethod
    def from_properties(cls, path: Path | str, *, bootstrap: str | None = None) -> Connection:
        """From a ``client.properties`` file (kcat/librdkafka format)."""
        return cls.from_config(read_properties(Path(path)), bootstrap=bootstrap)


def read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines; ``#`` and ``!`` comments and blank lines are skipped."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not a key=value line: {line[:40]!r}")
        values[key.strip()] = value.strip()
    return values


def write_properties(path: Path, config: dict[str, str], *, comment: str | None = None) -> None:
    """Write ``config`` as a properties file readable only by its owner (it holds a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines += [f"{key}={value}" for key, value in config.items()]
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    tmp.replace(path)


def credentials_dir() -> Path:
    """Where the local broker's client properties are (``PMM_KAFKA_CREDENTIALS_DIR``)."""
    return Path(os.environ.get(CREDENTIALS_DIR_ENV) or DEFAULT_CREDENTIALS_DIR)


def local_connection(
    bootstrap: str, principal: str = "admin", *, directory: Path | None = None
) -> Connection:
    """``principal``'s credentials for the local broker at ``bootstrap``, else plaintext.

    The credentials are used only when their file names the same bootstrap servers, so a
    client pointed at another broker never sends them there.
    """
    path = (directory or credentials_dir()) / f"{principal}.properties"
    if path.is_file():
        found = Connection.from_properties(path)
        if found.bootstrap == bootstrap:
            return found
    return Connection(bootstrap=bootstrap)
