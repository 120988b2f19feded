"""``GET /api/v1/balance``: what the caller's account (an operator: ``?account_id=``) has left
after every charge recorded so far."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data
from gridgate.api.manage.principal import actor
from gridgate.shapes import BalanceView
from gridgate.state import STATE


async def balance(request: web.Request) -> web.Response:
    found = await request.app[STATE].services.accounts.balance(
        await actor(request), query.text(request, "account_id")
    )
    return data(BalanceView.of(found))
