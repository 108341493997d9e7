"""`pmm-register` / `python -m pmm_register`: run the service (HTTP API and Kafka consumers)."""

from __future__ import annotations

from pmm_register.app import create_app
from pmm_register.settings import RegisterSettings
from pmm_runtime.serve import serve


def main() -> None:
    settings = RegisterSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
