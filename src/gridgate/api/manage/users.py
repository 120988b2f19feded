"""``/api/v1/users``: people — list (an operator: everyone or ``?account_id=``; an account's
people: their account's), create (an operator: anyone; an owner: their account's owners and
members) and enable or disable (``PATCH`` ``{"user": {"is_active": false}}``)."""

from __future__ import annotations

from typing import Literal

import msgspec
from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.shapes import UserView
from gridgate.state import STATE


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    name: str
    password: str
    role: Literal["operator", "owner", "member"] = "member"
    account_id: str | None = None


class CreateUser(msgspec.Struct, forbid_unknown_fields=True):
    user: NewUser


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    is_active: bool


class UpdateUser(msgspec.Struct, forbid_unknown_fields=True):
    user: UserChange


async def list_users(request: web.Request) -> web.Response:
    users = await request.app[STATE].services.users.list(
        await actor(request), query.text(request, "account_id")
    )
    return data([UserView.of(u) for u in users])


async def create_user(request: web.Request) -> web.Response:
    who = await actor(request)
    new = (await decode_json(request, CreateUser)).user
    account = new.account_id
    if account is None and new.role != "operator" and not who.is_operator:
        account = who.account_id  # an owner adds to their own account by default
    user = await request.app[STATE].services.users.create(
        who,
        email=new.email,
        name=new.name,
        role=new.role,
        account_id=account,
        password=new.password,
    )
    return data(UserView.of(user), status=201)


async def update_user(request: web.Request) -> web.Response:
    who = await actor(request)
    change = (await decode_json(request, UpdateUser)).user
    user = await request.app[STATE].services.users.set_disabled(
        who, request.match_info["user_id"], not change.is_active
    )
    return data(UserView.of(user))
