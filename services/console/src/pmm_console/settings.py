"""Settings of the console (environment variables ``PMM_*``; its own are ``PMM_CONSOLE_*``)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from pmm_runtime.settings import ServiceSettings


def _own(name: str) -> AliasChoices:
    """``PMM_CONSOLE_<NAME>`` in the environment, ``<name>`` in code."""
    return AliasChoices(name, f"PMM_CONSOLE_{name.upper()}")


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="PMM_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = "console"
    http_port: int = 8000
    register_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias=_own("register_url")
    )
    loket_url: str = Field(default="http://127.0.0.1:8002", validation_alias=_own("loket_url"))
    let_url: str = Field(default="http://127.0.0.1:8003", validation_alias=_own("let_url"))
    overbrugging_url: str = Field(
        default="http://127.0.0.1:8004", validation_alias=_own("overbrugging_url")
    )
    signalen_url: str = Field(
        default="http://127.0.0.1:8005", validation_alias=_own("signalen_url")
    )
    service_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias=_own("service_timeout_s"), description="per call"
    )
    session_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        min_length=16,
        validation_alias=_own("session_secret"),
        description="signs the session cookie; every replica needs the same one "
        "(default: random per process, so a restart signs everyone out)",
    )
    session_hours: float = Field(default=8.0, gt=0, validation_alias=_own("session_hours"))
    cookie_secure: bool = Field(
        default=True,
        validation_alias=_own("cookie_secure"),
        description="send the session cookie over HTTPS only; false for plain-HTTP development",
    )
    dev_login: bool = Field(
        default=False,
        validation_alias=_own("dev_login"),
        description="offer the development sign-in that signs tokens with the local issuer key",
    )
    dev_issuer_key_file: Path = Field(
        default=Path(".local/issuer/private.pem"),
        validation_alias=_own("dev_issuer_key_file"),
        description="private key of the local issuer (development sign-in only)",
    )
