"""Operators' offer health: every offer's measured TTFT, throughput and error rate beside its
instrument's spec, from the usage records of every gateway process."""

from __future__ import annotations

from aiohttp import web

from gridgate.core.health.report import offer_status_json
from gridgate.dashboard.pages import guarded, render
from gridgate.dashboard.session import viewer
from gridgate.state import STATE


@guarded
async def health_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    statuses = await request.app[STATE].services.offer_board.status(who.actor)
    return render(
        request,
        who,
        "health.html",
        active="health",
        rows=[offer_status_json(s) for s in statuses],
        window=request.app[STATE].settings.health.max_age_seconds,
    )
