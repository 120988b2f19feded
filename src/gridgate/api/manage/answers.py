"""The management API's answers: ``{"data": …}`` (the reference platform's envelope), with
``next_cursor`` beside a page's data; 204 with no body for a change that returns nothing."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web


def data(value: Any, *, status: int = 200, next_cursor: str | bool | None = False) -> web.Response:
    """``{"data": value}``; a page (``next_cursor`` given, None on the last) adds its cursor."""
    body: dict[str, Any] = {"data": value}
    if next_cursor is not False:
        body["next_cursor"] = next_cursor
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def no_content() -> web.Response:
    return web.Response(status=204)
