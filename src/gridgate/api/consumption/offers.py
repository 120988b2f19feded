"""GET /v1/offers/status: every offer's measured figures beside its instrument's spec, as this
process has measured them, with its health state (healthy, ejected, on probation) and why.

Any valid key may read it (the serving supplier is no secret: responses name it too). The
fleet-wide view, built from every process's usage records, is ``gridgate offers status``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gridgate.core.accounts.auth import presented_key
from gridgate.core.health.figures import OfferFigures
from gridgate.state import STATE
from gridgate.storage.records import InstrumentRecord


def _spec(instrument: InstrumentRecord) -> dict[str, Any]:
    return {
        "quality_floor": instrument.quality_floor,
        "ttft_ceiling_ms": instrument.ttft_ceiling_ms,
        "throughput_floor_tps": instrument.throughput_floor_tps,
        "bill_out_of_spec": instrument.bill_out_of_spec,
    }


def _figures(figures: OfferFigures | None) -> dict[str, Any]:
    if figures is None:  # offer health is switched off
        return {"state": "healthy", "reason": "offer health is off", "samples": 0}
    return {
        "state": figures.state,
        "reason": figures.reason,
        "samples": figures.samples,
        "ttft_p50_ms": figures.ttft_p50_ms,
        "ttft_p90_ms": figures.ttft_p90_ms,
        "throughput_p50_tps": figures.throughput_p50_tps,
        "throughput_p10_tps": figures.throughput_p10_tps,
        "error_rate": figures.error_rate,
        "timeout_rate": figures.timeout_rate,
        "in_spec_fraction": figures.in_spec_fraction,
    }


async def offers_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    headers = request.headers
    await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )
    catalog = state.catalog.get()
    health = state.exchange.health
    entries = []
    for instrument in sorted(catalog.instruments.values(), key=lambda i: i.id):
        for offer in catalog.offers_for(instrument.id):
            entries.append(
                {
                    "offer": offer.offer.id,
                    "supplier": offer.supplier.name,
                    "instrument": instrument.id,
                    "model": offer.offer.model,
                    "spec": _spec(instrument),
                    **_figures(health.figures(offer.offer.id) if health is not None else None),
                }
            )
    return web.Response(
        body=msgspec.json.encode({"object": "list", "data": entries}),
        content_type="application/json",
    )
