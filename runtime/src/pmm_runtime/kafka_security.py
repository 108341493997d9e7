"""The broker connection of a service: its typed settings turned into client arguments.

Every Kafka client of a service process (the FastStream broker, the tombstone producer, the
register's search index, admin clients) is built from ``connection(settings)``, so security is
decided in one place. Which credentials, in this order:

1. ``PMM_KAFKA_CLIENT_PROPERTIES``: a client.properties file (the format the local broker's
   script and ``make org-credentials`` write);
2. ``PMM_KAFKA_USERNAME`` / ``PMM_KAFKA_PASSWORD`` (``PMM_KAFKA_SECURITY_PROTOCOL``, default
   SASL_PLAINTEXT, or SASL_SSL when ``PMM_KAFKA_CA_FILE`` is set);
3. the local broker's credentials of this service,
   ``<kafka_credentials_dir>/pmm-<service>.properties`` (written by ``pmm-contracts topics``),
   when they are for the same bootstrap servers;
4. plaintext (``PMM_KAFKA_SECURITY_PROTOCOL`` if set).
"""

from __future__ import annotations

from typing import Any

from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from pmm_contracts.connection import Connection, local_connection
from pmm_runtime.settings import ServiceSettings


def connection(settings: ServiceSettings, *, client_id: str | None = None) -> Connection:
    """How this service reaches the broker (see the module docstring for the order)."""
    bootstrap = settings.kafka_bootstrap
    if settings.kafka_client_properties is not None:
        found = Connection.from_properties(settings.kafka_client_properties, bootstrap=bootstrap)
    elif settings.kafka_username:
        protocol = settings.kafka_security_protocol or (
            "SASL_SSL" if settings.kafka_ca_file else "SASL_PLAINTEXT"
        )
        password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
        found = Connection(
            bootstrap=bootstrap,
            security_protocol=protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_username,
            sasl_password=password,
            ssl_cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None,
        )
    elif settings.kafka_security_protocol not in (None, "PLAINTEXT"):
        raise ValueError(
            f"PMM_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "PMM_KAFKA_USERNAME/PMM_KAFKA_PASSWORD or PMM_KAFKA_CLIENT_PROPERTIES"
        )
    elif settings.kafka_security_protocol == "PLAINTEXT":
        found = Connection(bootstrap=bootstrap)
    else:
        found = local_connection(
            bootstrap, f"pmm-{settings.service_name}", directory=settings.kafka_credentials_dir
        )
    return found.with_client_id(client_id) if client_id else found


def aiokafka_kwargs(settings: ServiceSettings, *, client_id: str | None = None) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments of an aiokafka client."""
    return connection(settings, client_id=client_id).aiokafka_kwargs()


def faststream_security(conn: Connection) -> BaseSecurity | None:
    """The FastStream ``security=`` object of a connection (None for plaintext)."""
    context = conn.ssl_context()
    if not conn.uses_sasl:
        return BaseSecurity(ssl_context=context) if context is not None else None
    username, password = conn.sasl_username or "", conn.sasl_password or ""
    if conn.sasl_mechanism == "SCRAM-SHA-256":
        return SASLScram256(username, password, ssl_context=context, use_ssl=conn.uses_tls)
    if conn.sasl_mechanism not in (None, "SCRAM-SHA-512"):
        raise ValueError(f"SASL mechanism {conn.sasl_mechanism} is not supported (SCRAM only)")
    return SASLScram512(username, password, ssl_context=context, use_ssl=conn.uses_tls)
