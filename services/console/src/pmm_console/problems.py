"""Problem details in Dutch: a Dutch text per problem type, beside the service's own words.

Every service answers a refusal as RFC 9457 problem details whose ``type`` is
``urn:nl:pmm:problem:<kind>`` (``pmm_runtime.errors``, decision 0006); a request that does
not match its schema is ``invalid-input`` with one entry per field in ``errors[]``, each
with the validator's own ``type`` (``missing``, ``string_too_short``, ...). The console
shows a Dutch text chosen by that type, and keeps the service's ``detail`` (or the field's
``message``) beneath it: the text explains the kind of refusal, the detail says exactly
what the service found. Nothing is decided here; the service already did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pmm_console import labels

PROBLEM_TYPE_PREFIX = "urn:nl:pmm:problem:"  # pmm_runtime.errors.PROBLEM_TYPE_PREFIX


@dataclass(frozen=True)
class Message:
    """One refusal as the page shows it: Dutch ``text``, the service's ``detail`` beneath."""

    text: str
    detail: str = ""

    def __str__(self) -> str:
        return self.text


Errors = dict[str, list[Message]]
"""Messages per form field (``_form``: above the form)."""


# The platform's problem kinds (pmm_runtime.errors: ERROR_CLASSES and EDGE_KINDS).
KIND_TEXT = {
    "not-found": "Niet gevonden, of niet zichtbaar voor u.",
    "forbidden": "Dit mag niet met uw rol of voor uw organisatie.",
    "conflict": "Dit is intussen gewijzigd of bestaat al. Laad de pagina opnieuw en "
    "probeer het nog eens.",
    "not-in-state": "Dit kan niet in de huidige status.",
    "rule-violation": "Dit voldoet niet aan een regel van de dienst.",
    "invalid-input": "Deze invoer klopt niet.",
    "unauthorized": "U bent niet (meer) aangemeld. Meld u opnieuw aan.",
    "unavailable": "De dienst is even niet bereikbaar. Probeer het over enkele ogenblikken "
    "opnieuw.",
    "internal": "Er ging bij de dienst iets onverwachts mis. Probeer het later opnieuw.",
    "http": "De dienst kon dit verzoek niet verwerken.",
    "bad-request": "De dienst kon dit verzoek niet verwerken.",
}
# A problem without a (known) type: by its status.
STATUS_KIND = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    422: "invalid-input",
    500: "internal",
    502: "internal",
    503: "unavailable",
    504: "unavailable",
}
# The validator's types of one field of an ``invalid-input`` problem (pydantic's names).
INPUT_TEXT = {
    "missing": "Dit is verplicht.",
    "string_too_short": "Dit is te kort.",
    "string_too_long": "Dit is te lang.",
    "string_pattern_mismatch": "Dit heeft niet de vorm die hier hoort.",
    "string_type": "Vul hier tekst in.",
    "enum": "Kies een van de mogelijkheden.",
    "literal_error": "Kies een van de mogelijkheden.",
    "int_parsing": "Vul een heel getal in.",
    "int_type": "Vul een heel getal in.",
    "int_from_float": "Vul een heel getal in.",
    "float_parsing": "Vul een getal in.",
    "decimal_parsing": "Vul een bedrag in, bijvoorbeeld 1250,50.",
    "decimal_type": "Vul een bedrag in, bijvoorbeeld 1250,50.",
    "decimal_max_places": "Een bedrag heeft hoogstens twee cijfers achter de komma.",
    "greater_than": "Dit getal is te klein.",
    "greater_than_equal": "Dit getal is te klein.",
    "less_than": "Dit getal is te groot.",
    "less_than_equal": "Dit getal is te groot.",
    "bool_parsing": "Kies ja of nee.",
    "bool_type": "Kies ja of nee.",
    "date_parsing": "Vul een geldige datum in.",
    "date_from_datetime_parsing": "Vul een geldige datum in.",
    "date_type": "Vul een geldige datum in.",
    "datetime_parsing": "Vul een geldige datum en tijd in.",
    "too_short": "Dit zijn er te weinig.",
    "too_long": "Dit zijn er te veel.",
    "list_type": "Kies een of meer mogelijkheden.",
    "extra_forbidden": "Dit hoort niet bij dit formulier.",
    "value_error": "Deze waarde wordt niet geaccepteerd.",
    "uuid_parsing": "Dit is geen geldig kenmerk.",
    "url_parsing": "Vul een geldig webadres in.",
    "value_error.email": "Vul een geldig e-mailadres in.",
}

FIELD_CONFLICT_TEXT = "Dit bestaat al of is al in gebruik."
BSN_TEXT = (
    "Hier staat een nummer dat een BSN kan zijn (het voldoet aan de elfproef). Haal het weg: "
    "deel geen BSN of andere persoonsgegevens (AVG)."
)
BSN_REFERENCE_TEXT = (
    "Dit kenmerk bevat een nummer dat een BSN kan zijn (het voldoet aan de elfproef). "
    "Gebruik een pseudoniem kenmerk, bijvoorbeeld uw eigen dossierkenmerk."
)
IDEMPOTENCY_FIELD = "Idempotency-Key"  # the Loket's header on the intake (decision loket-0002)
IDEMPOTENCY_TEXT = (
    "Dit formulier is al eerder ingediend, met andere gegevens: die aanmelding staat bij "
    "Mijn casussen. Verstuur het formulier opnieuw als u een nieuwe casus wilt indienen."
)

# Which status table names a service's ``current_status`` (a not-in-state problem).
STATUS_TABLES: dict[str, Mapping[str, str]] = {
    "register": labels.MEMBERSHIP,
    "loket": labels.STATUS,
    "let": {**labels.AGREEMENT_STATUS, **labels.ESCALATION_STATUS},
    "overbrugging": labels.APPLICATION_STATUS,
    "signalen": {**labels.SIGNAL_STATUS, **labels.ASSIGNMENT_STATUS},
}


def kind_of(problem: Mapping[str, Any], status: int) -> str:
    """The problem's kind (``not-in-state``), from its ``type`` or else its status."""
    uri = str(problem.get("type") or "")
    if uri.startswith(PROBLEM_TYPE_PREFIX):
        kind = uri.removeprefix(PROBLEM_TYPE_PREFIX)
        if kind in KIND_TEXT:
            return kind
    return STATUS_KIND.get(status, "internal" if status >= 500 else "bad-request")


def _is_bsn(message: str) -> bool:
    lowered = message.lower()
    return "bsn" in lowered and "eleven-test" in lowered


def problem_text(service: str, status: int, problem: Mapping[str, Any]) -> str:
    """The Dutch text of a whole problem (shown above a form or on an error page)."""
    kind = kind_of(problem, status)
    if _is_bsn(str(problem.get("detail") or "")):
        return BSN_TEXT
    text = KIND_TEXT[kind]
    if kind == "not-in-state" and problem.get("current_status"):
        table = STATUS_TABLES.get(service, {})
        current = str(problem["current_status"])
        text = f"Dit kan niet in de huidige status ({table.get(current, current)})."
    return text


def field_text(field: str, error_type: str | None, message: str, problem_kind: str) -> str:
    """The Dutch text of one field's refusal."""
    if _is_bsn(message):
        return BSN_REFERENCE_TEXT if field.endswith("reference") else BSN_TEXT
    if field == IDEMPOTENCY_FIELD and "rule-violation" in (error_type, problem_kind):
        return IDEMPOTENCY_TEXT
    if problem_kind == "conflict" and error_type is None:
        return FIELD_CONFLICT_TEXT  # a 409 that names a field: a code or address taken
    if error_type and error_type in INPUT_TEXT:
        return INPUT_TEXT[error_type]
    if error_type and error_type in KIND_TEXT:
        return KIND_TEXT[error_type]
    return KIND_TEXT[problem_kind]
