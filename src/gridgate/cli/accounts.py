"""``accounts``: create, credit, adjust, show and list accounts, an account's statement (JSON or
CSV) and its rate limits."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from typing import Any

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.cli.limits import add_limit_options, run_limits
from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Statement
from gridgate.core.clock import SystemClock
from gridgate.core.times import parse_time
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import account_json, entry_json, key_json, money, usage_json
from gridgate.shapes import iso as _iso
from gridgate.storage.ports.ledger import AccountBalance
from gridgate.storage.records import AccountRecord, UsageRecord

_LEASE_KINDS = frozenset({"hold", "settle", "release", "refund"})

STATEMENT_NOTES = (
    "Balances are the ledger's: closing = opening + the sum of the entries in the window "
    "[from, to). Per-request charges are the usage records; with balance leases, a lease's hold "
    "entry reserves money and its settle entry gives back what its requests did not cost, so the "
    "lease entries net to the sum of its requests' costs once it is closed. A lease still open at "
    "'to' (or closed after it) shows its whole hold in lease_net, and usage_cost need not equal "
    "-lease_net for a window that cuts through a lease."
)


def statement_json(statement: Statement, balance: AccountBalance) -> dict[str, Any]:
    def total(kinds: frozenset[str]) -> int:
        return sum(e.amount for e in statement.entries if e.kind in kinds)

    net = sum(e.amount for e in statement.entries)
    billed = [u for u in statement.usage if u.billed]
    return {
        "account": account_json(statement.account, balance),
        "from": _iso(statement.since_us),
        "to": _iso(statement.until_us),
        "totals": {
            **money("opening_balance", statement.opening),
            **money("closing_balance", statement.closing),
            **money("net", net),
            **money("credits", total(frozenset({"credit"}))),
            **money("adjustments", total(frozenset({"adjustment"}))),
            **money("lease_net", total(_LEASE_KINDS)),
            **money("usage_cost", sum(u.cost for u in billed)),
            "entries": len(statement.entries),
            "requests": len(statement.usage),
            "billed_requests": len(billed),
        },
        "entries": [entry_json(e) for e in statement.entries],
        "usage": [usage_json(u) for u in statement.usage],
        "notes": STATEMENT_NOTES,
    }


_ENTRY_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "amount_usd",
    "amount_nanos",
    "hold_id",
    "idempotency_key",
    "memo",
)
_USAGE_COLUMNS = tuple(
    usage_json(
        UsageRecord(
            request_id="",
            created_us=0,
            account_id="",
            key_id="",
            instrument="",
            supplier=None,
            offer_id=None,
            upstream_model=None,
            stream=False,
        )
    )
)


def statement_csv(document: dict[str, Any]) -> str:
    """Two sections, each with its header row: the entries, a blank line, the usage records."""

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_ENTRY_COLUMNS)
    writer.writerows([cell(e[c]) for c in _ENTRY_COLUMNS] for e in document["entries"])
    writer.writerow([])
    writer.writerow(_USAGE_COLUMNS)
    writer.writerows([cell(u[c]) for c in _USAGE_COLUMNS] for u in document["usage"])
    return out.getvalue()


def cmd_accounts(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "limits":
        return run_limits(args, settings, "account")
    now = SystemClock().now_us()
    if args.action == "statement" and args.format == "csv" and args.json:
        print("gridgate: --json and --format csv contradict each other", file=sys.stderr)
        return 2

    async def action(services: Services) -> Result:
        accounts = services.accounts

        async def described(account: AccountRecord) -> dict[str, Any]:
            return account_json(account, await accounts.balance(CLI, account.id))

        if args.action == "create":
            return await described(await accounts.create(CLI, args.name))
        if args.action == "credit":
            entry, account = await accounts.credit(
                CLI, args.account, args.usd, idempotency_key=args.idempotency_key, memo=args.memo
            )
            return {"entry": entry_json(entry), "account": await described(account)}
        if args.action == "adjust":
            entry, account = await accounts.adjust(
                CLI, args.account, args.usd, idempotency_key=args.idempotency_key, memo=args.memo
            )
            return {"entry": entry_json(entry), "account": await described(account)}
        if args.action == "statement":
            statement = await accounts.statement(
                CLI,
                args.account,
                since_us=None if args.since is None else parse_time(args.since, param="from"),
                until_us=None if args.until is None else parse_time(args.until, param="to"),
            )
            return statement_json(statement, await accounts.balance(CLI, args.account))
        if args.action == "show":
            account = await accounts.get(CLI, args.account)
            keys = await services.api_keys.list(CLI, account.id)
            return {**await described(account), "keys": [key_json(k, now) for k in keys]}
        return [await described(a) for a in await accounts.list(CLI)]

    result = asyncio.run(with_services(settings, action))
    if args.action == "statement":
        if args.format == "csv":
            assert isinstance(result, dict)
            sys.stdout.write(statement_csv(result))
        else:
            print(json.dumps(result, separators=(",", ":")))
        return 0

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(f"{a['id']}  {a['balance_usd']:>14} USD  {a['name']}" for a in result)
        account = result.get("account", result)
        line = f"{account['id']}  balance {account['balance_usd']} USD  ({account['name']})"
        if "keys" in result:
            line += "".join(
                f"\n  {k['id']}  {k['key_prefix']}…  {'active' if k['is_active'] else 'inactive'}"
                f"  {k['name']}"
                for k in result["keys"]
            )
        return line

    print_result(result, args.json, human)
    return 0


def add_parser(commands: Commands) -> None:
    accounts = commands.add("accounts", "manage accounts", cmd_accounts)
    acc = Actions(accounts)
    p = acc.add_parser("create", help="create an account")
    p.add_argument("--name", required=True)
    p = acc.add_parser("credit", help="add prepaid credit (USD, decimal)")
    p.add_argument("account")
    p.add_argument("usd")
    p.add_argument(
        "--idempotency-key",
        default=None,
        help="recommended: a retried credit with the same key is applied once",
    )
    p.add_argument("--memo", default=None, help="why (kept on the ledger entry)")
    p = acc.add_parser(
        "adjust", help="adjust a balance (USD, decimal, may be negative; never below zero)"
    )
    p.add_argument("account")
    p.add_argument("usd", help="e.g. 2.5 or -1.5")
    p.add_argument(
        "--idempotency-key",
        required=True,
        help="required: a retried adjustment with the same key is applied once",
    )
    p.add_argument("--memo", default=None, help="why (kept on the ledger entry)")
    p = acc.add_parser(
        "statement", help="an account's ledger entries and usage records, with reconciled totals"
    )
    p.add_argument("account")
    p.add_argument(
        "--from",
        dest="since",
        default=None,
        metavar="ISO",
        help="ISO 8601 date or time, inclusive; a date is midnight UTC "
        "(default: the account's creation)",
    )
    p.add_argument(
        "--to",
        dest="until",
        default=None,
        metavar="ISO",
        help="ISO 8601 date or time, exclusive (default: now)",
    )
    p.add_argument(
        "--format", choices=("json", "csv"), default="json", help="output format (default json)"
    )
    p = acc.add_parser("show", help="an account's balance and keys")
    p.add_argument("account")
    acc.add_parser("list", help="all accounts")
    p = acc.add_parser("limits", help="show or set an account's rate limits (all its keys)")
    add_limit_options(p, "account")
