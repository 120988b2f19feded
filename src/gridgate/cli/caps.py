"""``caps``: hard spend caps on an account or an API key (list, set, remove)."""

from __future__ import annotations

import argparse
import asyncio

import msgspec

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.core.billing.cap_windows import PERIODS
from gridgate.core.billing.spend_caps import parse_limit, parse_period
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import SpendCapView
from gridgate.storage.records import CapScope


def _shown(view: SpendCapView) -> Result:
    shown: Result = msgspec.to_builtins(view)
    return shown


def cmd_caps(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "set":
        period = parse_period(args.period, param="--period")
        limit = parse_limit(args.usd, param="--usd")

    async def action(services: Services) -> Result:
        caps = services.spend_caps
        if args.action == "set":
            scope: CapScope = "key" if args.key else "account"
            use = await caps.set(
                CLI, scope=scope, subject=args.key or args.account, period=period, limit=limit
            )
            return _shown(SpendCapView.of(use))
        if args.action == "remove":
            removed = await caps.remove(CLI, args.cap_id)
            return {"id": removed.id, "removed": True}
        return [_shown(SpendCapView.of(use)) for use in await caps.of_account(CLI, args.account)]

    result = asyncio.run(with_services(settings, action))

    def line(cap: dict[str, object]) -> str:
        resets = cap["resets_at"] or "never"
        return (
            f"{cap['id']}  {cap['scope']} {cap['subject']}  {cap['period']}"
            f"  ${cap['spent_usd']} of ${cap['limit_usd']} (resets {resets})"
        )

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(line(c) for c in result) or "no spend caps"
        if result.get("removed"):
            return f"{result['id']} removed"
        return line(result)

    print_result(result, args.json, human)
    return 0


def add_parser(commands: Commands) -> None:
    caps = commands.add("caps", "hard spend caps on an account or an API key", cmd_caps)
    cs = Actions(caps)
    p = cs.add_parser("list", help="an account's caps and its keys', with what each has spent")
    p.add_argument("account", metavar="ACCOUNT_ID")
    p = cs.add_parser(
        "set",
        help="cap what an account or a key may spend per UTC day, week, month or ever "
        "(setting it again changes the limit)",
    )
    whose = p.add_mutually_exclusive_group(required=True)
    whose.add_argument("--account", metavar="ACCOUNT_ID")
    whose.add_argument("--key", metavar="KEY_ID")
    p.add_argument("--period", required=True, choices=PERIODS)
    p.add_argument("--usd", required=True, metavar="USD", help="the limit, e.g. 25 or 0.50")
    p = cs.add_parser("remove", help="remove a cap")
    p.add_argument("cap_id", metavar="CAP_ID")
