"""Operators' audit log: who changed what, when, newest first, filtered by actor, action or
subject, a page at a time."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gridgate.dashboard.pages import guarded, render
from gridgate.dashboard.session import viewer
from gridgate.errors import ValidationFailed
from gridgate.state import STATE

PAGE = 50


@guarded
async def audit_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    q = request.query
    chosen = {k: q.get(k, "")[:200] for k in ("actor", "action", "subject")}
    error = None
    try:
        page = await request.app[STATE].services.audit_log.page(
            who.actor,
            limit=PAGE,
            cursor=q.get("cursor") or None,
            by=chosen["actor"] or None,
            action=chosen["action"] or None,
            subject=chosen["subject"] or None,
        )
        entries, cursor = page.entries, page.next
    except ValidationFailed as exc:
        error, entries, cursor = exc.message, [], None
    filters = {k: v for k, v in chosen.items() if v}
    return render(
        request,
        who,
        "audit.html",
        active="audit",
        status=422 if error else 200,
        error=error,
        entries=entries,
        chosen=chosen,
        next_url=None if cursor is None else "?" + urlencode({**filters, "cursor": cursor}),
    )
