"""Dutch labels for what the services answer, and which action forms a case page offers.

The vocabulary's own labels (life domains, bottleneck types, roles, ...) come from
``pmm_contracts.vocabulary``; the labels below are for values that the contracts keep
without one (case status, urgency, outcome, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pmm_contracts.vocabulary import (
    BottleneckSubtype,
    BottleneckType,
    LearningOrder,
    LifeDomain,
    OrganisationKind,
    Role,
    SubmitterKind,
)

STATUS = {
    "submitted": "Ingediend",
    "accepted": "Geaccepteerd",
    "declined": "Niet in behandeling genomen",
    "in_progress": "In behandeling",
    "on_hold": "Aangehouden",
    "escalated": "Voorgelegd aan het LET",
    "closed": "Afgesloten",
    "evaluated": "Geëvalueerd",
}
URGENCY = {
    "acute": "Acuut: bestaanszekerheid nu in gevaar",
    "threatened": "Bestaanszekerheid bedreigd",
    "none": "Geen spoed",
}
URGENCY_SHORT = {"acute": "Acuut", "threatened": "Bedreigd", "none": "Geen spoed"}
TIMELINESS = {"on_time": "Op tijd", "late": "Te laat", "very_late": "Ruim te laat"}
LEGAL_BASIS = {
    "consent": "Toestemming van het huishouden",
    "statutory": "Wettelijke grondslag",
}
DECLINE_REASON = {
    "not_tried_locally": "Lokaal en regionaal nog niet alles geprobeerd",
    "out_of_scope": "Valt buiten het Maatwerkloket",
    "duplicate": "Dubbele aanmelding",
    "withdrawn": "Ingetrokken door de indiener",
}
OUTCOME = {
    "solved": "Opgelost",
    "partly_solved": "Gedeeltelijk opgelost",
    "not_solved": "Niet opgelost",
}
LEGAL_FRAMEWORK = {
    "wmo_2015": "Wmo 2015",
    "jeugdwet": "Jeugdwet",
    "zvw": "Zorgverzekeringswet",
    "wlz": "Wet langdurige zorg",
    "participatiewet": "Participatiewet",
    "other": "Anders",
}
AUDIT_ACTION = {
    "case.read": "Dossier ingezien",
    "case.submitted": "Ingediend",
    "case.triaged": "Beoordeeld",
    "case.assigned": "Toegewezen",
    "consultation.requested": "Consultatie gevraagd",
    "consultation.answered": "Consultatie beantwoord",
    "case.note": "Notitie",
    "case.suspended": "Aangehouden",
    "case.resumed": "Hervat",
    "case.reopened": "Heropend",
    "case.escalation_requested": "Voorgelegd aan het LET",
    "case.bridging_requested": "Overbrugging gevraagd",
    "case.closed": "Afgesloten",
    "case.evaluated": "Geëvalueerd",
    "case.anonymised": "Geanonimiseerd",
}

MEMBERSHIP = {  # pmm_register.domain.model.Membership
    "candidate": "Nog niet aangesloten",
    "member": "Aangesloten",
    "left": "Vertrokken",
}

SIGNAL_STATUS = {"open": "Open", "closed": "Afgerond", "merged": "Samengevoegd"}
ASSIGNMENT_STATUS = {
    "assigned": "Belegd, nog geen antwoord",
    "received": "Ontvangen",
    "in_progress": "In behandeling",
    "measure_taken": "Maatregel genomen",
    "no_action": "Geen actie",
    "forwarded": "Doorgestuurd",
    "withdrawn": "Ingetrokken",
}
RESPONSE_STATUS = {k: v for k, v in ASSIGNMENT_STATUS.items() if k not in ("assigned", "withdrawn")}

ESCALATION_STATUS = {
    "requested": "Aangevraagd",
    "admitted": "Ontvankelijk",
    "refused": "Niet ontvankelijk",
    "scheduled": "Sessie gepland",
    "held": "Sessie gehouden",
    "concluded": "Afgerond",
    "withdrawn": "Ingetrokken",
}
ESCALATION_OUTCOME = {
    "breakthrough": "Doorbraak",
    "partial": "Gedeeltelijke doorbraak",
    "none": "Geen doorbraak",
}
AGREEMENT_STATUS = {"open": "Open", "overdue": "Over de termijn", "done": "Uitgevoerd"}

# The LET answers an escalation without its allowed next steps, so this table (a display
# hint, like STEADY_ACTIONS; the LET decides and its 409 is shown) names the forms per status,
# after the LET's workflow table (services/let: ALLOWED_TRANSITIONS).
ESCALATION_ACTIONS: dict[str, list[str]] = {
    "requested": ["admissibility", "withdraw"],
    "admitted": ["schedule", "withdraw"],
    "scheduled": ["attendance", "withdraw"],
    "held": ["agreement", "outcome"],
}

# The LET's and the overbruggingsprocedure's state as the Loket keeps it in the case file
# (services/loket: Case.escalation_update, Case.bridging_update).
CASE_ESCALATION_STATUS = {
    "requested": "Gevraagd, nog niet bij het LET",
    "opened": "Bij het LET",
    "admitted": "Ontvankelijk",
    "refused": "Niet ontvankelijk",
    "concluded": "Afgerond",
    "withdrawn": "Ingetrokken",
}
CASE_BRIDGING_STATUS = {
    "requested": "Gevraagd",
    "received": "Ontvangen",
    "approved": "Toegekend",
    "rejected": "Afgewezen",
    "paid": "Betaald",
    "determined": "Verantwoordelijke partij bepaald",
    "recovering": "Terugvordering loopt",
    "recovered": "Terugbetaald",
    "released": "Garantie vervallen",
    "written_off": "Afgeschreven",
}

APPLICATION_STATUS = {
    "received": "Ontvangen",
    "approved": "Toegekend",
    "rejected": "Afgewezen",
    "paid": "Voorschot betaald",
    "called": "Garantie ingeroepen",
    "released": "Garantie vervallen",
    "determined": "Verantwoordelijke partij bepaald",
    "recovery_requested": "Terugvordering gevraagd",
    "recovered": "Terugbetaald",
    "written_off": "Afgeschreven",
}
BRIDGING_FORM = {"advance": "Voorschot", "guarantee": "Garantstelling"}
CONDITIONS = {
    "need_established": "De benodigde ondersteuning staat vast",
    "provision_available": "De voorziening is beschikbaar",
    "financing_disputed": "Onduidelijk welke partij betaalt",
    "urgency": "Er is spoed",
    "settle_attempt": "Partijen hebben geprobeerd het te regelen",
}
LEDGER_KIND = {  # pmm_contracts.events.bridging.LedgerEntryKind
    "commitment": "Verplichting",
    "payment": "Betaling",
    "release": "Vrijval",
    "recovery": "Terugontvangst",
    "write_off": "Afschrijving",
    "guarantee_called": "Garantie ingeroepen",
}

LIFE_DOMAINS = LifeDomain.labels()
BOTTLENECK_TYPES = BottleneckType.labels()
BOTTLENECK_SUBTYPES = BottleneckSubtype.labels()
LEARNING_ORDERS = LearningOrder.labels()
LEARNING_ORDERS_SHORT = {"1": "Eerste orde", "2": "Tweede orde", "3": "Derde orde"}
ROLES = Role.labels()
SUBMITTER_KINDS = SubmitterKind.labels()
ORGANISATION_KINDS = OrganisationKind.labels()

# Bottleneck choices of the intake form: each type, and laws and regulations per subtype.
BOTTLENECK_CHOICES: list[tuple[str, str]] = [
    (value, label)
    for value, label in BOTTLENECK_TYPES.items()
    if value != BottleneckType.LAWS_AND_REGULATIONS.value
] + [
    (f"{BottleneckType.LAWS_AND_REGULATIONS.value}:{sub}", f"Wet- en regelgeving: {label}")
    for sub, label in BOTTLENECK_SUBTYPES.items()
]


def bottleneck_label(item: Mapping[str, Any]) -> str:
    label = BOTTLENECK_TYPES.get(str(item.get("type")), str(item.get("type")))
    subtype = item.get("subtype")
    return f"{label}: {BOTTLENECK_SUBTYPES.get(str(subtype), str(subtype))}" if subtype else label


# Which action forms a case page shows. The Loket answers each case with ``allowed_next``
# (the statuses its workflow table allows from here); the forms that move the case follow
# from that answer. The actions that do not change the status (note, consultation,
# reassignment, bridging) have no such answer, so this table names the statuses in which
# the Loket accepts them. It is a display hint only: the Loket decides, and a refusal
# (409 with the allowed statuses) is shown as it answers it.
STEADY_ACTIONS: dict[str, frozenset[str]] = {
    "note": frozenset(STATUS),
    "consult": frozenset({"in_progress", "on_hold", "escalated"}),
    "reassign": frozenset({"in_progress", "on_hold", "escalated"}),
    "bridging": frozenset({"in_progress", "escalated"}),
}
MOVES: list[tuple[str, str, frozenset[str]]] = [
    # (action, target status in allowed_next, from which statuses)
    ("triage", "accepted", frozenset({"submitted"})),
    ("assign", "in_progress", frozenset({"accepted"})),
    ("resume", "in_progress", frozenset({"on_hold"})),
    ("reopen", "in_progress", frozenset({"closed"})),
    ("suspend", "on_hold", frozenset({"in_progress"})),
    ("escalate", "escalated", frozenset({"in_progress"})),
    ("close", "closed", frozenset({"in_progress", "escalated"})),
    ("evaluate", "evaluated", frozenset({"closed"})),
]
ACTION_ORDER = [
    "triage",
    "assign",
    "reassign",
    "consult",
    "note",
    "suspend",
    "resume",
    "escalate",
    "bridging",
    "close",
    "reopen",
    "evaluate",
]


def case_actions(status: str, allowed_next: Iterable[str]) -> list[str]:
    """The action forms to show for a case with ``status`` and the Loket's ``allowed_next``."""
    allowed = set(allowed_next)
    found = {a for a, target, sources in MOVES if target in allowed and status in sources}
    found |= {a for a, statuses in STEADY_ACTIONS.items() if status in statuses}
    return [a for a in ACTION_ORDER if a in found]


# Form fields as the error summary names them (the services name them in English).
FIELD_LABELS = {
    "submitter_kind": "Soort organisatie",
    "household.reference": "Kenmerk van het huishouden",
    "household.adults": "Volwassenen",
    "household.children": "Kinderen",
    "life_domains": "Leefgebieden",
    "bottlenecks": "Knelpunten",
    "organisations_involved": "Betrokken organisaties",
    "tried_locally": "Wat is lokaal geprobeerd",
    "question": "Vraag",
    "urgency": "Urgentie",
    "legal_basis": "Grondslag",
    "legal_basis_reference": "Verwijzing grondslag",
    "accepted": "Besluit",
    "decline_reason": "Reden",
    "case_director_id": "Regievoerder",
    "reason": "Reden",
    "organisation": "Organisatie",
    "professional_id": "Persoon",
    "due": "Antwoord vóór",
    "text": "Notitie",
    "expected_resume": "Verwacht hervatten op",
    "justification": "Wat is er al gedaan",
    "provision": "Voorziening",
    "provider": "Aanbieder",
    "estimated_amount": "Geschat bedrag",
    "candidate_payers": "Mogelijke betalers",
    "legal_frameworks": "Wettelijke kaders",
    "dispute": "Verschil van inzicht",
    "settle_attempt": "Poging tot regelen",
    "outcome": "Uitkomst",
    "answer": "Antwoord",
    **{
        f"lp{slot}_{name}": f"Leerpunt {slot + 1}: {label}"
        for slot in range(2)
        for name, label in (
            ("order", "orde"),
            ("bottleneck", "knelpunt"),
            ("organisations", "belegd bij"),
            ("description", "beschrijving"),
        )
    },
}
