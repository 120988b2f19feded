"""``GET /api/v1/openapi.json``: the management API's OpenAPI 3.1 document, written by hand and
shipped as package data (``api/openapi.json``); read once, in the lifespan."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gridgate.api.state import STATE


def load_document() -> bytes:
    return files("gridgate.api").joinpath("openapi.json").read_bytes()


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].openapi, content_type="application/json")
