"""GET /v1/models: the instruments, in OpenAI list form, with limits, capabilities and the
current best price. Public (no key needed), rendered once per catalog snapshot."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.routing import Needs, meets_spec, rank
from gridgate.echo import capped
from gridgate.errors import GridgateError, UnknownInstrument
from gridgate.money import format_usd
from gridgate.state import STATE
from gridgate.storage.records import InstrumentRecord

# the token mix "best price" is ranked for: 1,000 tokens in, 1,000 out
_TYPICAL = Needs(capabilities=frozenset(), prompt_tokens=1_000, max_output_tokens=None)


def _entry(catalog: Catalog, instrument: InstrumentRecord) -> dict[str, Any]:
    offers = [o for o in catalog.offers_for(instrument.id) if meets_spec(o, instrument)]
    capabilities = {
        cap: any(cap in o.offer.capabilities for o in offers)
        for cap in ("tools", "json_schema", "vision", "logprobs")
    }
    pricing: dict[str, str] | None = None
    try:
        best = rank(instrument, offers, _TYPICAL)[0]
    except GridgateError:
        best = None
    if best is not None:
        pricing = {
            "usd_per_1m_input_tokens": format_usd(best.price.input_per_m),
            "usd_per_1m_output_tokens": format_usd(best.price.output_per_m),
        }
    image = instrument.image_input and capabilities["vision"]
    return {
        "id": instrument.id,
        "object": "model",
        "created": 0,
        "owned_by": "gridgate",
        "display_name": instrument.display_name,
        "context_length": instrument.context_length,
        "max_input_tokens": instrument.max_input_tokens,
        "max_completion_tokens": instrument.max_completion_tokens,
        "architecture": {
            "input_modalities": ["text", "image"] if image else ["text"],
            "output_modalities": ["text"],
        },
        "attachments": image,
        "tool_call": capabilities["tools"],
        "structured_output": capabilities["json_schema"],
        "capabilities": capabilities,
        "reasoning": {
            "supported_efforts": list(instrument.reasoning_efforts),
            "default_effort": instrument.default_reasoning_effort,
        },
        "pricing": pricing,
        "spec": {
            "quality_floor": instrument.quality_floor,
            "ttft_ceiling_ms": instrument.ttft_ceiling_ms,
            "throughput_floor_tps": instrument.throughput_floor_tps,
            "context_floor": instrument.context_floor,
            "max_output_floor": instrument.max_output_floor,
        },
        "available": bool(offers),
    }


def render_models(catalog: Catalog) -> bytes:
    data = [
        _entry(catalog, i)
        for i in sorted(catalog.instruments.values(), key=lambda i: i.id)
        if i.enabled
    ]
    return msgspec.json.encode({"object": "list", "data": data})


async def list_models(request: web.Request) -> web.Response:
    ref = request.app[STATE].catalog
    if not ref.models_body:
        ref.models_body = render_models(ref.get())
    return web.Response(body=ref.models_body, content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    catalog = request.app[STATE].catalog.get()
    instrument = catalog.instrument(request.match_info["model"])
    if instrument is None:
        raise UnknownInstrument(
            f"no instrument {capped(request.match_info['model'])!r}", param="model"
        )
    return web.Response(
        body=msgspec.json.encode(_entry(catalog, instrument)), content_type="application/json"
    )
