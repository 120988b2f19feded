"""Rate limits of an account, an API key or an instrument: ``GET`` shows the overrides and what
is in effect, ``PUT`` (operators) sets them. A value is a whole number, ``"unlimited"`` or
``"default"`` (drop the override); a field left out keeps its override."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from gridgate.api.manage.answers import data
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.core.limits.overrides import FIELDS, parse_value
from gridgate.shapes import LimitsView
from gridgate.state import STATE
from gridgate.storage.limiter.port import LimitKind, LimitScope

Value = int | str | None  # None: keep


class LimitChange(msgspec.Struct, forbid_unknown_fields=True):
    requests_per_minute: Value = None
    tokens_per_minute: Value = None
    concurrent: Value = None


class SetLimits(msgspec.Struct, forbid_unknown_fields=True):
    limits: LimitChange


def _changes(change: LimitChange) -> dict[LimitKind, int | None]:
    out: dict[LimitKind, int | None] = {}
    for kind, field in FIELDS.items():
        value = getattr(change, field)
        if value is not None:
            out[kind] = parse_value(str(value), param=field)
    return out


Handler = Callable[[web.Request], Awaitable[web.Response]]


def limits_handlers(scope: LimitScope, param: str) -> tuple[Handler, Handler]:
    """The GET and PUT handlers of ``scope``'s limits, the subject in path parameter ``param``."""

    async def show(request: web.Request) -> web.Response:
        shown = await request.app[STATE].services.limits.show(
            await actor(request), scope, request.match_info[param]
        )
        return data(msgspec.convert(shown, LimitsView))

    async def put(request: web.Request) -> web.Response:
        who = await actor(request)
        change = (await decode_json(request, SetLimits)).limits
        shown = await request.app[STATE].services.limits.set(
            who, scope, request.match_info[param], _changes(change)
        )
        return data(msgspec.convert(shown, LimitsView))

    return show, put
