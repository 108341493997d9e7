"""Identity: a bearer JWT (OIDC-style, RS256) names the person, organisation and roles.

Every request is verified (signature, issuer, audience, expiry). A missing, forged or
expired token answers 401; a valid token without the needed role answers 403. For
development and tests a local issuer signs tokens with a key pair under ``.local/issuer``:

    pmm-token keys                       # create the key pair (once)
    pmm-token --org uwv --role maatwerk_professional --sub p-1 --name "A. Jansen"
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALGORITHM = "RS256"
DEFAULT_KEY_DIR = Path(".local/issuer")


@dataclass(frozen=True)
class Identity:
    """Who is calling: register id of the person, their organisation code, their roles."""

    subject: str
    organisation: str
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str | None = None

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def actor(self) -> str:
        """How the person appears in audit trails."""
        return f"{self.organisation}:{self.subject}"


class TokenVerifier:
    def __init__(self, public_key_pem: str, *, issuer: str, audience: str) -> None:
        self._key = public_key_pem
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        organisation = claims.get("org")
        roles = claims.get("roles", [])
        if not isinstance(organisation, str) or not isinstance(roles, list):
            raise InvalidToken("token lacks the org and roles claims")
        return Identity(
            subject=str(claims["sub"]),
            organisation=organisation,
            roles=frozenset(str(r) for r in roles),
            name=claims.get("name"),
        )


class InvalidToken(Exception):
    pass


class LocalIssuer:
    """Signs development and test tokens. Never used by a deployed service."""

    def __init__(self, private_key_pem: str, *, issuer: str, audience: str) -> None:
        self._key = private_key_pem
        self._issuer = issuer
        self._audience = audience

    def issue(
        self,
        *,
        subject: str,
        organisation: str,
        roles: Sequence[str],
        name: str | None = None,
        ttl: timedelta = timedelta(hours=8),
        now: datetime | None = None,
    ) -> str:
        issued = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "org": organisation,
            "roles": list(roles),
            "iat": issued,
            "nbf": issued - timedelta(seconds=5),
            "exp": issued + ttl,
            "jti": str(uuid.uuid4()),
        }
        if name:
            claims["name"] = name
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


def generate_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def ensure_key_pair(directory: Path = DEFAULT_KEY_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "private.pem", directory / "public.pem"
    if not private_path.exists() or not public_path.exists():
        private, public = generate_key_pair()
        private_path.write_text(private, encoding="utf-8")
        private_path.chmod(0o600)
        public_path.write_text(public, encoding="utf-8")
    return private_path, public_path


# FastAPI dependencies -----------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="OIDC-style JWT (RS256)")


def current_identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from exc


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require_roles(*roles: str) -> Callable[[Identity], Identity]:
    """A dependency that admits only identities with one of ``roles`` (else 403)."""

    def check(identity: CurrentIdentity) -> Identity:
        if not identity.has_any(*roles):
            raise HTTPException(403, f"requires one of the roles: {', '.join(roles)}")
        return identity

    return check


# CLI ------------------------------------------------------------------------------------------


def token_cli(argv: list[str] | None = None) -> int:
    from pmm_runtime.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="pmm-token", description="Local development tokens.")
    parser.add_argument("command", nargs="?", choices=["issue", "keys"], default="issue")
    parser.add_argument("--org", default="pmm")
    parser.add_argument("--role", action="append", default=[], help="repeatable")
    parser.add_argument("--sub", default=None, help="register id of the person")
    parser.add_argument("--name", default=None)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    args = parser.parse_args(argv)
    private_path, public_path = ensure_key_pair(args.key_dir)
    if args.command == "keys":
        print(f"key pair: {private_path} {public_path}")
        return 0
    settings = ServiceSettings(service_name="token")
    issuer = LocalIssuer(
        private_path.read_text(encoding="utf-8"),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    token = issuer.issue(
        subject=args.sub or f"{args.org}-dev",
        organisation=args.org,
        roles=args.role or ["maatwerk_professional"],
        name=args.name,
        ttl=timedelta(hours=args.hours),
    )
    sys.stdout.write(token + "\n")
    return 0
