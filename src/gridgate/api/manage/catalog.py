"""The catalog as operators manage it: ``/api/v1/suppliers`` and ``/api/v1/offers`` (list,
read, create, edit — ``enabled: false`` disables an offer), instrument create and edit, and
``/api/v1/offer-health``: every offer's measured figures against its instrument's spec, from the
usage records of all processes. Changes take effect at once in every process (the change feed);
the rules are ``core/catalog/edits.py``'s. Operators only."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data
from gridgate.api.manage.instruments import instrument_shape
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.core.catalog.edits import InstrumentFields, OfferFields, SupplierFields
from gridgate.core.health.report import OfferStatusView
from gridgate.errors import ValidationFailed
from gridgate.shapes import OfferView, SupplierView
from gridgate.state import STATE


class SupplierBody(msgspec.Struct, forbid_unknown_fields=True):
    supplier: SupplierFields


class OfferBody(msgspec.Struct, forbid_unknown_fields=True):
    offer: OfferFields


class InstrumentBody(msgspec.Struct, forbid_unknown_fields=True):
    instrument: InstrumentFields


async def list_suppliers(request: web.Request) -> web.Response:
    suppliers = await request.app[STATE].services.catalog_editor.suppliers(await actor(request))
    return data([SupplierView.of(s) for s in suppliers])


async def get_supplier(request: web.Request) -> web.Response:
    editor = request.app[STATE].services.catalog_editor
    found = await editor.supplier(await actor(request), request.match_info["name"])
    return data(SupplierView.of(found))


async def create_supplier(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, SupplierBody)).supplier
    saved = await request.app[STATE].services.catalog_editor.save_supplier(who, fields)
    return data(SupplierView.of(saved), status=201)


async def update_supplier(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, SupplierBody)).supplier
    saved = await request.app[STATE].services.catalog_editor.save_supplier(
        who, fields, name=request.match_info["name"]
    )
    return data(SupplierView.of(saved))


async def list_offers(request: web.Request) -> web.Response:
    offers = await request.app[STATE].services.catalog_editor.offers(await actor(request))
    instrument = query.text(request, "instrument")
    supplier = query.text(request, "supplier")
    return data(
        [
            OfferView.of(o)
            for o in offers
            if (instrument is None or o.instrument == instrument.lower())
            and (supplier is None or o.supplier == supplier)
        ]
    )


async def get_offer(request: web.Request) -> web.Response:
    editor = request.app[STATE].services.catalog_editor
    found = await editor.offer(await actor(request), request.match_info["offer_id"])
    return data(OfferView.of(found))


async def create_offer(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, OfferBody)).offer
    saved = await request.app[STATE].services.catalog_editor.save_offer(who, fields)
    return data(OfferView.of(saved), status=201)


async def update_offer(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, OfferBody)).offer
    saved = await request.app[STATE].services.catalog_editor.save_offer(
        who, fields, offer_id=request.match_info["offer_id"]
    )
    return data(OfferView.of(saved))


async def create_instrument(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, InstrumentBody)).instrument
    state = request.app[STATE]
    saved = await state.services.catalog_editor.save_instrument(who, fields)
    return data(await instrument_shape(request, saved.id), status=201)


async def update_instrument(request: web.Request) -> web.Response:
    who = await actor(request)
    fields = (await decode_json(request, InstrumentBody)).instrument
    saved = await request.app[STATE].services.catalog_editor.save_instrument(
        who, fields, instrument_id=request.match_info["instrument_id"]
    )
    return data(await instrument_shape(request, saved.id))


async def offer_health(request: web.Request) -> web.Response:
    who = await actor(request)
    seconds = query.text(request, "window_seconds")
    window = None
    if seconds is not None:
        if not (seconds.isascii() and seconds.isdigit()) or not 1 <= int(seconds) <= 86_400:
            raise ValidationFailed(
                "window_seconds: a whole number of seconds from 1 to 86400",
                param="window_seconds",
            )
        window = int(seconds)
    statuses = await request.app[STATE].services.offer_board.status(who, window_seconds=window)
    return data([OfferStatusView.of(s) for s in statuses])
