"""`pmm-signalen` / `python -m pmm_signalen`: run the service (HTTP API and Kafka consumers)."""

from __future__ import annotations

from pmm_runtime.serve import serve
from pmm_signalen.app import create_app
from pmm_signalen.settings import SignalenSettings


def main() -> None:
    settings = SignalenSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
