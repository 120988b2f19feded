"""``GET /api/v1/balance``: what the caller's account (an operator: ``?account_id=``) has left
after every charge recorded so far."""

from __future__ import annotations

from aiohttp import web

from gridgate.api.principal import principal
from gridgate.api.state import STATE
from gridgate.core.access import required_account
from gridgate.money import format_usd


async def balance(request: web.Request) -> web.Response:
    who = await principal(request)
    account = required_account(who.user, request.query.get("account_id"))
    found = await request.app[STATE].accounts.balance(account)
    return web.json_response(
        {
            "account_id": account,
            "balance_usd": format_usd(found.effective),
            "balance_nanos": found.effective,
        }
    )
