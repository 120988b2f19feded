"""Webhooks: the account's endpoints (all of them, global ones too, for an operator) with a
form to add one — its signing secret shown once — and to remove one; the ``balance.low``
threshold; and the events, newest first, with each delivery's status, attempts and last
error, and a Replay button that sends an event again with the same id."""

from __future__ import annotations

from aiohttp import web

from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.money import MoneyError, format_usd, usd_to_nanos
from gridgate.state import STATE

EVENTS_SHOWN = 100


async def _page(
    request: web.Request,
    who: Viewer,
    *,
    created: object = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    hooks = request.app[STATE].services.webhooks
    account = who.user.account_id
    below = None if account is None else await hooks.threshold(who.actor, account)
    return render(
        request,
        who,
        "webhooks.html",
        active="webhooks",
        endpoints=await hooks.list(who.actor),
        events=await hooks.events(who.actor, limit=EVENTS_SHOWN),
        threshold_usd="" if below is None else format_usd(below),
        accounts=await request.app[STATE].services.accounts.list(who.actor)
        if who.is_operator
        else [],
        created=created,
        error=error,
        status=status,
    )


@guarded
async def webhooks_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await viewer(request))


@guarded
async def add_endpoint(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    events = form.getall("events", []) or None
    try:
        new = await request.app[STATE].services.webhooks.add(
            who.actor, form.get("account_id") or None, form.get("url", ""), events
        )
    except ValidationFailed as exc:
        return await _page(request, who, error=exc.message, status=422)
    return await _page(request, who, created=new)


@guarded
async def remove_endpoint(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    await request.app[STATE].services.webhooks.remove(who.actor, request.match_info["endpoint_id"])
    raise done("/webhooks", "webhook-removed")


@guarded
async def replay_event(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    await request.app[STATE].services.webhooks.replay(who.actor, request.match_info["event_id"])
    raise done("/webhooks", "webhook-replayed")


@guarded
async def set_threshold(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    account = who.user.account_id or form.get("account_id") or ""
    raw = (form.get("threshold_usd") or "").strip()
    try:
        below = usd_to_nanos(raw) if raw else None
    except MoneyError:
        return await _page(request, who, error="threshold: a USD amount, e.g. 5.00", status=422)
    try:
        await request.app[STATE].services.webhooks.set_threshold(who.actor, account, below)
    except ValidationFailed as exc:
        return await _page(request, who, error=exc.message, status=422)
    raise done("/webhooks", "threshold-saved")
