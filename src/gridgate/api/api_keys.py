"""``/api/v1/api-keys``: list, create (the secret shown once) and revoke an account's API keys,
in the reference platform's shapes. Who may touch which account is ``core/access.py``'s call; a
key of another account is answered like a key that does not exist (404). Every create and
revoke is written to the audit log, its actor the user (never the secret)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.json_body import decode_json
from gridgate.api.principal import principal
from gridgate.api.state import STATE
from gridgate.core.access import account_in_scope, may_act_on, required_account
from gridgate.errors import NotFound
from gridgate.shapes import key_json


class NewApiKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    expires_at: str | None = None
    account_id: str | None = None  # an operator's choice; an account's user may only name theirs


class CreateApiKey(msgspec.Struct, forbid_unknown_fields=True):
    api_key: NewApiKey


async def list_api_keys(request: web.Request) -> web.Response:
    who = await principal(request)
    state = request.app[STATE]
    account = account_in_scope(who.user, request.query.get("account_id"), required=False)
    keys = await state.accounts.list_keys(account)
    now = state.clock.now_us()
    return web.json_response({"api_keys": [key_json(key, now) for key in keys]})


async def create_api_key(request: web.Request) -> web.Response:
    who = await principal(request)
    state = request.app[STATE]
    body = (await decode_json(request, CreateApiKey)).api_key
    account = required_account(who.user, body.account_id)
    new = await state.accounts.create_key(account, body.name, expires_at=body.expires_at)
    key = new.record
    await state.people.audit(
        who.user.id, "api_key.create", key.id, account_id=key.account_id, name=key.name
    )
    shown = {**key_json(key, state.clock.now_us()), "key": new.secret}
    return web.json_response({"api_key": shown}, status=201)


async def revoke_api_key(request: web.Request) -> web.Response:
    who = await principal(request)
    state = request.app[STATE]
    key_id = request.match_info["key_id"]
    key = await state.accounts.get_key(key_id)
    if not may_act_on(who.user, key.account_id):
        raise NotFound(f"no key {key_id!r}")
    revoked = await state.accounts.revoke_key(key_id)
    state.auth.forget([key_id])  # refused here at once; other processes by the change feed
    await state.people.audit(who.user.id, "api_key.revoke", key_id, account_id=key.account_id)
    return web.json_response({"api_key": key_json(revoked, state.clock.now_us())})
