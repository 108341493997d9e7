"""Events of the Landelijk Maatwerkregister (producer: ``register``).

The two changelog topics are compacted: each message is the full current state of one
organisation or professional, keyed by its id, and a tombstone removes it. Professionals'
work contact data is what the register exists to share; no citizen data is in here.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.envelope import EventData
from pmm_contracts.vocabulary import LifeDomain, OrganisationKind, Role

OrgCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,31}$", examples=["uwv", "gm0363"])]


class Commitment(BaseModel):
    """Bestuurlijke afspraken: what an organisation committed administratively."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    committed_on: date
    signed_by: str
    time: bool = False
    mandate: bool = False
    budget: bool = False
    own_escalation_route: bool = False


class OrganisationState(EventData):
    EVENT_TYPE = "nl.maatwerk.register.organisation.state"

    code: OrgCode
    name: str
    kind: OrganisationKind
    region: str | None = None
    joined_on: date | None = None
    left_on: date | None = None
    commitment: Commitment | None = None
    is_member: bool = Field(description="joined and not left: its professionals may act")
    version: int = Field(ge=1)


class Availability(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    available: bool = True
    absent_until: date | None = None
    deputy_id: str | None = None


class ProfessionalState(EventData):
    EVENT_TYPE = "nl.maatwerk.register.professional.state"

    id: str
    organisation: OrgCode
    name: str
    function: str | None = None
    roles: tuple[Role, ...]
    life_domains: tuple[LifeDomain, ...] = ()
    tags: tuple[str, ...] = ()
    email: str
    phone: str | None = None
    urgent_phone: str | None = None
    availability: Availability = Availability()
    last_verified_on: date
    stale: bool = False
    version: int = Field(ge=1)


class VerificationRequested(EventData):
    EVENT_TYPE = "nl.maatwerk.register.professional.verification_requested"

    professional_id: str
    organisation: OrgCode
    last_verified_on: date
    stale_since: date


EVENTS: tuple[type[EventData], ...] = (OrganisationState, ProfessionalState, VerificationRequested)
