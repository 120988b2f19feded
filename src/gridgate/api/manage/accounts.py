"""``/api/v1/accounts``: accounts with their balances — list and read (an account's people:
their own), create, credit and adjust (operators; each with an idempotency key, so a retried
call applies once: the body's ``idempotency_key`` or the ``Idempotency-Key`` header)."""

from __future__ import annotations

from typing import Literal

import msgspec
from aiohttp import web

from gridgate.api.manage.answers import data
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.core.access import Actor
from gridgate.errors import ValidationFailed
from gridgate.shapes import AccountView, LedgerEntryView, MoneyMovedView
from gridgate.state import STATE
from gridgate.storage.records import AccountRecord


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class CreateAccount(msgspec.Struct, forbid_unknown_fields=True):
    account: NewAccount


class Money(msgspec.Struct, forbid_unknown_fields=True):
    amount_usd: str  # an exact decimal, e.g. "25" or "-1.5" (adjustments)
    idempotency_key: str | None = None
    memo: str | None = None


async def _described(request: web.Request, who: Actor, account: AccountRecord) -> AccountView:
    balance = await request.app[STATE].services.accounts.balance(who, account.id)
    return AccountView.of(account, balance)


async def list_accounts(request: web.Request) -> web.Response:
    who = await actor(request)
    accounts = await request.app[STATE].services.accounts.list(who)
    return data([await _described(request, who, a) for a in accounts])


async def get_account(request: web.Request) -> web.Response:
    who = await actor(request)
    account = await request.app[STATE].services.accounts.get(who, request.match_info["account_id"])
    return data(await _described(request, who, account))


async def create_account(request: web.Request) -> web.Response:
    who = await actor(request)
    body = (await decode_json(request, CreateAccount)).account
    account = await request.app[STATE].services.accounts.create(who, body.name)
    return data(await _described(request, who, account), status=201)


def _idempotency_key(request: web.Request, body: Money) -> str:
    header = request.headers.get("Idempotency-Key")
    if header is not None and body.idempotency_key is not None and header != body.idempotency_key:
        raise ValidationFailed(
            "idempotency_key: the header and the body name different keys",
            param="idempotency_key",
        )
    key = body.idempotency_key or header
    if not key or not key.strip():
        raise ValidationFailed(
            "idempotency_key: required (in the body or an Idempotency-Key header), so that a "
            "retried call applies once",
            param="idempotency_key",
        )
    return key


async def credit(request: web.Request) -> web.Response:
    return await _move_money(request, "credit")


async def adjust(request: web.Request) -> web.Response:
    return await _move_money(request, "adjust")


async def _move_money(request: web.Request, kind: Literal["credit", "adjust"]) -> web.Response:
    who = await actor(request)
    body = await decode_json(request, Money)
    accounts = request.app[STATE].services.accounts
    move = accounts.credit if kind == "credit" else accounts.adjust
    entry, account = await move(
        who,
        request.match_info["account_id"],
        body.amount_usd,
        idempotency_key=_idempotency_key(request, body),
        memo=body.memo,
    )
    moved = MoneyMovedView(
        entry=LedgerEntryView.of(entry), account=await _described(request, who, account)
    )
    return data(moved, status=201)
