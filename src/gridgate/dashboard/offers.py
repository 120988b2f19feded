"""Operators' suppliers and offers: both tables, an offer's edit form (prices and declarations:
quality, context, max output, capabilities), a new offer, and enabling or disabling an offer or
a supplier — each effective in every gateway process within a second."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from gridgate.core.access import require_operator
from gridgate.core.catalog.edits import CAPABILITIES, OfferFields, SupplierFields
from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.money import format_usd
from gridgate.state import STATE
from gridgate.storage.records import OfferRecord

_NUMBERS = {"quality": float, "context": int, "max_output": int}


@guarded
async def offers_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    editor = request.app[STATE].services.catalog_editor
    return render(
        request,
        who,
        "offers.html",
        active="offers",
        suppliers=await editor.suppliers(who.actor),
        offers=await editor.offers(who.actor),
    )


def _fields(form: MultiDictProxy[str], *, create: bool) -> OfferFields:
    given: dict[str, Any] = {}
    names = ["input_usd_per_m", "output_usd_per_m", *_NUMBERS]
    if create:
        names += ["supplier", "instrument", "model", "id"]
    for name in names:
        text = form.get(name, "").strip()
        if not text:
            continue
        convert = _NUMBERS.get(name)
        try:
            given[name] = convert(text) if convert is not None else text
        except ValueError as exc:
            raise ValidationFailed(f"{name}: not a number: {text[:40]!r}", param=name) from exc
    given["capabilities"] = [c for c in CAPABILITIES if form.get(f"cap_{c}") == "on"]
    return msgspec.convert(given, OfferFields)


async def _form(
    request: web.Request,
    who: Viewer,
    offer: OfferRecord | None,
    *,
    error: str | None = None,
    form: MultiDictProxy[str] | None = None,
) -> web.Response:
    instruments, suppliers, _ = await request.app[STATE].store.load_catalog()
    return render(
        request,
        who,
        "offer_form.html",
        active="offers",
        status=422 if error else 200,
        offer=offer,
        error=error,
        posted=form,
        capabilities=CAPABILITIES,
        suppliers=[s.name for s in suppliers],
        instruments=[i.id for i in instruments],
        plain_usd=format_usd,
    )


@guarded
async def edit_offer_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    offer_id = request.query.get("id", "")
    offer = None
    if offer_id:
        offer = await request.app[STATE].services.catalog_editor.offer(who.actor, offer_id)
    else:
        require_operator(who.actor)
    return await _form(request, who, offer)


@guarded
async def save_offer(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    editor = request.app[STATE].services.catalog_editor
    offer_id = form.get("offer_id") or None
    current = None if offer_id is None else await editor.offer(who.actor, offer_id)
    try:
        await editor.save_offer(who.actor, _fields(form, create=current is None), offer_id=offer_id)
    except (ValidationFailed, msgspec.ValidationError) as exc:
        message = exc.message if isinstance(exc, ValidationFailed) else str(exc)
        return await _form(request, who, current, error=message, form=form)
    raise done("/offers", "offer-saved")


@guarded
async def toggle_offer(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    enable = form.get("enable") == "yes"
    await request.app[STATE].services.catalog_editor.set_offer_enabled(
        who.actor, form.get("offer_id", ""), enable
    )
    raise done("/offers", "offer-enabled" if enable else "offer-disabled")


@guarded
async def toggle_supplier(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    await request.app[STATE].services.catalog_editor.save_supplier(
        who.actor,
        SupplierFields(enabled=form.get("enable") == "yes"),
        name=form.get("name", ""),
    )
    raise done("/offers", "supplier-saved")
