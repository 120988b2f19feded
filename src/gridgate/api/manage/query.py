"""Query parameters of the management API, each checked once: a bad one is 422 naming it."""

from __future__ import annotations

from aiohttp import web

from gridgate.core.times import parse_time
from gridgate.errors import ValidationFailed

MAX_TEXT = 256


def text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT or "\x00" in value:
        raise ValidationFailed(f"{name}: at most {MAX_TEXT} characters", param=name)
    return value


def time(request: web.Request, name: str) -> int | None:
    value = text(request, name)
    return None if value is None else parse_time(value, param=name)


def limit(request: web.Request, maximum: int) -> int:
    value = request.query.get("limit")
    if value is None:
        return maximum
    if (
        not (value.isascii() and value.isdigit())
        or len(value) > 6
        or not 1 <= int(value) <= maximum
    ):
        raise ValidationFailed(f"limit: must be an integer from 1 to {maximum}", param="limit")
    return int(value)
