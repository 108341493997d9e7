"""The topic catalogue: every Kafka topic of the platform, declared once, in code.

``pmm-contracts topics`` provisions all of them (and their dead-letter topics)
idempotently. Organisation-facing signal topics are per organisation so that Kafka ACLs
can give each organisation its own two topics and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

DAY_MS = 24 * 60 * 60 * 1000
DLQ_SUFFIX = ".dlq"

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    producer: str
    consumers: tuple[str, ...]
    event_types: tuple[str, ...]
    description: str
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Kafka topic configs for provisioning."""
        config = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)


def dead_letter_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


# Names ------------------------------------------------------------------------------------

REGISTER_ORGANISATIONS = "pmm.register.organisations"
REGISTER_PROFESSIONALS = "pmm.register.professionals"
REGISTER_VERIFICATIONS = "pmm.register.verification-requests"
LOKET_CASES = "pmm.loket.cases"
LET_ESCALATIONS = "pmm.let.escalations"
OVERBRUGGING_APPLICATIONS = "pmm.overbrugging.applications"
SIGNALEN_SIGNALS = "pmm.signalen.signals"

_ORG_CODE = re.compile(r"^[a-z][a-z0-9]{1,31}$")


def signals_assigned_topic(org_code: str) -> str:
    """The topic on which organisation ``org_code`` receives the signals assigned to it."""
    return f"pmm.signalen.assigned.{_checked(org_code)}"


def signals_responses_topic(org_code: str) -> str:
    """The topic on which organisation ``org_code`` publishes its follow-up."""
    return f"pmm.signalen.responses.{_checked(org_code)}"


SIGNALS_RESPONSES_PATTERN = r"^pmm\.signalen\.responses\.[a-z][a-z0-9]{1,31}$"
"""Regex the signalen service subscribes with, to follow every organisation's answers.

Anchored at both ends: it must not match the dead-letter topics (``...responses.<org>.dlq``),
or a dead-lettered answer would be consumed again and dead-lettered into ``.dlq.dlq``."""


def _checked(org_code: str) -> str:
    if not _ORG_CODE.match(org_code):
        raise ValueError(f"organisation code must be lowercase letters/digits, got {org_code!r}")
    return org_code


# Catalogue --------------------------------------------------------------------------------

ALL_SERVICES = ("register", "loket", "let", "overbrugging", "signalen")

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=REGISTER_ORGANISATIONS,
        partitions=3,
        key="organisation code",
        cleanup_policy="compact",
        retention_ms=None,
        producer="register",
        consumers=("loket", "let", "signalen"),  # the overbrugging keeps no register
        event_types=("nl.maatwerk.register.organisation.state",),
        description="Compacted changelog: full current state of each organisation; "
        "a tombstone (null value) when removed.",
        extra_config={"min.compaction.lag.ms": "0"},
    ),
    TopicSpec(
        name=REGISTER_PROFESSIONALS,
        partitions=6,
        key="professional id",
        cleanup_policy="compact",
        retention_ms=None,
        producer="register",
        consumers=("loket", "let", "signalen"),  # the overbrugging keeps no register
        event_types=("nl.maatwerk.register.professional.state",),
        description="Compacted changelog: full current state of each professional; "
        "a tombstone (null value) on removal or erasure, so contact data disappears.",
        extra_config={"min.compaction.lag.ms": "0"},
    ),
    TopicSpec(
        name=REGISTER_VERIFICATIONS,
        partitions=3,
        key="professional id",
        cleanup_policy="delete",
        retention_ms=30 * DAY_MS,
        producer="register",
        consumers=(),
        event_types=("nl.maatwerk.register.professional.verification_requested",),
        description="Requests to a professional to verify a stale register entry.",
    ),
    TopicSpec(
        name=LOKET_CASES,
        partitions=6,
        key="case id",
        cleanup_policy="delete",
        retention_ms=-1,
        producer="loket",
        consumers=("let", "overbrugging", "signalen"),
        event_types=(
            "nl.maatwerk.case.submitted",
            "nl.maatwerk.case.triaged",
            "nl.maatwerk.case.assigned",
            "nl.maatwerk.case.status_changed",
            "nl.maatwerk.case.consultation_requested",
            "nl.maatwerk.case.consultation_answered",
            "nl.maatwerk.case.deadline_warning",
            "nl.maatwerk.case.escalation_requested",
            "nl.maatwerk.case.bridging_requested",
            "nl.maatwerk.case.closed",
            "nl.maatwerk.case.evaluated",
            "nl.maatwerk.case.anonymised",
        ),
        description="Every step of a case, without personal data; escalation and "
        "bridging requests and the evaluation travel here.",
    ),
    TopicSpec(
        name=LET_ESCALATIONS,
        partitions=3,
        key="escalation id",
        cleanup_policy="delete",
        retention_ms=-1,
        producer="let",
        consumers=("loket",),
        event_types=(
            "nl.maatwerk.escalation.opened",
            "nl.maatwerk.escalation.admissibility_decided",
            "nl.maatwerk.escalation.session_scheduled",
            "nl.maatwerk.escalation.agreement",
            "nl.maatwerk.escalation.concluded",
            "nl.maatwerk.escalation.withdrawn",
        ),
        description="Escalations to the Landelijk Escalatie Team and their outcomes.",
    ),
    TopicSpec(
        name=OVERBRUGGING_APPLICATIONS,
        partitions=3,
        key="application id",
        cleanup_policy="delete",
        retention_ms=-1,
        producer="overbrugging",
        consumers=("loket",),
        event_types=(
            "nl.maatwerk.bridging.received",
            "nl.maatwerk.bridging.decided",
            "nl.maatwerk.bridging.booked",
            "nl.maatwerk.bridging.responsible_party_determined",
            "nl.maatwerk.bridging.recovery_requested",
            "nl.maatwerk.bridging.closed",
        ),
        description="Bridging applications: decisions, payments, recovery.",
    ),
    TopicSpec(
        name=SIGNALEN_SIGNALS,
        partitions=3,
        key="signal id",
        cleanup_policy="delete",
        retention_ms=-1,
        producer="signalen",
        consumers=(),
        event_types=("nl.maatwerk.signal.changed",),
        description="Every signal's life cycle, for PMM's own monitoring.",
    ),
)


def org_topics(org_code: str) -> tuple[TopicSpec, TopicSpec]:
    """The two topics of one organisation: assigned signals (out) and responses (in)."""
    return (
        TopicSpec(
            name=signals_assigned_topic(org_code),
            partitions=1,
            key="signal id",
            cleanup_policy="delete",
            retention_ms=-1,
            producer="signalen",
            consumers=(f"organisation:{org_code}",),
            event_types=(
                "nl.maatwerk.signal.assigned",
                "nl.maatwerk.signal.followup_requested",
            ),
            description=f"Anonymised signals assigned to {org_code}, and reminders.",
        ),
        TopicSpec(
            name=signals_responses_topic(org_code),
            partitions=1,
            key="signal id",
            cleanup_policy="delete",
            retention_ms=-1,
            producer=f"organisation:{org_code}",
            consumers=("signalen",),
            event_types=("nl.maatwerk.signal.response",),
            description=f"Follow-up published by {org_code} on the signals assigned to it.",
        ),
    )


def by_name(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(name)
