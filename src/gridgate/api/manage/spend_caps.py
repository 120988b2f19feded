"""Spend caps: ``GET`` an account's caps (its own and its keys') with what each has spent in its
window, ``PUT`` a cap on an account or a key for one period (owners and operators), ``DELETE``
one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from gridgate.api.manage.answers import data, no_content
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.core.billing.spend_caps import parse_limit, parse_period
from gridgate.shapes import SpendCapView
from gridgate.state import STATE
from gridgate.storage.records import CapScope


class SetCap(msgspec.Struct, forbid_unknown_fields=True):
    limit_usd: str  # a decimal string, e.g. "25" or "0.50"


async def list_caps(request: web.Request) -> web.Response:
    who = await actor(request)
    uses = await request.app[STATE].services.spend_caps.of_account(
        who, request.match_info["account_id"]
    )
    return data([SpendCapView.of(use) for use in uses])


def _put(scope: CapScope, param: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def put(request: web.Request) -> web.Response:
        who = await actor(request)
        body = await decode_json(request, SetCap)
        use = await request.app[STATE].services.spend_caps.set(
            who,
            scope=scope,
            subject=request.match_info[param],
            period=parse_period(request.match_info["period"]),
            limit=parse_limit(body.limit_usd),
        )
        return data(SpendCapView.of(use))

    return put


put_account_cap = _put("account", "account_id")
put_key_cap = _put("key", "key_id")


async def remove_cap(request: web.Request) -> web.Response:
    who = await actor(request)
    await request.app[STATE].services.spend_caps.remove(who, request.match_info["cap_id"])
    return no_content()
