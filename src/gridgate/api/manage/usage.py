"""``/api/v1/usage``: usage records newest first, a page at a time; ``/usage/daily``: sums per
UTC day and instrument; ``/usage.csv``: every matching record as CSV (a download). All take
``since``, ``until``, ``key_id``, ``instrument`` (and an operator's ``account_id``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web
from msgspec.structs import astuple

from gridgate.api.manage import query
from gridgate.api.manage.answers import data
from gridgate.api.manage.principal import actor
from gridgate.core.accounts.usage_pages import MAX_PAGE
from gridgate.shapes import DailyUsageView, UsageRecordView
from gridgate.state import STATE

CSV_COLUMNS = UsageRecordView.__struct_fields__


def _filters(request: web.Request) -> dict[str, Any]:
    return {
        "account_id": query.text(request, "account_id"),
        "since_us": query.time(request, "since"),
        "until_us": query.time(request, "until"),
        "key_id": query.text(request, "key_id"),
        "instrument": query.text(request, "instrument"),
    }


async def usage(request: web.Request) -> web.Response:
    page = await request.app[STATE].services.usage_reports.page(
        await actor(request),
        **_filters(request),
        limit=query.limit(request, MAX_PAGE),
        cursor=query.text(request, "cursor"),
    )
    return data([UsageRecordView.of(r) for r in page.records], next_cursor=page.next)


async def usage_daily(request: web.Request) -> web.Response:
    _, _, sums = await request.app[STATE].services.usage_reports.daily(
        await actor(request), **_filters(request)
    )
    return data([DailyUsageView.of(d) for d in sums])


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for null, true/false for booleans, and a leading quote for text a
    spreadsheet would run as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def usage_csv(request: web.Request) -> web.StreamResponse:
    who = await actor(request)
    filters = _filters(request)
    batches = request.app[STATE].services.usage_reports.export(who, **filters)
    first = await anext(batches, None)  # a bad filter fails here, before the 200 is sent
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="gridgate-usage.csv"',
        }
    )
    await response.prepare(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    batch = first
    while batch is not None:
        writer.writerows([csv_cell(v) for v in astuple(UsageRecordView.of(r))] for r in batch)
        await response.write(out.getvalue().encode())
        out.seek(0)
        out.truncate()
        batch = await anext(batches, None)
    if out.getvalue():
        await response.write(out.getvalue().encode())
    await response.write_eof()
    return response
