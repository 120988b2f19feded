"""``webhooks``: add, list and remove endpoints, list events with their deliveries, replay an
event, and set an account's ``balance.low`` threshold. The CLI acts as an operator: an
endpoint without ``--account`` is global (every event)."""

from __future__ import annotations

import argparse
import asyncio

import msgspec

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.money import usd_to_nanos
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import as_json
from gridgate.webhook_shapes import BalanceThresholdView, WebhookEndpointView, WebhookEventView


async def _act(args: argparse.Namespace, services: Services) -> Result:
    hooks = services.webhooks
    if args.action == "add":
        events = [e.strip() for e in args.events.split(",")] if args.events else None
        new = await hooks.add(CLI, args.account, args.url, events)
        return as_json(WebhookEndpointView.of(new.endpoint, new.secret))
    if args.action == "remove":
        await hooks.remove(CLI, args.endpoint_id)
        return {"id": args.endpoint_id, "removed": True}
    if args.action == "replay":
        return {"event_id": args.event_id, "deliveries": await hooks.replay(CLI, args.event_id)}
    if args.action == "events":
        found = await hooks.events(CLI, args.account, limit=args.limit, event_type=args.type)
        return [as_json(WebhookEventView.of(e)) for e in found]
    if args.action == "threshold":
        if args.set is not None or args.clear:
            below = None if args.clear else usd_to_nanos(args.set)
            await hooks.set_threshold(CLI, args.account, below)
        below = await hooks.threshold(CLI, args.account)
        return as_json(BalanceThresholdView.of(args.account, below))
    return [as_json(WebhookEndpointView.of(e)) for e in await hooks.list(CLI, args.account)]


def _human(result: Result, action: str) -> str:
    if isinstance(result, list) and action == "events":
        return "\n".join(
            f"{e['id']}  {e['type']}  {e['created_at']}  {e['account_id'] or '-'}  "
            + (
                ", ".join(
                    f"{d['endpoint_id']}: {d['status']} ({d['attempts']} attempts"
                    + (f", {d['last_error']}" if d["last_error"] else "")
                    + ")"
                    for d in e["deliveries"]
                )
                or "no delivery yet"
            )
            for e in result
        )
    if isinstance(result, list):
        return "\n".join(
            f"{e['id']}  {e['account_id'] or 'global'}  {','.join(e['events'])}  {e['url']}"
            for e in result
        )
    if action == "add":
        return (
            f"{result['id']}  {result['url']}\n{result['secret']}\n"
            "This signing secret is shown once; store it now."
        )
    if action == "threshold":
        return f"{result['account_id']}: balance.low below {result['threshold_usd'] or '(none)'}"
    return msgspec.json.encode(result).decode()


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    result = asyncio.run(with_services(settings, lambda services: _act(args, services)))
    print_result(result, args.json, lambda: _human(result, args.action))
    return 0


def add_parser(commands: Commands) -> None:
    hooks = commands.add("webhooks", "manage webhook endpoints and events", cmd_webhooks)
    hs = Actions(hooks)
    p = hs.add_parser("add", help="add an endpoint (its signing secret is shown once)")
    p.add_argument("--url", required=True)
    p.add_argument("--account", default=None, help="the account's events (default: global)")
    p.add_argument(
        "--events", default=None, help="comma-separated event types (default: all events)"
    )
    p = hs.add_parser("list", help="list endpoints")
    p.add_argument("--account", default=None)
    p = hs.add_parser("remove", help="remove an endpoint and its deliveries")
    p.add_argument("endpoint_id")
    p = hs.add_parser("events", help="events, newest first, with each delivery's status")
    p.add_argument("--account", default=None)
    p.add_argument("--type", default=None)
    p.add_argument("--limit", type=int, default=50)
    p = hs.add_parser("replay", help="send an event again, with the same id")
    p.add_argument("event_id")
    p = hs.add_parser("threshold", help="show or set an account's balance.low threshold")
    p.add_argument("--account", required=True)
    p.add_argument("--set", default=None, metavar="USD")
    p.add_argument("--clear", action="store_true")
