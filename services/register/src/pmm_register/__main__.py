"""`pmm-register`: run the service; `pmm-register seed [FILE]`: load the seed file."""

from __future__ import annotations

import sys

from pmm_register.app import create_app
from pmm_register.settings import RegisterSettings
from pmm_runtime.serve import serve


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "seed":
        from pmm_register.seed import main as seed

        sys.exit(seed(sys.argv[2:]))
    settings = RegisterSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
