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
        await asyncio.gather(*(p.start(ready_timeout_s=120) for p in processes))
        # One service after the other in one thread: hypothesis imports modules lazily, and
        # CPython 3.11.7's parser is not safe for imports in several threads at once.
        for p in processes:
            started = time.monotonic()
            await asyncio.to_thread(fuzz, p.name, p.url, token, findings[p.name])
            findings[p.name].seconds = time.monotonic() - started
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
    assert not failures, "\n".join(failures[:40])
