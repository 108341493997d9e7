"""`pmm-overbrugging`: run the service (HTTP API and Kafka consumers)."""

from __future__ import annotations

from pmm_overbrugging.app import create_app
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_runtime.serve import serve


def main() -> None:
    settings = OverbruggingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
