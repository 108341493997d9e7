"""Commands of the register: validated syntax (the use cases check meaning)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from pmm_contracts.events.register import OrgCode
from pmm_contracts.text import SINGLE_LINE, Name
from pmm_contracts.vocabulary import LifeDomain, OrganisationKind, Role

# Names and texts refuse NUL and control characters (pmm_contracts.text): 422 naming the field.
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{6,20}$")]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), SINGLE_LINE
]
SearchText = Annotated[str, StringConstraints(max_length=100), SINGLE_LINE]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), SINGLE_LINE]
ProfessionalId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateOrganisation(Command):
    code: OrgCode
    name: Name
    kind: OrganisationKind
    region: Name | None = None
    joined_on: date | None = Field(default=None, description="join right away on this date")


class UpdateOrganisation(Command):
    name: Name | None = None
    kind: OrganisationKind | None = None
    region: Name | None = None


class Join(Command):
    on: date


class Leave(Command):
    on: date


class Commit(Command):
    committed_on: date
    signed_by: Name
    time: bool = False
    mandate: bool = False
    budget: bool = False
    own_escalation_route: bool = False


class RegisterProfessional(Command):
    id: ProfessionalId | None = Field(
        default=None, description="optional stable id; generated when absent"
    )
    organisation: OrgCode
    name: Name
    function: Name | None = None
    roles: Annotated[tuple[Role, ...], Field(min_length=1)]
    life_domains: tuple[LifeDomain, ...] = ()
    tags: tuple[Tag, ...] = ()
    email: EmailStr
    phone: Phone | None = None
    urgent_phone: Phone | None = None


class UpdateProfessional(Command):
    name: Name | None = None
    function: Name | None = None
    roles: Annotated[tuple[Role, ...], Field(min_length=1)] | None = None
    life_domains: tuple[LifeDomain, ...] | None = None
    tags: tuple[Tag, ...] | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    urgent_phone: Phone | None = None


class Absence(Command):
    until: date
    deputy_id: Annotated[str, StringConstraints(max_length=64), SINGLE_LINE] | None = None


class SearchQuery(BaseModel):
    """The filters of a search (query parameters; paging comes with ``page_query``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    organisation: Annotated[str, StringConstraints(max_length=32), SINGLE_LINE] | None = None
    role: Role | None = None
    life_domain: LifeDomain | None = None
    tag: Tag | None = None
    q: SearchText | None = None
