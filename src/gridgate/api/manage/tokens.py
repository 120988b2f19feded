"""``/api/v1/tokens``: the signed-in person's management tokens for scripts — list, create (the
secret shown once, as ``token``) and revoke. A token cannot create another."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.manage.answers import data, no_content
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import principal
from gridgate.shapes import TokenView
from gridgate.state import STATE


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    expires_at: str | None = None


class CreateToken(msgspec.Struct, forbid_unknown_fields=True):
    token: NewToken


async def list_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE]
    tokens = await state.services.tokens.list((await principal(request)).actor)
    now = state.clock.now_us()
    return data([TokenView.of(t, now) for t in tokens])


async def create_token(request: web.Request) -> web.Response:
    who = await principal(request)
    state = request.app[STATE]
    body = (await decode_json(request, CreateToken)).token
    new = await state.services.tokens.create(
        who.actor, body.name, expires_at=body.expires_at, by_token=who.by_token
    )
    return data(TokenView.of(new.record, state.clock.now_us(), new.secret), status=201)


async def revoke_token(request: web.Request) -> web.Response:
    who = await principal(request)
    await request.app[STATE].services.tokens.revoke(who.actor, request.match_info["token_id"])
    return no_content()
