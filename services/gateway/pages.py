"""The trading page: ``/`` answers ``web/index.html``, ``/web/...`` its script, style sheet and
the vendored chart library. Plain files, no build step; the page talks to the original API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB = Path(__file__).resolve().parent / "web"

router = APIRouter(include_in_schema=False)


class WebFiles(StaticFiles):
    """The page's files, revalidated on every load (an ETag answers 304 when unchanged), so a
    new gateway's page is never mixed with an old script from the browser's cache."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(
        WEB / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/web``."""
    app.include_router(router)
    app.mount("/web", WebFiles(directory=WEB), name="web")
