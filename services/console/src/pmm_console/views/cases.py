"""The Loket's screens: intake, my cases, the work queue, the case file and its actions,
and the consultations addressed to my organisation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.clients import PageResult, ServiceError
from pmm_console.context import Ctx, UserCtx, errors_for_fields
from pmm_console.problems import IDEMPOTENCY_FIELD, Errors, Message

STAFF = ("case_director", "pmm_staff")
IDEMPOTENCY_FORM_FIELD = "idempotency_key"  # hidden field of the intake form
PAGE_SIZE = 50

INTAKE_FIELDS = (
    "submitter_kind",
    "household.reference",
    "household.adults",
    "household.children",
    "life_domains",
    "bottlenecks",
    "organisations_involved",
    "tried_locally",
    "question",
    "urgency",
    "legal_basis",
    "legal_basis_reference",
)

# action -> (the Loket's path under /cases/{id}/, the form's fields)
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "triage": ("triage", ("accepted", "decline_reason")),
    "assign": ("assign", ("case_director_id", "reason")),
    "reassign": ("assign", ("case_director_id", "reason")),
    "consult": ("consultations", ("organisation", "professional_id", "question", "due")),
    "note": ("notes", ("text",)),
    "suspend": ("suspend", ("reason", "expected_resume")),
    "resume": ("resume", ("reason",)),
    "reopen": ("reopen", ("reason",)),
    "escalate": ("escalate", ("justification", "question")),
    "bridging": (
        "bridging",
        (
            "provision",
            "provider",
            "estimated_amount",
            "candidate_payers",
            "legal_frameworks",
            "dispute",
            "settle_attempt",
        ),
    ),
    "close": ("close", ("outcome", "reason")),
    "evaluate": ("evaluation", ()),
}
MULTI_FIELDS = {"life_domains", "bottlenecks", "organisations_involved"}
LIST_FIELDS = {"candidate_payers", "legal_frameworks"}
LEARNING_POINT_SLOTS = 2
LEARNING_POINT_FIELDS = ("order", "bottleneck", "organisations", "life_domains", "description")


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _number(value: str | None) -> int | str | None:
    """An integer when it is one; else as typed, so the service names what is wrong."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _amount(value: str | None) -> str | None:
    """Dutch notation (``1.250,50``) as the service reads amounts (``1250.50``)."""
    if value and "," in value:
        return value.replace(".", "").replace(",", ".")
    return value


def _drop_empty(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v not in (None, [], "")}


def _bottleneck(value: str) -> dict[str, str]:
    kind, _, subtype = value.partition(":")
    return {"type": kind, "subtype": subtype} if subtype else {"type": kind}


def submission(form: FormData) -> dict[str, Any]:
    """The Loket's SubmitCase body from the intake form (as typed; the Loket validates)."""
    household = _drop_empty(
        {
            "reference": _text(form, "household.reference"),
            "adults": _number(_text(form, "household.adults")),
            "children": _number(_text(form, "household.children")),
        }
    )
    return _drop_empty(
        {
            "submitter_kind": _text(form, "submitter_kind"),
            "household": household or None,
            "life_domains": [str(v) for v in form.getlist("life_domains")],
            "bottlenecks": [_bottleneck(str(v)) for v in form.getlist("bottlenecks")],
            "organisations_involved": [str(v) for v in form.getlist("organisations_involved")],
            "tried_locally": _text(form, "tried_locally"),
            "question": _text(form, "question"),
            "urgency": _text(form, "urgency"),
            "legal_basis": _text(form, "legal_basis"),
            "legal_basis_reference": _text(form, "legal_basis_reference"),
        }
    )


def command(action: str, form: FormData) -> dict[str, Any]:
    """The body of the Loket's command for ``action`` from its form."""
    if action == "triage":
        accepted = _text(form, "accepted")
        return _drop_empty(
            {
                "accepted": {"yes": True, "no": False}.get(accepted or "", accepted),
                "decline_reason": _text(form, "decline_reason"),
            }
        )
    if action == "evaluate":
        points = []
        for slot in range(LEARNING_POINT_SLOTS):
            point = _drop_empty(
                {
                    "order": _text(form, f"lp{slot}_order"),
                    "bottleneck": (
                        _bottleneck(b) if (b := _text(form, f"lp{slot}_bottleneck")) else None
                    ),
                    "organisations": [str(v) for v in form.getlist(f"lp{slot}_organisations")],
                    "life_domains": [str(v) for v in form.getlist(f"lp{slot}_life_domains")],
                    "description": _text(form, f"lp{slot}_description"),
                }
            )
            if point:
                points.append(point)
        return {"learning_points": points}
    body: dict[str, Any] = {}
    for name in ACTIONS[action][1]:
        if name in LIST_FIELDS:
            body[name] = [str(v) for v in form.getlist(name)]
        elif name == "estimated_amount":
            body[name] = _amount(_text(form, name))
        else:
            body[name] = _text(form, name)
    return _drop_empty(body)


def action_errors(action: str, error: ServiceError) -> Errors:
    fields = error.field_errors()
    if action == "evaluate":
        known = [f"lp{s}_{f}" for s in range(LEARNING_POINT_SLOTS) for f in LEARNING_POINT_FIELDS]
        renamed: Errors = {}
        for path, messages in fields.items():
            parts = path.split(".")
            if parts[0] == "learning_points" and len(parts) >= 3 and parts[1].isdigit():
                path = f"lp{parts[1]}_{parts[2]}"
            renamed.setdefault(path, []).extend(messages)
        placed = errors_for_fields(renamed, known)
    else:
        placed = errors_for_fields(fields, ACTIONS[action][1])
    if not fields or error.status != 422:
        placed.setdefault("_form", []).append(error.message())
    return placed


URGENCY_ORDER = {"acute": 0, "threatened": 1, "none": 2}


def by_urgency(cases: Iterable[dict[str, Any]], deadline: str = "case_due") -> list[dict[str, Any]]:
    """Most urgent first, then the nearest deadline."""
    return sorted(
        cases,
        key=lambda c: (
            URGENCY_ORDER.get(str(c.get("urgency")), 9),
            str(c.get(deadline) or c.get("intake_due") or "9999"),
        ),
    )


async def organisations(ctx: Ctx) -> tuple[list[dict[str, Any]], Message | None]:
    """The register's organisations as this person may read them (or why not): every page,
    so that each code on a page gets its name (there are more than a page of municipalities)."""
    try:
        found = await ctx.services.register.every("/organisations", ctx.token)
    except ServiceError as exc:
        return [], exc.message()
    return sorted(found, key=lambda o: str(o.get("name"))), None


async def case_directors(ctx: Ctx) -> list[dict[str, Any]]:
    try:
        page = await ctx.services.register.page(
            "/professionals", ctx.token, {"role": "case_director"}, page_size=100
        )
    except ServiceError:
        return []
    return sorted(page.items, key=lambda p: str(p.get("name")))


def new_idempotency_key() -> str:
    """One key per rendered intake form (decision loket-0002): sent as the Loket's
    ``Idempotency-Key`` header, so a double submit or a retried post makes one case."""
    return str(uuid.uuid4())


async def submit_case(
    ctx: Ctx, body: dict[str, Any], idempotency_key: str | None
) -> tuple[dict[str, Any], bool]:
    """The Loket's intake under the form's key: the case, and whether the Loket answered
    the case this key made before (``Idempotent-Replayed: true``) instead of a new one."""
    headers = {IDEMPOTENCY_FIELD: idempotency_key} if idempotency_key else None
    case, answered = await ctx.services.loket.send(
        "POST", "/cases", ctx.token, json=body, headers=headers
    )
    return case, answered.get("Idempotent-Replayed", "").lower() == "true"


async def people(ctx: Ctx, ids: Iterable[str | None]) -> dict[str, str]:
    """The register's names of these people (ids it does not answer stay ids on the page)."""
    wanted = sorted({i for i in ids if i})

    async def one(person: str) -> tuple[str, str] | None:
        try:
            found = await ctx.services.register.get(f"/professionals/{person}", ctx.token)
        except ServiceError:
            return None
        name = found.get("name") if isinstance(found, dict) else None
        return (person, str(name)) if name else None

    answers = await asyncio.gather(*(one(i) for i in wanted))
    return dict(a for a in answers if a is not None)


async def named_actors(
    ctx: Ctx, actors: Iterable[str], org_names: dict[str, str]
) -> dict[str, str]:
    """``organisation:person`` as audit trails and notes name people -> ``Name (Organisation)``
    from the register (what it does not know stays as it is)."""
    split = {a: a.partition(":") for a in actors}
    persons = await people(ctx, [p for _, sep, p in split.values() if sep])
    return {
        actor: f"{persons[person]} ({org_names.get(org, org)})"
        for actor, (org, sep, person) in split.items()
        if sep and person in persons
    }


def names(items: Iterable[dict[str, Any]], key: str = "code") -> dict[str, str]:
    return {str(i.get(key)): str(i.get("name")) for i in items}


def router() -> Any:
    web = APIRouter()

    # Intake -----------------------------------------------------------------------------

    async def intake_page(
        ctx: Ctx,
        status_code: int = 200,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        orgs, orgs_problem = await organisations(ctx)
        return ctx.render(
            "intake.html",
            status_code,
            organisations=[o for o in orgs if o.get("is_member", True)],
            organisations_problem=orgs_problem,
            values=values or {},
            errors=errors or {},
        )

    @web.get("/intake")
    async def intake(ctx: UserCtx) -> Response:
        return await intake_page(ctx, values={IDEMPOTENCY_FORM_FIELD: new_idempotency_key()})

    @web.post("/intake")
    async def submit(ctx: UserCtx) -> Response:
        form = await ctx.form()
        body = submission(form)
        key = _text(form, IDEMPOTENCY_FORM_FIELD)
        try:
            case, replayed = await submit_case(ctx, body, key)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            named = exc.field_errors()
            errors = errors_for_fields(named, INTAKE_FIELDS)
            if exc.status != 422 or not named:
                errors.setdefault("_form", []).append(exc.message())
            values = {k: form.getlist(k) if k in MULTI_FIELDS else form.get(k) for k in form}
            if IDEMPOTENCY_FIELD in named or not key:
                # the key made another case already (or the page had none): a new one, so
                # that sending the form again is a new submission
                values[IDEMPOTENCY_FORM_FIELD] = new_idempotency_key()
            return await intake_page(ctx, 422, values, errors)
        if replayed:
            ctx.session.say(f"Casus {case['number']} was al ingediend; er is geen tweede gemaakt.")
        else:
            ctx.session.say(f"Casus {case['number']} is ingediend bij het Maatwerkloket.")
        return RedirectResponse(f"/cases/{case['id']}", status_code=303)

    # Lists ------------------------------------------------------------------------------

    @web.get("/cases")
    async def my_cases(
        ctx: UserCtx, page: int = 1, status: str | None = None, open: bool = False
    ) -> Response:
        result = await ctx.services.loket.page(
            "/cases",
            ctx.token,
            {"status": status, "open": "true" if open else None},
            page=max(page, 1),
            page_size=PAGE_SIZE,
        )
        orgs, _ = await organisations(ctx)
        return ctx.render(
            "cases.html",
            org_names=names(orgs),
            result=result,
            status=status or "",
            open=open,
            statuses=labels.STATUS,
        )

    @web.get("/queue")
    async def queue(ctx: UserCtx) -> Response:
        who = ctx.who
        loket = ctx.services.loket

        async def listing(**params: Any) -> PageResult:
            return await loket.page("/cases", ctx.token, params, page_size=PAGE_SIZE)

        new, mine, late, very_late, consultations = await asyncio.gather(
            listing(status="submitted"),
            listing(case_director_id=who.subject, open="true"),
            listing(open="true", timeliness="late", deadline="case"),
            listing(open="true", timeliness="very_late", deadline="case"),
            listing(open="true", timeliness="late", deadline="consultation"),
        )
        consultations_very_late = await listing(
            open="true", timeliness="very_late", deadline="consultation"
        )
        directors = await case_directors(ctx)
        orgs, _ = await organisations(ctx)
        return ctx.render(
            "queue.html",
            org_names=names(orgs),
            sections=[
                (
                    "nieuw",
                    "Nieuw: te beoordelen",
                    "intake_due",
                    by_urgency(new.items, "intake_due"),
                ),
                ("mijn", "Mijn casussen", "case_due", by_urgency(mine.items)),
                ("te-laat", "Te laat", "case_due", by_urgency(late.items)),
                (
                    "ruim-te-laat",
                    "Ruim te laat (meer dan 3x de termijn)",
                    "case_due",
                    by_urgency(very_late.items),
                ),
                (
                    "consultaties",
                    "Consultaties over de termijn",
                    "case_due",
                    by_urgency(
                        [*very_late_first(consultations_very_late.items, consultations.items)]
                    ),
                ),
            ],
            director_names=names(directors, "id"),
        )

    # The case file ----------------------------------------------------------------------

    async def case_page(
        ctx: Ctx,
        case_id: str,
        status_code: int = 200,
        open_action: str | None = None,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        case = await ctx.services.loket.get(f"/cases/{case_id}", ctx.token)
        audit: list[dict[str, Any]] | None = None
        if ctx.has(*STAFF):
            try:
                audit = await ctx.services.loket.get(f"/cases/{case_id}/audit", ctx.token)
            except ServiceError as exc:
                if exc.status != 403:
                    raise
        actions = (
            labels.case_actions(case["status"], case.get("allowed_next", []))
            if ctx.has("case_director")
            else []
        )
        orgs, _ = await organisations(ctx)
        directors = await case_directors(ctx) if actions else []
        actors = {
            str(a)
            for a in [
                *(n.get("by") for n in case.get("notes") or []),
                *(e.get("actor") for e in audit or []),
            ]
            if a
        }
        actor_names = await named_actors(ctx, actors, names(orgs))
        return ctx.render(
            "case.html",
            status_code,
            case=case,
            audit=audit,
            timeline=timeline(case, audit),
            actions=actions,
            open_action=open_action,
            values=values or {},
            errors=errors or {},
            organisations=orgs,
            org_names=names(orgs),
            directors=directors,
            director_names=names(directors, "id"),
            actor_names=actor_names,
            slots=range(LEARNING_POINT_SLOTS),
        )

    @web.get("/cases/{case_id}")
    async def case_file(case_id: str, ctx: UserCtx) -> Response:
        return await case_page(ctx, case_id)

    @web.post("/cases/{case_id}/actions/{action}")
    async def act(case_id: str, action: str, ctx: UserCtx) -> Response:
        form = await ctx.form()
        if action not in ACTIONS:
            return ctx.render("error.html", 404, title="Niet gevonden", message=action)
        path = ACTIONS[action][0]
        try:
            await ctx.services.loket.post(
                f"/cases/{case_id}/{path}", ctx.token, command(action, form)
            )
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            values = {k: form.getlist(k) for k in form}
            return await case_page(
                ctx,
                case_id,
                422 if exc.status == 422 else exc.status,
                action,
                values,
                action_errors(action, exc),
            )
        ctx.session.say(f"Gelukt: {ACTION_TITLES.get(action, action)}.")
        return RedirectResponse(f"/cases/{case_id}", status_code=303)

    # Consultations addressed to my organisation ----------------------------------------

    @web.get("/consultations")
    async def consultations(ctx: UserCtx) -> Response:
        answer = await ctx.services.loket.get("/consultations", ctx.token)
        items = answer.get("items", []) if isinstance(answer, dict) else answer
        orgs, _ = await organisations(ctx)
        return ctx.render(
            "consultations.html",
            org_names=names(orgs),
            consultations=sorted(items, key=lambda k: str(k.get("due"))),
            errors={},
            values={},
        )

    @web.post("/consultations/{case_id}/{consultation_id}/answer")
    async def answer(case_id: str, consultation_id: str, ctx: UserCtx) -> Response:
        form = await ctx.form()
        body = _drop_empty({"answer": _text(form, "answer")})
        try:
            await ctx.services.loket.post(
                f"/cases/{case_id}/consultations/{consultation_id}/answer", ctx.token, body
            )
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            listing = await ctx.services.loket.get("/consultations", ctx.token)
            items = listing.get("items", []) if isinstance(listing, dict) else listing
            placed = errors_for_fields(exc.field_errors(), ["answer"])
            if exc.status != 422:
                placed.setdefault("_form", []).append(exc.message())
            orgs, _ = await organisations(ctx)
            return ctx.render(
                "consultations.html",
                422,
                org_names=names(orgs),
                consultations=sorted(items, key=lambda k: str(k.get("due"))),
                errors={consultation_id: placed},
                values={consultation_id: form.get("answer")},
            )
        ctx.session.say("Uw antwoord is verstuurd naar de regievoerder.")
        return RedirectResponse("/consultations", status_code=303)

    return web


ACTION_TITLES = {
    "triage": "beoordeeld",
    "assign": "toegewezen",
    "reassign": "opnieuw toegewezen",
    "consult": "consultatie gevraagd",
    "note": "notitie toegevoegd",
    "suspend": "aangehouden",
    "resume": "hervat",
    "reopen": "heropend",
    "escalate": "voorgelegd aan het LET",
    "bridging": "overbrugging gevraagd",
    "close": "afgesloten",
    "evaluate": "geëvalueerd",
}


def very_late_first(
    very_late: list[dict[str, Any]], late: list[dict[str, Any]]
) -> Iterable[dict[str, Any]]:
    seen = set()
    for case in [*very_late, *late]:
        if case["id"] not in seen:
            seen.add(case["id"])
            yield case


def timeline(case: dict[str, Any], audit: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """What happened to the case, oldest first: the audit trail without the reads, or (for
    those who may not read the trail) what the case file itself records."""
    if audit is not None:
        return [
            {
                "at": e.get("at"),
                "what": labels.AUDIT_ACTION.get(str(e.get("action")), str(e.get("action"))),
                "who": e.get("actor"),
                "why": e.get("reason"),
            }
            for e in sorted(audit, key=lambda e: str(e.get("at")))
            if e.get("action") != "case.read"
        ]
    events: list[dict[str, Any]] = [
        {"at": case.get("submitted_at"), "what": "Ingediend", "who": None, "why": None}
    ]
    if case.get("triaged_at"):
        events.append({"at": case["triaged_at"], "what": "Beoordeeld", "who": None, "why": None})
    for k in case.get("consultations") or []:
        events.append(
            {"at": k.get("requested_on"), "what": "Consultatie gevraagd", "who": None, "why": None}
        )
    if case.get("closed_at"):
        events.append({"at": case["closed_at"], "what": "Afgesloten", "who": None, "why": None})
    return sorted(events, key=lambda e: str(e.get("at")))
