"""``keys``: create, list and revoke API keys, and a key's rate limits."""

from __future__ import annotations

import argparse
import asyncio

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.cli.limits import add_limit_options, run_limits
from gridgate.core.access import CLI
from gridgate.core.clock import SystemClock
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import key_json


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "limits":
        return run_limits(args, settings, "key")
    now = SystemClock().now_us()

    async def action(services: Services) -> Result:
        keys = services.api_keys
        if args.action == "create":
            new = await keys.create(
                CLI,
                args.account,
                args.name,
                expires_at=args.expires_at,
                own_usage_only=args.own_usage_only,
            )
            return key_json(new.record, now, new.secret)
        if args.action == "revoke":
            return key_json(await keys.revoke(CLI, args.key_id), SystemClock().now_us())
        return [key_json(k, now) for k in await keys.list(CLI, args.account)]

    result = asyncio.run(with_services(settings, action))

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(
                f"{k['id']}  {k['key_prefix']}…  {'active  ' if k['is_active'] else 'inactive'}"
                f"  {k['account_id']}  {k['name']}"
                for k in result
            )
        if "key" in result:
            return (
                f"{result['id']}  {result['name']}\n{result['key']}\n"
                "This secret is shown once; store it now."
            )
        return f"{result['id']} revoked at {result['revoked_at']}"

    print_result(result, args.json, human)
    return 0


def add_parser(commands: Commands) -> None:
    keys = commands.add("keys", "manage API keys", cmd_keys)
    ks = Actions(keys)
    p = ks.add_parser("create", help="create a key (the secret is shown once)")
    p.add_argument("--account", required=True)
    p.add_argument("--name", required=True)
    p.add_argument(
        "--expires-at",
        default=None,
        metavar="ISO",
        help="ISO 8601 time after which the key stops working",
    )
    p.add_argument(
        "--own-usage-only",
        action="store_true",
        help="the key reads its own usage receipts only (GET /v1/usage), not its account's",
    )
    p = ks.add_parser("list", help="list keys")
    p.add_argument("--account", default=None)
    p = ks.add_parser("revoke", help="revoke a key (effective on the next request)")
    p.add_argument("key_id")
    p = ks.add_parser("limits", help="show or set a key's rate limits")
    add_limit_options(p, "key")
