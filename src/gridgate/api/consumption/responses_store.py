"""Stored responses of the Responses API, read and deleted by the API key that made them:
``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}`` and
``GET /v1/responses/{id}/input_items`` (OpenAI's ``ResponseItemList``, cursor paging by item id).

A response that is absent, expired or another account's answers 404 as OpenAI words it
(``Response with id '…' not found.``). ``include`` is accepted and checked against OpenAI's
values: a response is stored with everything it carried, so nothing is left to add.
``GET …?stream=true`` (replaying the events) is refused with a 400 naming ``stream``.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

import msgspec
from aiohttp import web

from gridgate.api.errors import request_id_headers
from gridgate.core.accounts.auth import presented_key
from gridgate.echo import capped
from gridgate.errors import BadRequest, ResponseNotFound
from gridgate.protocol.openai_responses.request import IncludeValue
from gridgate.state import STATE, AppState
from gridgate.storage.records import KeyRecord

DEFAULT_LIMIT: Final = 20
_INCLUDES: Final = frozenset(get_args(IncludeValue))


async def _caller(request: web.Request) -> tuple[AppState, KeyRecord, str]:
    state = request.app[STATE]
    headers = request.headers
    key = await state.auth.authenticate(
        presented_key(headers.get("Authorization"), headers.get("x-api-key"), native="bearer")
    )
    return state, key, request.match_info["response_id"]


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(f"Response with id '{capped(response_id)}' not found.")


def _json(request: web.Request, body: bytes) -> web.Response:
    return web.Response(
        body=body, content_type="application/json", headers=request_id_headers(request)
    )


def _check_include(request: web.Request) -> None:
    for value in request.query.getall("include[]", []) + request.query.getall("include", []):
        if value not in _INCLUDES:
            raise BadRequest(
                f"include: {capped(value)!r} is not one of {', '.join(sorted(_INCLUDES))}",
                param="include",
            )


async def get_response(request: web.Request) -> web.Response:
    state, key, response_id = await _caller(request)
    _check_include(request)
    if request.query.get("stream", "false").lower() not in ("false", "0"):
        raise BadRequest("stream: replaying a stored response is not supported", param="stream")
    body = await state.responses.get(key.account_id, response_id)
    if body is None:
        raise _not_found(response_id)
    return _json(request, body)


async def delete_response(request: web.Request) -> web.Response:
    state, key, response_id = await _caller(request)
    if not await state.responses.delete(key.account_id, response_id):
        raise _not_found(response_id)
    answer = {"id": response_id, "object": "response", "deleted": True}
    return _json(request, msgspec.json.encode(answer))


async def list_input_items(request: web.Request) -> web.Response:
    state, key, response_id = await _caller(request)
    _check_include(request)
    page = await state.responses.input_items(
        key.account_id,
        response_id,
        after=_after(request),
        limit=_limit(request),
        order=_order(request),
    )
    if page is None:
        raise _not_found(response_id)
    body = b"".join(
        (
            b'{"object":"list","data":[',
            b",".join(page.items),
            b"],",
            msgspec.json.encode(
                {"first_id": page.first_id, "last_id": page.last_id, "has_more": page.has_more}
            )[1:],
        )
    )
    return _json(request, body)


def _limit(request: web.Request) -> int:
    value = request.query.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and 1 <= int(value) <= 100):
        raise BadRequest("limit: must be an integer from 1 to 100", param="limit")
    return int(value)


def _order(request: web.Request) -> Literal["asc", "desc"]:
    value = request.query.get("order", "desc")
    if value == "asc":
        return "asc"
    if value == "desc":
        return "desc"
    raise BadRequest(f"order: {capped(value)!r} is not one of asc, desc", param="order")


def _after(request: web.Request) -> str | None:
    value = request.query.get("after")
    if value is not None and not value:
        raise BadRequest("after: must be an item id", param="after")
    return value
