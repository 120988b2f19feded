"""``GET /api/v1/openapi.json``: the management API's OpenAPI document, as ``openapi.py`` built
it once at start (``AppState.openapi``)."""

from __future__ import annotations

from aiohttp import web

from gridgate.state import STATE


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].openapi, content_type="application/json")
