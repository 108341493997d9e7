"""`pmm-loket` / `python -m pmm_loket`: run the service (HTTP API and Kafka consumers)."""

from __future__ import annotations

from pmm_loket.app import create_app
from pmm_loket.settings import LoketSettings
from pmm_runtime.serve import serve


def main() -> None:
    settings = LoketSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
