"""``ledger verify``: every balance equals the sum of its entries and is not negative, and every
closed hold charged what its usage records cost (exit 1 naming the accounts if not)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import money
from gridgate.storage.ports.ledger import VerifyReport


def verify_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "accounts_checked": report.accounts_checked,
        "mismatches": [
            {
                "account_id": account_id,
                **money("balance", column),
                **money("sum_of_entries", total),
                **money("difference", column - total),
            }
            for account_id, column, total in report.mismatches
        ],
        "negative_balances": list(report.negative),
        "holds_checked": report.holds_checked,
        "hold_mismatches": [
            {
                "hold_id": m.hold_id,
                "account_id": m.account_id,
                **money("charged", m.charged),
                **money("recorded", m.recorded),
                **money("difference", m.charged - m.recorded),
            }
            for m in report.holds
        ],
    }


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    async def action(services: Services) -> Result:
        return verify_json(await services.accounts.verify_ledger(CLI))

    result = asyncio.run(with_services(settings, action))
    assert isinstance(result, dict)

    def human() -> str:
        lines = [
            f"ledger {'ok' if result['ok'] else 'NOT OK'}: "
            f"{result['accounts_checked']} accounts checked, "
            f"{len(result['mismatches'])} mismatches, "
            f"{len(result['negative_balances'])} negative balances; "
            f"{result['holds_checked']} closed holds checked against their usage records, "
            f"{len(result['hold_mismatches'])} mismatches"
        ]
        lines += [
            f"  mismatch {m['account_id']}: balance {m['balance_usd']} USD, "
            f"sum of entries {m['sum_of_entries_usd']} USD (off by {m['difference_usd']})"
            for m in result["mismatches"]
        ]
        lines += [f"  negative balance {a}" for a in result["negative_balances"]]
        lines += [
            f"  hold {m['hold_id']} of {m['account_id']}: charged {m['charged_usd']} USD, "
            f"usage records {m['recorded_usd']} USD (off by {m['difference_usd']})"
            for m in result["hold_mismatches"]
        ]
        return "\n".join(lines)

    print_result(result, args.json, human)
    if result["ok"]:
        return 0
    named = sorted(
        {m["account_id"] for m in result["mismatches"]}
        | set(result["negative_balances"])
        | {m["account_id"] for m in result["hold_mismatches"]}
    )
    print(
        f"gridgate: ledger verification failed for {', '.join(named)}: a balance does not equal "
        "the sum of its entries, is below zero, or a hold charged other than its usage records",
        file=sys.stderr,
    )
    return 1


def add_parser(commands: Commands) -> None:
    ledger = commands.add("ledger", "check the ledger", cmd_ledger)
    Actions(ledger).add_parser(
        "verify",
        help="check that every balance equals the sum of its entries and is not negative, and "
        "that every closed hold charged what its usage records cost",
    )
