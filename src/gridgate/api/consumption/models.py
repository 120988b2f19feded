"""GET /v1/models and /v1/models/{id}: the enabled instruments. Public (no key needed).

Both SDKs call these paths, so the answer takes the caller's shape. By default it is OpenAI's
list (``{"object": "list", "data": [...]}``) with gridgate's limits, capabilities and current best
price, rendered once per catalog snapshot. A request carrying ``anthropic-version`` (Anthropic's
SDKs send it, OpenAI's never do) gets Anthropic's ``ModelInfo`` and its cursor pages
(``limit``, ``after_id``, ``before_id``; ``has_more``, ``first_id``, ``last_id``), and its errors
in Anthropic's envelope (``api/errors.py:is_anthropic_client``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gridgate.api.errors import is_anthropic_client, request_id_headers
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.routing import Needs, meets_spec, rank
from gridgate.echo import capped
from gridgate.errors import BadRequest, GridgateError, UnknownInstrument
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
    if is_anthropic_client(request):
        return _anthropic(request, _anthropic_page(request, request.app[STATE].catalog.get()))
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
    if is_anthropic_client(request):
        return _anthropic(request, model_info(instrument))
    return web.Response(
        body=msgspec.json.encode(_entry(catalog, instrument)), content_type="application/json"
    )


# ---- Anthropic's shape ------------------------------------------------------------------------

# gridgate keeps no release date for an instrument (it is a product of the exchange, not a model
# release), so every one is dated at the Unix epoch: Anthropic's documented value for "release
# date unknown", and the same instant as the OpenAI shape's ``created: 0``. Being equal, the
# dates leave the order to the id, the same order as the OpenAI list.
CREATED_AT = "1970-01-01T00:00:00Z"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
LIFECYCLES = frozenset({"active", "deprecated", "retired"})


def model_info(instrument: InstrumentRecord) -> dict[str, Any]:
    """Anthropic's ``ModelInfo`` for an enabled instrument. What gridgate knows truthfully is
    filled in: the limits it enforces on every request (``max_input_tokens``, and ``max_tokens``
    from the instrument's output cap). ``capabilities`` stays null: Anthropic's object asserts
    per-feature support of its own API (batches, citations, server tools, thinking types) that an
    instrument does not record. An enabled instrument is ``active``, with no deprecation or
    retirement scheduled, and belongs to no Claude model ``line``."""
    return {
        "type": "model",
        "id": instrument.id,
        "display_name": instrument.display_name,
        "created_at": CREATED_AT,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "line": None,
        "max_input_tokens": instrument.max_input_tokens,
        "max_tokens": instrument.max_completion_tokens,
        "capabilities": None,
    }


def _anthropic(request: web.Request, body: dict[str, Any]) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body),
        content_type="application/json",
        headers=request_id_headers(request, anthropic=True),
    )


def _anthropic_page(request: web.Request, catalog: Catalog) -> dict[str, Any]:
    """One page of Anthropic's list. Cursors are positions in the id order, not lookups, so a
    cursor whose instrument was disabled since the last page still pages on from where it was."""
    limit = _limit(request)
    after, before = _cursor(request, "after_id"), _cursor(request, "before_id")
    if after is not None and before is not None:
        raise BadRequest("after_id and before_id cannot be used together", param="before_id")
    listed = _lifecycles(request)
    ids = sorted(i.id for i in catalog.instruments.values() if i.enabled and "active" in listed)
    if before is not None:
        earlier = [i for i in ids if i < before]
        page, has_more = earlier[-limit:], len(earlier) > limit
    else:
        later = [i for i in ids if after is None or i > after]
        page, has_more = later[:limit], len(later) > limit
    return {
        "data": [model_info(catalog.instruments[i]) for i in page],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


def _limit(request: web.Request) -> int:
    value = request.query.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not (
        1 <= int(value) <= MAX_LIMIT
    ):
        raise BadRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return int(value)


def _cursor(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not value or len(value) > 256:
        raise BadRequest(f"{name}: must be a model id of 1 to 256 characters", param=name)
    return value.lower()  # instrument ids are lower-case; lookups ignore case


def _lifecycles(request: web.Request) -> frozenset[str]:
    """``lifecycle`` as Anthropic's SDKs send it (``lifecycle[]=…``, repeated) or repeated bare;
    by default ``active`` and ``deprecated``. Every instrument listed is ``active``."""
    values = request.query.getall("lifecycle[]", []) + request.query.getall("lifecycle", [])
    if not values:
        return frozenset({"active", "deprecated"})
    wrong = sorted(set(values) - LIFECYCLES)
    if wrong:
        raise BadRequest(
            f"lifecycle: {capped(wrong[0])!r} is not one of active, deprecated, retired",
            param="lifecycle",
        )
    return frozenset(values)
