"""Request bodies of the management API: JSON only, decoded and validated in one pass; a wrong
value is ``ValidationFailed`` (422) naming its parameter, malformed JSON is ``BadRequest``."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from aiohttp import web

from gridgate.errors import BadRequest, ValidationFailed
from gridgate.state import STATE
from gridgate.web.request_body import read_body

T = TypeVar("T")
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")


def _param(message: str) -> str | None:
    at = _AT.search(message)
    path = at.group(1) if at else ""
    named = _FIELD.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None


async def decode_json(request: web.Request, kind: type[T]) -> T:
    """The body of ``request`` as ``kind``; it must be sent as ``application/json`` (a form
    another site posts cannot be)."""
    if request.content_type != "application/json":
        raise BadRequest("the body must be JSON, sent with 'Content-Type: application/json'")
    body = await read_body(request, request.app[STATE].settings.server.max_body_bytes)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        param = _param(str(exc))
        message = str(exc)
        raise ValidationFailed(f"{param}: {message}" if param else message, param=param) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
