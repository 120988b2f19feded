"""Instruments: each one's spec and limits, its best price now, and its price over the last 30
days with their average (a chart, and the numbers as a table)."""

from __future__ import annotations

from aiohttp import web

from gridgate.core.catalog.price_history import DailyPrice
from gridgate.dashboard.charts import daily_lines
from gridgate.dashboard.pages import guarded, render
from gridgate.dashboard.render import usd
from gridgate.dashboard.session import viewer
from gridgate.state import STATE


def _series(history: list[DailyPrice]) -> dict[str, list[float | None]]:
    return {
        "input": [None if p.input_per_m is None else float(p.input_per_m) for p in history],
        "output": [None if p.output_per_m is None else float(p.output_per_m) for p in history],
    }


@guarded
async def instruments_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    views = await request.app[STATE].services.market.instruments()
    charts = {
        v.instrument.id: daily_lines(
            f"{v.instrument.display_name}: best price per 1M tokens, last 30 days (USD)",
            [p.day for p in v.history],
            _series(v.history),
            label=lambda value: usd(round(value), 2),
        )
        for v in views
    }
    return render(
        request, who, "instruments.html", active="instruments", views=views, charts=charts
    )
