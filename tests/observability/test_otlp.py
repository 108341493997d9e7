"""Traces leave the process over OTLP/HTTP only when an endpoint is configured (issue 16).

A small OTLP receiver in the test (an HTTP server that keeps what is posted to
``/v1/traces``) stands in for the collector, which lies outside the platform; the service
and its exporter are real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pmm_loket.app import create_app as create_loket
from pmm_loket.settings import LoketSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append((self.path, self.headers.get("content-type", ""), body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[str, str]]:
        """(service.name, span name) of every span received."""
        found = []
        for path, content_type, body in self.requests:
            assert path == "/v1/traces"
            assert content_type == "application/x-protobuf"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = resource_spans.resource
                attributes = {a.key: a.value.string_value for a in resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found += [(attributes["service.name"], s.name) for s in scope_spans.spans]
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def test_spans_go_to_the_configured_otlp_endpoint(
    make_settings: Callable[..., Any], issuer: LocalIssuer, receiver: Receiver
) -> None:
    app = create_loket(make_settings(LoketSettings, otel_exporter_otlp_endpoint=receiver.url))
    platform = app.state.platform
    assert platform.telemetry.exporting
    assert platform.telemetry.provider is not trace.get_tracer_provider()  # its own
    transport = httpx.ASGITransport(app=app)
    async with platform.running(), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        professional = bearer(issuer, "gm-otlp", "maatwerk_professional")
        answer = await c.get("/v1/cases", headers=professional)
        assert answer.status_code in {200, 403}, answer.text
        assert (await c.get("/healthz")).status_code == 200  # probes make no spans
    # the graceful stop flushed the batch
    spans = receiver.spans()
    assert ("pmm-loket", "GET /v1/cases") in spans, spans
    assert not [name for _, name in spans if "healthz" in name]
    assert {service for service, _ in spans} == {"pmm-loket"}


def test_without_an_endpoint_nothing_is_exported(make_settings: Callable[..., Any]) -> None:
    app = create_loket(make_settings(LoketSettings))
    telemetry = app.state.platform.telemetry
    assert not telemetry.exporting
    assert telemetry.provider is trace.get_tracer_provider()  # the process's (a no-op)


def test_the_endpoint_is_a_typed_setting(make_settings: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="otel_exporter_otlp_endpoint"):
        make_settings(LoketSettings, otel_exporter_otlp_endpoint="not a url")
    # empty, as compose passes an unset ${PMM_OTEL_EXPORTER_OTLP_ENDPOINT:-}: no exporter
    assert (
        make_settings(LoketSettings, otel_exporter_otlp_endpoint="").otel_exporter_otlp_endpoint
        is None
    )
