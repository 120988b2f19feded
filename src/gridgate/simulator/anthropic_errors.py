"""Anthropic-shaped error answers, as api.anthropic.com sends them.

The Messages wire names an error by ``type`` alone (no ``code``, no ``param``; a field is named
inside ``message``, e.g. ``max_tokens: Field required``) and adds the ``request_id`` that is
also in the ``request-id`` header::

    {"type": "error", "error": {"type": "rate_limit_error", "message": "..."}, "request_id": "req_..."}

Each status has one type. The simulator's refusals are :class:`.errors.SimulatorError` on both
wires; the Messages endpoint renders them here, by status.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_encode = msgspec.json.Encoder().encode


def error_type(status: int) -> str:
    """The ``error.type`` Anthropic sends with ``status`` (other 4xx: invalid request; 5xx: API)."""
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(
    status: int, message: str, *, request_id: str, type_: str | None = None
) -> bytes:
    error = {"type": type_ or error_type(status), "message": message}
    return _encode({"type": "error", "error": error, "request_id": request_id})


def anthropic_error_response(
    status: int,
    message: str,
    *,
    request_id: str,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=anthropic_error_body(status, message, request_id=request_id, type_=type_),
        content_type="application/json",
        headers={**(headers or {}), "request-id": request_id},
    )


def anthropic_error_event(
    status: int, message: str, *, request_id: str, type_: str | None = None
) -> bytes:
    """The SSE ``error`` event a stream ends with when the supplier fails after the first byte."""
    body = anthropic_error_body(status, message, request_id=request_id, type_=type_)
    return b"event: error\ndata: " + body + b"\n\n"
