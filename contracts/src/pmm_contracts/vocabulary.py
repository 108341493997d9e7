"""The shared vocabulary of DESIGN.md §9: English values, each with its Dutch label."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING


class LabelledEnum(StrEnum):
    """A string enum whose members carry a Dutch label for reports and user interfaces."""

    label: str

    if TYPE_CHECKING:  # members are declared as (value, label); the value is the string

        @property
        def value(self) -> str: ...

    else:

        def __new__(cls, value: str, label: str) -> LabelledEnum:
            member = str.__new__(cls, value)
            member._value_ = value
            member.label = label
            return member

    @classmethod
    def labels(cls) -> dict[str, str]:
        return {member.value: member.label for member in cls}


class LifeDomain(LabelledEnum):
    FINANCES = "finances", "Financiën"
    DEBTS = "debts", "Schulden"
    INCOME = "income", "Inkomen"
    WORK_AND_EDUCATION = "work_and_education", "Werk en opleiding"
    DAYTIME_ACTIVITIES = "daytime_activities", "Dagbesteding"
    HOUSING = "housing", "Huisvesting"
    DOMESTIC_RELATIONS = "domestic_relations", "Huiselijke relaties"
    MENTAL_HEALTH = "mental_health", "Geestelijke gezondheid"
    PHYSICAL_HEALTH = "physical_health", "Lichamelijke gezondheid"
    ADDICTION = "addiction", "Verslaving"
    DAILY_LIVING = "daily_living", "Activiteiten dagelijks leven"
    SOCIAL_NETWORK = "social_network", "Sociaal netwerk"
    PARTICIPATION = "participation", "Maatschappelijke participatie"
    JUSTICE = "justice", "Justitie"
    PARENTING_AND_YOUTH = "parenting_and_youth", "Opvoeding en jeugd"
    RESIDENCE_STATUS = "residence_status", "Verblijfsstatus"


class BottleneckType(LabelledEnum):
    KNOWLEDGE_AND_SKILL = "knowledge_and_skill", "Kennis en kunde"
    COOPERATION = "cooperation", "(Domeinoverstijgende) samenwerking"
    COMMUNICATION = "communication", "Communicatie"
    ICT = "ict", "ICT"
    LAWS_AND_REGULATIONS = "laws_and_regulations", "Wet- en regelgeving"


class BottleneckSubtype(LabelledEnum):
    """Subtypes exist only for ``BottleneckType.LAWS_AND_REGULATIONS``."""

    NOT_FORESEEN = "not_foreseen", "Situatie niet voorzien in wet of beleid"
    INTERPRETATION_UNCLEAR = "interpretation_unclear", "Interpretatie onduidelijk"
    DEVIATION_CONDITIONS_UNCLEAR = (
        "deviation_conditions_unclear",
        "Voorwaarden om af te wijken onduidelijk",
    )


class LearningOrder(LabelledEnum):
    FIRST = "1", "Eerste orde: knelpunt oplossen voor deze casus"
    SECOND = "2", "Tweede orde: les die de volgende casus sneller helpt"
    THIRD = "3", "Derde orde: het systeem moet veranderen"


class OrganisationKind(LabelledEnum):
    MUNICIPALITY = "municipality", "Gemeente"
    EXECUTING_ORGANISATION = "executing_organisation", "Uitvoeringsorganisatie"
    MINISTRY = "ministry", "Ministerie"
    HEALTH_INSURER = "health_insurer", "Zorgverzekeraar"
    CARE_PROVIDER = "care_provider", "Zorgaanbieder"
    CIVIL_SOCIETY = "civil_society", "Maatschappelijke organisatie"


class Role(LabelledEnum):
    MAATWERK_PROFESSIONAL = "maatwerk_professional", "Maatwerkprofessional"
    AMBASSADOR = "ambassador", "Ambassadeur"
    CASE_DIRECTOR = "case_director", "Regievoerder"
    LET_CHAIR = "let_chair", "Voorzitter LET"
    EXECUTIVE = "executive", "Bestuurder"
    BUDGET_HOLDER = "budget_holder", "Budgethouder"
    PMM_STAFF = "pmm_staff", "Medewerker PMM"
    REGISTER_ADMIN = "register_admin", "Beheerder register"


class SubmitterKind(LabelledEnum):
    MUNICIPALITY = "municipality", "Gemeente"
    PUBLIC_SERVICE_PROVIDER = "public_service_provider", "Publieke dienstverlener"
    CARE_INSTITUTION = "care_institution", "Zorginstelling"
    OTHER = "other", "Overig"
