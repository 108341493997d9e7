"""Typed settings from ``PMM_*`` environment variables: one class per process."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_OIN = "00000001234567890000"
"""Placeholder OIN for local development; production sets ``PMM_OIN``."""


class ServiceSettings(BaseSettings):
    """Settings every service shares; a service subclasses it for its own."""

    model_config = SettingsConfigDict(env_prefix="PMM_", extra="ignore", frozen=True)

    service_name: str = Field(description="name in the CloudEvents source URN and in logs")
    oin: str = Field(
        default=DEV_OIN,
        pattern=r"^\d{20}$",
        description="OIN of the operating organisation (CloudEvents source)",
    )
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str | None = Field(
        default=None,
        pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="default: from kafka_client_properties, else SASL_PLAINTEXT (SASL_SSL with "
        "a CA file) when a username is set, else the local broker's credentials file of this "
        "service when there is one, else PLAINTEXT (pmm_runtime.kafka_security)",
    )
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_file: Path | None = Field(default=None, description="CA of the broker's TLS listener")
    kafka_client_properties: Path | None = Field(
        default=None,
        description="client.properties (librdkafka/kcat format) with security.protocol, "
        "sasl.* and ssl.ca.location; kafka_bootstrap still names the broker",
    )
    kafka_credentials_dir: Path = Field(
        default=Path(".local/kafka/credentials"),
        description="where the local broker keeps <principal>.properties (deploy/local)",
    )
    kafka_replication_factor: int = Field(default=1, ge=1, description="for topics we create")
    kafka_min_insync_replicas: int = Field(default=1, ge=1, description="for topics we create")
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = Field(default="", description="defaults to pmm_<service_name>")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when no TTY")
    otel_exporter_otlp_endpoint: AnyHttpUrl | None = Field(
        default=None,
        description="OTLP/HTTP collector (e.g. http://otel-collector.observability:4318): "
        "traces are exported to <endpoint>/v1/traces; unset: no exporter (pmm_runtime.telemetry)",
    )
    otel_sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0, description="share of new traces recorded (parent-based)"
    )

    jwt_issuer: str = "urn:pmm:local-issuer"
    jwt_audience: str = "pmm"
    jwt_public_key_file: Path = Path(".local/issuer/public.pem")
    jwt_public_key: str | None = Field(default=None, description="PEM; overrides the file")

    kafka_metadata_max_age_ms: int = Field(
        default=30_000, ge=1_000, description="how soon a pattern subscription sees new topics"
    )
    consumer_batch_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="records a consumer takes at once: one key's in order, different keys "
        "concurrently, committed together; 1 handles one message at a time",
    )
    consumer_max_retries: int = Field(default=3, ge=0, le=20)
    consumer_retry_backoff_s: float = Field(default=0.2, ge=0)
    consumer_outage_patience_s: float = Field(
        default=240.0,
        ge=0,
        description="how long a handler is retried while the store is unreachable (the "
        "message is fine; it is not dead-lettered for that); below the consumer's "
        "max.poll.interval of 300 s",
    )
    outbox_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="relay poll for writes of other processes; a write in this process "
        "wakes the relay at once",
    )
    outbox_sweep_interval_s: float = Field(
        default=600.0,
        gt=0,
        description="full scan for unannounced outbox events (a crash between a write and "
        "its announcement); also at start-up",
    )
    store_write_strategy: str = Field(
        default="auto",
        pattern=r"^(auto|conditional|serialized)$",
        description="conditional writes: in the store's filter (MongoDB), or serialized per "
        "document with a lock and a bare _id filter (FerretDB 1.24); auto: by the server's "
        "buildInfo (pmm_runtime.writes, decision 0008)",
    )
    shutdown_grace_s: float = Field(default=20.0, gt=0)
    consumer_lag_interval_s: float = Field(
        default=15.0, gt=0, description="how often the consumer lag of each group is measured"
    )
    consumer_lag_threshold: int = Field(
        default=10_000,
        ge=1,
        description="above this many uncommitted messages in a group, /readyz says lagging",
    )
    group_prefix: str = Field(default="pmm", description="consumer group ids: <prefix>.<service>")

    @field_validator("otel_exporter_otlp_endpoint", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # compose's ${PMM_OTEL_...:-}

    @field_validator("mongodb_database")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        if "/" in value or " " in value:
            raise ValueError("a database name has no '/' or spaces")
        return value

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"pmm_{self.service_name}"

    @property
    def source(self) -> str:
        from pmm_contracts import source_urn

        return source_urn(self.oin, self.service_name)

    def group_id(self, purpose: str = "main") -> str:
        return f"{self.group_prefix}.{self.service_name}.{purpose}"

    def public_key_pem(self) -> str:
        if self.jwt_public_key:
            return self.jwt_public_key
        try:
            return self.jwt_public_key_file.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"no token verification key: set PMM_JWT_PUBLIC_KEY or create "
                f"{self.jwt_public_key_file} (`make keys`)"
            ) from exc
