"""Commands of the Loket: syntax is checked here, meaning in the use cases."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pmm_contracts.events.cases import (
    Bottleneck,
    CaseOutcome,
    LegalFramework,
    Money,
    Urgency,
)
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import FreeText, ShortText, passes_eleven_test
from pmm_contracts.vocabulary import LearningOrder, LifeDomain, SubmitterKind
from pmm_loket.domain.model import DeclineReason


def _not_a_bsn(reference: str) -> str:
    """A pseudonymous reference may not be (or hide) a BSN: every 8 or 9 digit stretch,
    dashes ignored, is checked with the eleven-test."""
    for run in re.findall(r"\d+", reference.replace("-", "")):
        for size in (8, 9):
            for start in range(len(run) - size + 1):
                if passes_eleven_test(run[start : start + size]):
                    raise ValueError(
                        "the household reference holds a number that passes the BSN "
                        "eleven-test; use a pseudonymous reference"
                    )
    return reference


HouseholdRef = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9-]{6,64}$"), AfterValidator(_not_a_bsn)
]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Household(Command):
    """Pseudonymous reference and composition only: no BSN, name, address or birth date."""

    reference: HouseholdRef = Field(description="pseudonymous household reference")
    adults: int = Field(ge=0, le=20)
    children: int = Field(ge=0, le=30)


class SubmitCase(Command):
    submitter_kind: SubmitterKind
    household: Household
    life_domains: Annotated[tuple[LifeDomain, ...], Field(min_length=1)]
    bottlenecks: Annotated[tuple[Bottleneck, ...], Field(min_length=1)]
    organisations_involved: Annotated[tuple[OrgCode, ...], Field(min_length=1)]
    tried_locally: FreeText = Field(
        min_length=10, description="what has been tried locally and regionally"
    )
    question: FreeText = Field(min_length=5)
    urgency: Urgency
    legal_basis: Literal["consent", "statutory"] = Field(
        description="legal basis for sharing: consent of the household or a statutory basis"
    )
    legal_basis_reference: ShortText | None = None


class Triage(Command):
    accepted: bool
    decline_reason: DeclineReason | None = None


class Assign(Command):
    case_director_id: str = Field(
        description="register id of a professional with role case_director"
    )
    reason: ShortText | None = Field(default=None, description="why (re)assigned")


class RequestConsultation(Command):
    organisation: OrgCode
    professional_id: str | None = None
    question: FreeText = Field(min_length=5)
    due: date | None = None


class AnswerConsultation(Command):
    answer: FreeText = Field(min_length=1)


class Note(Command):
    text: FreeText = Field(min_length=1)


class Suspend(Command):
    reason: ShortText
    expected_resume: date


class Reason(Command):
    reason: ShortText


class Resume(Command):
    reason: ShortText | None = None


class Escalate(Command):
    justification: FreeText = Field(min_length=10, description="what was tried")
    question: FreeText = Field(min_length=5, description="the question to the executives")
    organisations: Annotated[tuple[OrgCode, ...], Field(min_length=1)] | None = None


class RequestBridging(Command):
    provision: ShortText
    provider: ShortText
    estimated_amount: Money = Field(gt=Decimal(0))
    candidate_payers: Annotated[tuple[OrgCode, ...], Field(min_length=2)]
    legal_frameworks: tuple[LegalFramework, ...] = ()
    dispute: FreeText = Field(min_length=5)
    settle_attempt: FreeText = Field(min_length=5)


class Close(Command):
    outcome: CaseOutcome
    reason: ShortText | None = None


class LearningPointIn(Command):
    """A learning point; its id is given by the Loket. The description is anonymised:
    no names or addresses, and a number passing the BSN eleven-test is refused."""

    order: LearningOrder
    bottleneck: Bottleneck
    organisations: Annotated[tuple[OrgCode, ...], Field(min_length=1)] = Field(
        description="the organisation(s) or ministry concerned"
    )
    regulation_reference: ShortText | None = None
    life_domains: tuple[LifeDomain, ...] = ()
    description: FreeText = Field(min_length=1)


class Evaluate(Command):
    learning_points: Annotated[tuple[LearningPointIn, ...], Field(min_length=1, max_length=50)]
