"""Hostile input: schemathesis over every service's OpenAPI document (issue 14).

Each service runs as its real process (``pmm-<service>``, as ``make run`` starts it) on a
fresh database; schemathesis generates requests from the document the process serves, both
fitting the schema (positive) and breaking it (negative), once with a token that carries
every role and once without a token. Counted: responses >= 500 (there must be none) and
error responses that are not problem details (``application/problem+json``; none either).

Bounded: a few examples per operation and mode, no shrinking (a failure is reported with
the request that caused it, which is enough to reproduce it with curl).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.transport import Response
from schemathesis.generation.modes import GenerationMode

from pmm_contracts.vocabulary import Role
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.settings import ServiceSettings

from .support import ServiceProcess, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
EXAMPLES = 3  # per operation and generation mode with the token: ~700 requests in all
PROBLEM_JSON = "application/problem+json"


@dataclass
class Findings:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, service: str, label: str, case: Any, response: Response) -> None:
        self.requests += 1
        self.statuses[response.status_code] += 1
        content_type = ",".join(response.headers.get("content-type", []))
        where = f"{service} {case.method} {case.formatted_path} ({label})"
        detail = f"query={case.query!r} body={str(case.body)[:200]!r}"
        if response.status_code >= 500:
            answer = response.content[:200]
            self.failures.append(f"{where}: {response.status_code} {detail} -> {answer!r}")
        elif response.status_code >= 400 and not content_type.startswith(PROBLEM_JSON):
            self.failures.append(f"{where}: {response.status_code} as {content_type!r} {detail}")


def fuzz(service: str, url: str, token: str, findings: Findings, examples: int = EXAMPLES) -> None:
    """Blocking: every operation of the service's document, positive and negative, with and
    without the token (run in a thread, the service is another process)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30)
    session = requests.Session()
    with_token = {"Authorization": f"Bearer {token}"}
    # (mode, token, examples): the token reaches the handlers, so it gets the examples; without
    # one every operation must answer 401 problem details, which two requests show
    runs = [
        (GenerationMode.POSITIVE, "token", with_token, examples),
        (GenerationMode.NEGATIVE, "token", with_token, examples),
        (GenerationMode.POSITIVE, "no token", {}, 2),
    ]
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, label, headers, count in runs:
            call = _caller(
                operation.as_strategy(generation_mode=mode),
                lambda case, response, label=f"{mode.value}, {label}": findings.record(
                    service, label, case, response
                ),
                url=url,
                session=session,
                headers=headers,
                examples=count,
            )
            # a negative mode may have nothing to break (an operation without input)
            with contextlib.suppress(Unsatisfiable):
                call()


def _caller(
    strategy: Any,
    record: Callable[[Any, Response], None],
    *,
    url: str,
    session: requests.Session,
    headers: dict[str, str],
    examples: int,
) -> Callable[[], None]:
    @seed(20261202)
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: Any) -> None:
        case.headers = {**(case.headers or {}), **headers}
        record(case, case.call(base_url=url, session=session, timeout=30))

    return call  # type: ignore[no-any-return]


# The requests of issue 14 that answered a plain-text 500 (or took a NUL in a name), again.
REPORTED = (
    ("let", "GET", "/v1/escalations?page=2305843009213693952", None, 422),
    ("signalen", "GET", "/v1/signals?page_size=308&page=22938669872754475008", None, 422),
    ("loket", "GET", "/v1/cases?offset=912341082215650193156603904", None, 200),
    ("overbrugging", "GET", "/v1/budgets/100000000000000000000", None, 422),
    ("overbrugging", "PUT", "/v1/budgets/9223372036854775808", {"total": "1.00"}, 422),
)


async def reported_requests(service: str, url: str, token: str, unique: str) -> list[str]:
    """The reported requests and the register's e-mail conflict on PATCH and control
    characters in a name: what each answers now, wrong answers only."""
    wrong: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30.0, headers=auth) as client:

        def check(answer: httpx.Response, status: int, what: str) -> None:
            content_type = answer.headers.get("content-type", "")
            if answer.status_code != status:
                wrong.append(f"{what}: {answer.status_code} (wanted {status}) {answer.text[:200]}")
            elif status >= 400 and not content_type.startswith(PROBLEM_JSON):
                wrong.append(f"{what}: {status} as {content_type!r}")

        for name, method, path, body, status in REPORTED:
            if name == service:
                answer = await client.request(method, url + path, json=body)
                check(answer, status, f"{service} {method} {path}")
        if service != "register":
            return wrong
        register = url
        org = f"z{unique}"
        organisation = {"code": org, "name": org, "kind": "municipality", "joined_on": "2024-01-01"}
        check(await client.post(f"{register}/v1/organisations", json=organisation), 201, "org")
        for n in (1, 2):
            person = {
                "id": f"{org}-{n}",
                "organisation": org,
                "name": f"Person {n}",
                "roles": ["maatwerk_professional"],
                "email": f"p{n}@{org}.nl",
            }
            check(await client.post(f"{register}/v1/professionals", json=person), 201, "pro")
        taken = {"email": f"p1@{org}.nl"}
        answer = await client.patch(f"{register}/v1/professionals/{org}-2", json=taken)
        check(answer, 409, "register PATCH a professional with an e-mail address in use")
        for name in ("Ann\x00a", "Ann\x07a", "Ann\na"):
            answer = await client.patch(f"{register}/v1/professionals/{org}-2", json={"name": name})
            check(answer, 422, f"register PATCH a name with {name!r}")
    return wrong


async def test_schemathesis_finds_no_server_error_and_only_problem_details(
    make_settings: Callable[..., Any], issuer: LocalIssuer, unique: str
) -> None:
    settings = make_settings(ServiceSettings, service_name="fuzz")
    token = issuer.issue(
        subject=f"fuzz-{unique}", organisation="pmm", roles=[role.value for role in Role]
    )
    processes = [
        ServiceProcess(
            name,
            service_env(
                settings,
                name,
                # signalen's consumers on this test's own (empty) topics, not the shared ones
                PMM_CASES_TOPIC=f"test.fuzz.cases.{unique}",
                PMM_RESPONSES_PATTERN=rf"^test\.fuzz\.responses\.{unique}$",
            ),
        )
        for name in SERVICES
    ]
    findings = {name: Findings() for name in SERVICES}
    try:
        reported: list[str] = []
        # One service after the other (five processes starting at once on the loaded
        # machine take minutes), fuzzed in one thread: hypothesis imports modules lazily,
        # and CPython 3.11.7's parser is not safe for imports in several threads at once.
        for p in processes:
            await p.start(ready_timeout_s=180)
            started = time.monotonic()
            reported += await reported_requests(p.name, p.url, token, unique)
            await asyncio.to_thread(fuzz, p.name, p.url, token, findings[p.name])
            findings[p.name].seconds = time.monotonic() - started
            p.stop()
    finally:
        for p in processes:
            p.stop()
    for name, found in findings.items():
        print(  # the figures of docs/reliability.md
            f"schemathesis {name}: requests={found.requests} "
            f"statuses={dict(sorted(found.statuses.items()))} failures={len(found.failures)} "
            f"seconds={found.seconds:.0f}"
        )
    failures = [f for found in findings.values() for f in found.failures]
    assert all(found.requests > 0 for found in findings.values())
    assert not reported, reported
    assert not failures, "\n".join(failures[:40])
