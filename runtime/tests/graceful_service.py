"""Run as a subprocess: a service whose handler is slow, served by uvicorn like every
service. The test sends SIGTERM while the handler runs."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from support import REGISTRY

from pmm_runtime.platform import Platform
from pmm_runtime.serve import serve
from pmm_runtime.settings import ServiceSettings


def main(topic: str) -> None:
    settings = ServiceSettings()
    platform = Platform(settings, registry=REGISTRY)
    marks = platform.db["marks"]

    async def slow(event: Any) -> None:
        await marks.insert_one({"_id": "started"})
        await asyncio.sleep(3)
        await marks.insert_one({"_id": "finished"})

    platform.subscribe(topic, handler=slow)
    serve(platform.http_app(title="graceful", description="test"), settings)


if __name__ == "__main__":
    main(sys.argv[1])
