"""``/api/v1/instruments``: what a consumer can buy — each instrument's spec, limits, best price
now and its price over the last 30 days with their average (anyone signed in)."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.manage.answers import data
from gridgate.api.manage.principal import actor
from gridgate.shapes import InstrumentView
from gridgate.state import STATE


async def instrument_shape(request: web.Request, instrument_id: str) -> InstrumentView:
    """An instrument as just saved (an operator's edit: a disabled one too)."""
    view = await request.app[STATE].services.market.instrument(instrument_id, include_disabled=True)
    return InstrumentView.of(view)


async def list_instruments(request: web.Request) -> web.Response:
    await actor(request)
    views = await request.app[STATE].services.market.instruments()
    return data([InstrumentView.of(v) for v in views])


async def get_instrument(request: web.Request) -> web.Response:
    await actor(request)
    view = await request.app[STATE].services.market.instrument(request.match_info["instrument_id"])
    return data(InstrumentView.of(view))
