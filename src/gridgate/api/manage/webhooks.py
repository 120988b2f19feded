"""``/api/v1/webhooks`` (endpoints), ``/api/v1/webhook-events`` (the outbox, with each
delivery's status; replay) and an account's ``balance.low`` threshold. The rules and the audit
are ``core/webhooks/endpoints.py``'s."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.manage import query
from gridgate.api.manage.answers import data, no_content
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import actor
from gridgate.errors import ValidationFailed
from gridgate.money import usd_to_nanos
from gridgate.state import STATE
from gridgate.webhook_shapes import BalanceThresholdView, WebhookEndpointView, WebhookEventView


class NewWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    events: list[str] | None = None  # None or ["*"]: every event
    account_id: str | None = None  # an operator without one: a global endpoint


class CreateWebhook(msgspec.Struct, forbid_unknown_fields=True):
    webhook: NewWebhook


class SetThreshold(msgspec.Struct, forbid_unknown_fields=True):
    threshold_usd: str | None  # None: no balance.low events


async def list_webhooks(request: web.Request) -> web.Response:
    services = request.app[STATE].services
    found = await services.webhooks.list(await actor(request), query.text(request, "account_id"))
    return data([WebhookEndpointView.of(e) for e in found])


async def create_webhook(request: web.Request) -> web.Response:
    who = await actor(request)
    body = (await decode_json(request, CreateWebhook)).webhook
    new = await request.app[STATE].services.webhooks.add(
        who, body.account_id, body.url, body.events
    )
    return data(WebhookEndpointView.of(new.endpoint, new.secret), status=201)


async def delete_webhook(request: web.Request) -> web.Response:
    who = await actor(request)
    await request.app[STATE].services.webhooks.remove(who, request.match_info["endpoint_id"])
    return no_content()


async def list_events(request: web.Request) -> web.Response:
    who = await actor(request)
    events = await request.app[STATE].services.webhooks.events(
        who,
        query.text(request, "account_id"),
        limit=query.limit(request, 200),
        event_type=query.text(request, "type"),
    )
    return data([WebhookEventView.of(e) for e in events])


async def replay_event(request: web.Request) -> web.Response:
    who = await actor(request)
    count = await request.app[STATE].services.webhooks.replay(who, request.match_info["event_id"])
    return data({"event_id": request.match_info["event_id"], "deliveries": count})


async def get_threshold(request: web.Request) -> web.Response:
    account = request.match_info["account_id"]
    below = await request.app[STATE].services.webhooks.threshold(await actor(request), account)
    return data(BalanceThresholdView.of(account, below))


async def set_threshold(request: web.Request) -> web.Response:
    who = await actor(request)
    account = request.match_info["account_id"]
    usd = (await decode_json(request, SetThreshold)).threshold_usd
    try:
        below = None if usd is None else usd_to_nanos(usd)
    except (ValueError, ArithmeticError) as exc:
        raise ValidationFailed("threshold_usd: a USD amount", param="threshold_usd") from exc
    await request.app[STATE].services.webhooks.set_threshold(who, account, below)
    return data(BalanceThresholdView.of(account, below))
