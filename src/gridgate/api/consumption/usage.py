"""The consumer's usage receipts, authenticated by its API key (Bearer or ``x-api-key``):

- ``GET /v1/usage/{request_id}``: one request's receipt; ``?signed=true`` (or the header
  ``Grid-Receipt-Signature: true``) adds its Ed25519 ``signature``;
- ``GET /v1/usage``: receipts a page at a time, filtered and ordered;
- ``GET /v1/usage/summary``: totals over a window, optionally per day, model or key;
- ``GET /.well-known/gridgate-receipt-keys``: the public keys signatures verify with.

Times in queries are ISO 8601 (a zone-less time is UTC, a date is midnight UTC) or unix
seconds. A bad parameter is a 400 naming it, in the OpenAI envelope.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import get_args

import msgspec
from aiohttp import web

from gridgate.api.errors import REQUEST_IDS
from gridgate.core.accounts.auth import presented_key
from gridgate.core.accounts.receipt_signing import ReceiptSigner
from gridgate.core.accounts.receipt_view import COST_STATUSES, STATUSES, receipt_json
from gridgate.core.accounts.receipts import DEFAULT_PAGE, MAX_PAGE, ReceiptQuery, Receipts
from gridgate.core.times import parse_time
from gridgate.echo import capped
from gridgate.errors import BadRequest, ValidationFailed
from gridgate.state import STATE, AppState
from gridgate.storage.ports.receipts import ReceiptOrder, SummaryGroup
from gridgate.storage.records import KeyRecord

RECEIPTS: web.AppKey[Receipts] = web.AppKey("gridgate_receipts", Receipts)
SIGNER: web.AppKey[ReceiptSigner] = web.AppKey("gridgate_receipt_signer", ReceiptSigner)
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")
_ORDER_BY: dict[str, ReceiptOrder] = {
    "created_at": "created_us",
    "inserted_at": "created_us",  # the reference CLI's name
    "cost": "cost",
}
_TRUE = frozenset({"true", "1", "yes"})
_encode = msgspec.json.Encoder().encode


async def receipts_context(app: web.Application) -> AsyncIterator[None]:
    """The receipts and the signer of this process, over the state the lifespan built."""
    state = app[STATE]
    app[RECEIPTS] = Receipts(state.store, state.usage, state.clock, ours=app[REQUEST_IDS].ours)
    app[SIGNER] = ReceiptSigner(state.store, state.clock)
    yield


async def _caller(request: web.Request, state: AppState) -> KeyRecord:
    headers = request.headers
    return await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )


def _json(body: object) -> web.Response:
    return web.Response(body=_encode(body), content_type="application/json")


def _time(request: web.Request, param: str) -> int | None:
    text = request.query.get(param)
    if text is None or text == "":
        return None
    if _UNIX_SECONDS.fullmatch(text):
        return int(text) * 1_000_000
    try:
        return parse_time(text, param=param)
    except ValidationFailed as exc:
        raise BadRequest(
            f"{param}: not an ISO 8601 time or unix seconds: {capped(text)!r}", param=param
        ) from exc


def _choice(request: web.Request, param: str, allowed: tuple[str, ...]) -> str | None:
    text = request.query.get(param)
    if text is None or text == "":
        return None
    if text not in allowed:
        raise BadRequest(f"{param}: must be one of {', '.join(allowed)}", param=param)
    return text


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None or text == "":
        return DEFAULT_PAGE
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest(f"limit: must be an integer from 1 to {MAX_PAGE}", param="limit")
    return int(text)


def _text(request: web.Request, param: str) -> str | None:
    text = request.query.get(param)
    return None if text is None or text == "" else text


async def get_receipt(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = await _caller(request, state)
    record = await request.app[RECEIPTS].find(caller, request.match_info["request_id"])
    body = receipt_json(record)
    signed = request.query.get("signed", "").lower() in _TRUE or (
        request.headers.get("Grid-Receipt-Signature", "").lower() in _TRUE
    )
    if signed:
        instrument = state.catalog.get().instrument(record.instrument)
        body["signature"] = await request.app[SIGNER].sign(record, instrument)
    return _json(body)


async def list_receipts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = await _caller(request, state)
    order_by = _choice(request, "order_by", tuple(_ORDER_BY)) or "created_at"
    direction = _choice(request, "order_direction", ("asc", "desc")) or "desc"
    query = ReceiptQuery(
        since_us=_time(request, "from"),
        until_us=_time(request, "to"),
        status=_choice(request, "status", STATUSES),
        cost_status=_choice(request, "cost_status", COST_STATUSES),
        model=_text(request, "model"),
        api_key_id=_text(request, "api_key_id"),
        order_by=_ORDER_BY[order_by],
        descending=direction == "desc",
        limit=_limit(request),
        next=_text(request, "next"),
        prev=_text(request, "prev"),
    )
    if (
        query.since_us is not None
        and query.until_us is not None
        and query.until_us < query.since_us
    ):
        raise BadRequest("to: must not be before from", param="to")
    page = await request.app[RECEIPTS].page(caller, query)
    return _json(page.json())


async def usage_summary(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = await _caller(request, state)
    group_by: SummaryGroup | None = None
    chosen = _choice(request, "group_by", get_args(SummaryGroup))
    if chosen is not None:
        group_by = next(g for g in get_args(SummaryGroup) if g == chosen)
    summary = await request.app[RECEIPTS].summary(
        caller,
        since_us=_time(request, "from"),
        until_us=_time(request, "to"),
        group_by=group_by,
        api_key_id=_text(request, "api_key_id"),
    )
    return _json(summary)


async def receipt_keys(request: web.Request) -> web.Response:
    response = _json(await request.app[SIGNER].public_keys())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
