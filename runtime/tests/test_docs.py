"""/docs and /redoc load nothing from outside the service (DESIGN.md: no CDN)."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from pmm_runtime.docs import ASSETS, install_offline_docs

EXTERNAL = re.compile(r"""(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_fastapis_own_docs_page_loads_from_a_cdn() -> None:
    """The reason for the module: without it the page needs the internet."""
    async with _client(FastAPI(title="t")) as client:
        page = (await client.get("/docs")).text
    assert EXTERNAL.search(page)


async def test_docs_and_redoc_use_only_local_assets_that_the_service_serves() -> None:
    app = FastAPI(title="Loket")

    @app.get("/cases")
    async def cases() -> list[str]:
        return []

    install_offline_docs(app)
    async with _client(app) as client:
        for path in ("/docs", "/redoc"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert not EXTERNAL.search(r.text), f"{path} loads something from outside"
            assert "fonts.googleapis" not in r.text
            for url in re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text):
                asset = await client.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 1000, url
        assert (await client.get("/openapi.json")).json()["paths"].keys() == {"/cases"}
        assert "Loket - Swagger UI" in (await client.get("/docs")).text
        for name in ASSETS:
            assert (await client.get(f"/docs-assets/{name}")).status_code == 200


async def test_an_app_without_docs_pages_gets_them_and_one_route_each() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_offline_docs(app)
    paths = [getattr(r, "path", None) for r in app.router.routes]
    assert paths.count("/docs") == 1
    assert paths.count("/redoc") == 1
    async with _client(app) as client:
        assert (await client.get("/docs/oauth2-redirect")).status_code == 200
