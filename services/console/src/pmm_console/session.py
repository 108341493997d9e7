"""The console's session: a signed cookie holding the person's token and a CSRF secret.

The cookie is HttpOnly and SameSite=Lax (Secure unless configured off for plain-HTTP
development) and signed with HMAC-SHA256, so the browser can neither read the token from a
script nor change it. Every session, also before sign-in, has a random CSRF token that each
form (and each htmx request, as the ``X-CSRF-Token`` header) must send back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "pmm_console_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token: str | None = None
    expires: float = 0.0
    flash: str | None = None
    changed: bool = True
    organisation_name: str | None = None  # for the header (the token carries the code only)

    def sign_in(self, token: str, *, hours: float, organisation_name: str | None = None) -> None:
        """A new CSRF secret with every sign-in (no fixation of a pre-login token)."""
        self.token = token
        self.organisation_name = organisation_name
        self.csrf = secrets.token_urlsafe(24)
        self.expires = time.time() + hours * 3600
        self.changed = True

    def sign_out(self) -> None:
        self.token = None
        self.organisation_name = None
        self.csrf = secrets.token_urlsafe(24)
        self.expires = 0.0
        self.changed = True

    def say(self, message: str) -> None:
        """A message for the next page (after a redirect)."""
        self.flash = message
        self.changed = True

    def take_flash(self) -> str | None:
        message, self.flash = self.flash, None
        if message:
            self.changed = True
        return message

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf, sent or "")


class SessionCodec:
    """Seals a session into a cookie value and opens it again (or refuses a forged one)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(("pmm-console-session:" + secret).encode()).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def seal(self, session: Session) -> str:
        data: dict[str, Any] = {"c": session.csrf}
        if session.token:
            data.update(t=session.token, e=session.expires)
            if session.organisation_name:
                data["o"] = session.organisation_name
        if session.flash:
            data["f"] = session.flash
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def open(self, value: str | None, *, now: float | None = None) -> Session | None:
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        session = Session(csrf=data["c"], flash=data.get("f"), changed=False)
        token, expires = data.get("t"), data.get("e")
        if isinstance(token, str) and isinstance(expires, int | float):
            if expires > (time.time() if now is None else now):
                session.token, session.expires = token, float(expires)
                name = data.get("o")
                session.organisation_name = name if isinstance(name, str) else None
            else:
                session.changed = True  # expired: signed out
        return session
