"""The five services' HTTP APIs, called with the signed-in person's token.

The console decides nothing itself: it sends what the person typed and shows what the
service answered, including its RFC 9457 problem details (``errors[].field`` names the field
a 422 is about, so the page can show the message next to that field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pmm_console.problems import Message, field_text, kind_of, problem_text

SERVICES = ("register", "loket", "let", "overbrugging", "signalen")


class ServiceError(Exception):
    """A service answered with a problem document (or did not answer at all)."""

    def __init__(self, service: str, status: int, problem: Mapping[str, Any]) -> None:
        self.service = service
        self.status = status
        self.problem = dict(problem)
        super().__init__(f"{service} answered {status}: {self.detail}")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "")

    @property
    def kind(self) -> str:
        """The problem's kind (``rule-violation``; ``pmm_runtime.errors``)."""
        return kind_of(self.problem, self.status)

    def message(self) -> Message:
        """The whole problem in Dutch, with the service's own detail beneath."""
        return Message(problem_text(self.service, self.status, self.problem), self.detail)

    def field_errors(self) -> dict[str, list[Message]]:
        """Messages per field path as the service names it (``household.reference``): a
        Dutch text per problem type, with the service's own message as its detail."""
        found: dict[str, list[Message]] = {}
        for error in self.problem.get("errors") or ():
            if isinstance(error, Mapping) and error.get("field"):
                name = str(error["field"])
                message = str(error.get("message", "")).removeprefix("Value error, ")
                kind = error.get("type")
                text = field_text(name, str(kind) if kind else None, message, self.kind)
                found.setdefault(name, []).append(Message(text, message))
        named = self.problem.get("field")
        if named and str(named) not in found:
            text = field_text(str(named), None, self.detail, self.kind)
            found[str(named)] = [Message(text, self.detail)]
        return found


class Unreachable(ServiceError):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(
            service, 503, {"title": "Service Unavailable", "detail": f"{service}: {reason}"}
        )


@dataclass(frozen=True)
class PageResult:
    """One page of a list, whichever paging style the service speaks."""

    items: list[dict[str, Any]]
    page: int
    page_size: int
    total: int | None = None
    has_next: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ServiceClient:
    """One service's API. The HTTP connection pool is shared; the token is per call."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._offset_style: set[str] = set()  # list routes that still take limit/offset

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        body, _ = await self.send(method, path, token, params=params, json=json, headers=headers)
        return body

    async def send(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, httpx.Headers]:
        """The answer's JSON body and its headers (``call`` when only the body matters)."""
        sent = {"Accept": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self._http.request(method, path, params=clean, json=json, headers=sent)
        except httpx.HTTPError as exc:
            raise Unreachable(self.name, f"not reachable ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500] or response.reason_phrase}
            if not isinstance(problem, Mapping):
                problem = {"detail": str(problem)}
            raise ServiceError(self.name, response.status_code, problem)
        if response.status_code == 204 or not response.content:
            return None, response.headers
        return response.json(), response.headers

    async def download(
        self, path: str, token: str | None, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """A non-JSON answer (a CSV or HTML report) as the service sent it."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(self.name, f"not reachable ({type(exc).__name__})") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500] or response.reason_phrase}
            raise ServiceError(self.name, response.status_code, problem)
        return response

    async def get(
        self, path: str, token: str | None, params: Mapping[str, Any] | None = None
    ) -> Any:
        return await self.call("GET", path, token, params=params)

    async def post(self, path: str, token: str | None, json: Any = None) -> Any:
        return await self.call("POST", path, token, json=json)

    async def put(self, path: str, token: str | None, json: Any = None) -> Any:
        return await self.call("PUT", path, token, json=json)

    async def page(
        self,
        path: str,
        token: str | None,
        params: Mapping[str, Any] | None = None,
        *,
        page: int = 1,
        page_size: int = 50,
    ) -> PageResult:
        """One page of a list route, in either paging style of the platform.

        The platform's list routes take ``page``/``page_size`` and answer
        ``{total, page, page_size, items, next}``. A route not moved yet takes
        ``limit``/``offset`` and answers a bare list (and ignores ``page``): when a route
        answers a bare list it is asked again in its own style, which the client then
        remembers for that path. Some routes refuse parameters they do not know, so the
        two styles are never sent together.
        """
        if path not in self._offset_style:
            answer = await self.get(
                path, token, {**(params or {}), "page": page, "page_size": page_size}
            )
            if not isinstance(answer, list):
                return self._read_page(path, answer, page, page_size)
            self._offset_style.add(path)
        query = {**(params or {}), "limit": page_size, "offset": (page - 1) * page_size}
        answer = await self.get(path, token, query)
        if isinstance(answer, list):
            return PageResult(
                items=answer, page=page, page_size=page_size, has_next=len(answer) >= page_size
            )
        return self._read_page(path, answer, page, page_size)

    async def every(
        self,
        path: str,
        token: str | None,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = 200,
        max_pages: int = 50,
    ) -> list[dict[str, Any]]:
        """Every item of a list route, page by page (at most ``max_pages`` pages)."""
        found: list[dict[str, Any]] = []
        for number in range(1, max_pages + 1):
            result = await self.page(path, token, params, page=number, page_size=page_size)
            found.extend(result.items)
            if not result.has_next or not result.items:
                break
        return found

    def _read_page(self, path: str, answer: Any, page: int, page_size: int) -> PageResult:
        if isinstance(answer, Mapping) and isinstance(answer.get("items"), list):
            total = answer.get("total")
            size = int(answer.get("page_size") or page_size)
            current = int(answer.get("page") or page)
            has_next = bool(answer.get("next")) or (
                isinstance(total, int) and current * size < total
            )
            known = {"items", "total", "page", "page_size", "next"}
            return PageResult(
                items=list(answer["items"]),
                page=current,
                page_size=size,
                total=total if isinstance(total, int) else None,
                has_next=has_next,
                extra={k: v for k, v in answer.items() if k not in known},
            )
        raise ServiceError(self.name, 502, {"detail": f"{path} answered no list"})


@dataclass
class Services:
    register: ServiceClient
    loket: ServiceClient
    let: ServiceClient
    overbrugging: ServiceClient
    signalen: ServiceClient

    def all(self) -> list[ServiceClient]:
        return [self.register, self.loket, self.let, self.overbrugging, self.signalen]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()
