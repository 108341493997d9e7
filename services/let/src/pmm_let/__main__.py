"""`pmm-let` / `python -m pmm_let`: run the service (HTTP API and Kafka consumers)."""

from __future__ import annotations

from pmm_let.app import create_app
from pmm_let.settings import LetSettings
from pmm_runtime.serve import serve


def main() -> None:
    settings = LetSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
