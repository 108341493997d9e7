"""The platform's one error set: typed errors that carry their HTTP status and field.

Pure Python (no web framework, no store), so a domain module raises these directly and the
HTTP edge renders every one of them the same way (``pmm_runtime.http``) as RFC 9457 problem
details. Each kind has a stable problem ``type`` URI, ``urn:nl:pmm:problem:<kind>``; the
kinds and their meaning are listed by ``GET /v1/problems`` of every service and in the
runtime README.

Which class to raise:

- ``NotFound`` (404): no such thing, or not for you (never hint that it exists).
- ``Forbidden`` (403): the caller's role or organisation may not do this.
- ``Conflict`` (409): the thing changed meanwhile, or exists already.
- ``NotInState`` (409): the action is not possible in the current status; names the
  current status and the statuses that allow it (workflow tables raise this).
- ``RuleViolation`` (422): a business rule about one input field; always names the field.
- ``Unavailable`` (503): a dependency (the store, the broker) is away; try again later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

PROBLEM_TYPE_PREFIX = "urn:nl:pmm:problem:"


class PlatformError(Exception):
    """Base of every error a use case or domain raises on purpose."""

    status: ClassVar[int] = 400
    kind: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    meaning: ClassVar[str] = "The request cannot be carried out as it is."

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra: dict[str, Any] = extra

    @classmethod
    def type_uri(cls) -> str:
        return PROBLEM_TYPE_PREFIX + cls.kind

    def problem(self) -> dict[str, Any]:
        """The problem document's members (without ``instance``)."""
        body: dict[str, Any] = {
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "error": type(self).__name__,
        }
        if self.field is not None:
            body["field"] = self.field
            body["errors"] = [{"field": self.field, "message": self.detail, "type": self.kind}]
        reserved = set(body) | {"instance"}
        body.update({k: v for k, v in self.extra.items() if k not in reserved})
        return body


class NotFound(PlatformError):
    status = 404
    kind = "not-found"
    title = "Not found"
    meaning = "There is no such resource, or it is not visible to the caller."


class NoSuchAggregate(NotFound):
    """The change loop found no aggregate with that id (a consumer may ignore this one,
    unlike a missing part of an aggregate that does exist)."""


class Forbidden(PlatformError):
    status = 403
    kind = "forbidden"
    title = "Forbidden"
    meaning = "The caller's role or organisation does not allow this action."


class Conflict(PlatformError):
    status = 409
    kind = "conflict"
    title = "Conflict"
    meaning = "The resource changed meanwhile or exists already; reload and try again."


class NotInState(Conflict):
    kind = "not-in-state"
    title = "Not possible in the current status"
    meaning = (
        "The action is not possible in the resource's current status; `current_status` "
        "names it and `allowed` the statuses it may move to."
    )

    def __init__(
        self,
        detail: str,
        *,
        current_status: str,
        allowed: Iterable[str] = (),
        required_status: Iterable[str] | None = None,
        **extra: Any,
    ) -> None:
        members: dict[str, Any] = {"current_status": current_status, "allowed": sorted(allowed)}
        if required_status is not None:
            members["required_status"] = sorted(required_status)
        super().__init__(detail, **members, **extra)
        self.current_status = current_status


class RuleViolation(PlatformError):
    status = 422
    kind = "rule-violation"
    title = "Business rule violated"
    meaning = "A business rule about one input field is not met; `field` names the field."

    def __init__(self, field: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, field=field, **extra)


class Unavailable(PlatformError):
    status = 503
    kind = "unavailable"
    title = "Service unavailable"
    meaning = "A dependency (the store or the broker) is not reachable; try again shortly."


# Kinds the HTTP edge produces itself (not raised by use cases).
EDGE_KINDS: dict[str, tuple[int, str, str]] = {
    "invalid-input": (
        422,
        "Invalid input",
        "The request does not match its schema; `errors[].field` names each bad field.",
    ),
    "unauthorized": (401, "Unauthorized", "No valid bearer token was given."),
    "http": (0, "HTTP error", "A protocol-level error (unknown path, wrong method)."),
    "internal": (500, "Internal error", "An unexpected failure; it was logged with its trace."),
}

ERROR_CLASSES: tuple[type[PlatformError], ...] = (
    NotFound,
    Forbidden,
    Conflict,
    NotInState,
    RuleViolation,
    Unavailable,
)


def catalogue() -> list[dict[str, Any]]:
    """Every problem kind with its type URI, status and meaning (for ``/v1/problems``)."""
    kinds = [
        {"type": c.type_uri(), "status": c.status, "title": c.title, "meaning": c.meaning}
        for c in ERROR_CLASSES
    ]
    kinds += [
        {"type": PROBLEM_TYPE_PREFIX + kind, "status": status, "title": title, "meaning": text}
        for kind, (status, title, text) in EDGE_KINDS.items()
    ]
    return kinds
