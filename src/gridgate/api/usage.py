"""``GET /api/v1/usage``: usage records newest first, a page at a time
(``?since=&until=&limit=&key_id=&instrument=&cursor=``; see ``core/usage_pages.py``)."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.principal import principal
from gridgate.api.state import STATE
from gridgate.core.access import account_in_scope
from gridgate.core.accounts import parse_time
from gridgate.core.usage_pages import MAX_PAGE, UsageQuery, usage_page
from gridgate.errors import ValidationFailed
from gridgate.shapes import usage_json


def _time(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    return None if text is None else parse_time(text, param=name)


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return MAX_PAGE
    if not text.isdigit() or len(text) > 6:
        raise ValidationFailed(f"limit: must be an integer from 1 to {MAX_PAGE}", param="limit")
    return int(text)


async def usage(request: web.Request) -> web.Response:
    who = await principal(request)
    query = UsageQuery(
        account_id=account_in_scope(who.user, request.query.get("account_id"), required=False),
        since_us=_time(request, "since"),
        until_us=_time(request, "until"),
        limit=_limit(request),
        key_id=request.query.get("key_id"),
        instrument=request.query.get("instrument"),
        cursor=request.query.get("cursor"),
    )
    page = await usage_page(request.app[STATE].store, query)
    return web.json_response({"data": [usage_json(r) for r in page.records], "next": page.next})
