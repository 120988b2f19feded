"""``GET /api/v1/audit-log``: who changed what, when — newest first, a page at a time, filtered
by ``actor``, ``action``, ``subject`` and time (operators only)."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data
from gridgate.api.manage.principal import actor
from gridgate.core.audit_log import MAX_PAGE
from gridgate.shapes import AuditEntryView
from gridgate.state import STATE


async def audit_log(request: web.Request) -> web.Response:
    page = await request.app[STATE].services.audit_log.page(
        await actor(request),
        limit=query.limit(request, MAX_PAGE),
        cursor=query.text(request, "cursor"),
        since_us=query.time(request, "since"),
        until_us=query.time(request, "until"),
        by=query.text(request, "actor"),
        action=query.text(request, "action"),
        subject=query.text(request, "subject"),
    )
    return data([AuditEntryView.of(e) for e in page.entries], next_cursor=page.next)
