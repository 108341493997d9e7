"""`pmm-console` / `python -m pmm_console`: run the console (web application)."""

from __future__ import annotations

from pmm_console.app import create_app
from pmm_console.settings import ConsoleSettings
from pmm_runtime.serve import serve


def main() -> None:
    settings = ConsoleSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
