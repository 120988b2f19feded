"""Usage: the requests, newest first (instrument, supplier, tokens, cost, TTFT, status), filtered
by dates, key and instrument, a page at a time, and the same selection as a CSV download."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gridgate.core.times import DAY_US, parse_time
from gridgate.dashboard.pages import guarded, render
from gridgate.dashboard.session import viewer
from gridgate.errors import ValidationFailed
from gridgate.shapes import iso
from gridgate.state import STATE

PAGE = 50


def _date(text: str | None, param: str) -> int | None:
    if not text:
        return None
    if len(text) != 10:
        raise ValidationFailed(f"{param}: a date, YYYY-MM-DD", param=param)
    return parse_time(text, param=param)


@guarded
async def usage_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    services = request.app[STATE].services
    q = request.query
    chosen = {k: q.get(k, "") for k in ("since", "until", "key_id", "instrument", "account")}
    error = None
    try:
        since = _date(chosen["since"], "since")
        until = _date(chosen["until"], "until")
        until = None if until is None else until + DAY_US  # the whole last day
        page = await services.usage_reports.page(
            who.actor,
            account_id=chosen["account"] or None,
            since_us=since,
            until_us=until,
            limit=PAGE,
            key_id=chosen["key_id"] or None,
            instrument=chosen["instrument"] or None,
            cursor=q.get("cursor") or None,
        )
        records, next_cursor = page.records, page.next
    except ValidationFailed as exc:
        error, records, next_cursor, since, until = exc.message, [], None, None, None
    filters = {k: v for k, v in chosen.items() if v}
    export = {
        k: v
        for k, v in {
            "since": iso(since),
            "until": iso(until),
            "key_id": chosen["key_id"],
            "instrument": chosen["instrument"],
            "account_id": chosen["account"],
        }.items()
        if v
    }
    keys = await services.api_keys.list(who.actor)
    instruments = await services.market.instruments()
    return render(
        request,
        who,
        "usage.html",
        active="usage",
        status=422 if error else 200,
        error=error,
        records=records,
        chosen=chosen,
        keys=keys,
        instruments=[v.instrument for v in instruments],
        next_url=None
        if next_cursor is None
        else "?" + urlencode({**filters, "cursor": next_cursor}),
        csv_url="/api/v1/usage.csv" + ("?" + urlencode(export) if export else ""),
    )
