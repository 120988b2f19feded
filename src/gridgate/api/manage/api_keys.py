"""``/api/v1/api-keys``: an account's API keys in the reference platform's shapes — list, read,
create (the secret shown once, as ``key``), update (rename; ``is_active: false`` revokes) and
delete (revoke). The rules and the audit are ``core/accounts/api_keys.py``'s."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data, no_content
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.shapes import ApiKeyView
from gridgate.state import STATE


class NewApiKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    expires_at: str | None = None
    account_id: str | None = None  # an operator's choice; an account's user may only name theirs
    own_usage_only: bool = False  # the key reads its own usage receipts only


class CreateApiKey(msgspec.Struct, forbid_unknown_fields=True):
    api_key: NewApiKey


class ApiKeyChange(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    is_active: bool | None = None


class UpdateApiKey(msgspec.Struct, forbid_unknown_fields=True):
    api_key: ApiKeyChange


async def list_api_keys(request: web.Request) -> web.Response:
    state = request.app[STATE]
    keys = await state.services.api_keys.list(
        await actor(request), query.text(request, "account_id")
    )
    now = state.clock.now_us()
    return data([ApiKeyView.of(key, now) for key in keys])


async def get_api_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    key = await state.services.api_keys.get(await actor(request), request.match_info["key_id"])
    return data(ApiKeyView.of(key, state.clock.now_us()))


async def create_api_key(request: web.Request) -> web.Response:
    who = await actor(request)
    state = request.app[STATE]
    body = (await decode_json(request, CreateApiKey)).api_key
    new = await state.services.api_keys.create(
        who,
        body.account_id,
        body.name,
        expires_at=body.expires_at,
        own_usage_only=body.own_usage_only,
    )
    return data(ApiKeyView.of(new.record, state.clock.now_us(), new.secret), status=201)


async def update_api_key(request: web.Request) -> web.Response:
    who = await actor(request)
    change = (await decode_json(request, UpdateApiKey)).api_key
    await request.app[STATE].services.api_keys.update(
        who, request.match_info["key_id"], name=change.name, is_active=change.is_active
    )
    return no_content()


async def revoke_api_key(request: web.Request) -> web.Response:
    who = await actor(request)
    await request.app[STATE].services.api_keys.revoke(who, request.match_info["key_id"])
    return no_content()
