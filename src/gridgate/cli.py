"""The ``gridgate`` command: parses, calls one operation, prints (``--json`` for scripts)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Statement
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.catalog.edits import OfferFields
from gridgate.core.clock import SystemClock
from gridgate.core.health.report import offer_status_json
from gridgate.core.limits.overrides import parse_value
from gridgate.core.times import parse_time
from gridgate.errors import GridgateError
from gridgate.services import Services, build_services
from gridgate.settings import Settings, SettingsError, load_settings, with_server
from gridgate.shapes import (
    account_json,
    entry_json,
    key_json,
    money,
    offer_json,
    token_json,
    usage_json,
    user_json,
)
from gridgate.shapes import iso as _iso
from gridgate.storage.limiter.port import LimitKind, LimitScope
from gridgate.storage.ports import AccountBalance, StorageError, VerifyReport
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


# -- store-backed commands ------------------------------------------------------------------------
Result = dict[str, Any] | list[Any]


async def _with_services(
    settings: Settings, action: Callable[[Services], Awaitable[Result]]
) -> Result:
    """Run ``action`` on the management services over the store, acting as ``CLI`` (an
    operator: whoever runs the CLI can read the database anyway); every change is audited."""
    from gridgate.state import open_store

    store = await open_store(settings)
    try:
        snapshot = Catalog.build(*await store.load_catalog())
        return await action(
            build_services(store, SystemClock(), settings, catalog=lambda: snapshot)
        )
    finally:
        await store.close()


def _print(result: dict[str, Any] | list[Any], as_json: bool, human: Callable[[], str]) -> None:
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print(human())


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

    result = asyncio.run(_with_services(settings, action))
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

    _print(result, args.json, human)
    return 0


# -- people ----------------------------------------------------------------------------------------
PASSWORD_ENV = "GRIDGATE_PASSWORD"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    password = ""
    if args.action == "create":
        if args.operator and args.role is not None:
            print("gridgate: --role is for account users; an operator has none", file=sys.stderr)
            return 2
        if not _ENV_NAME.fullmatch(args.password_env):
            print(
                "gridgate: --password-env takes the NAME of an environment variable "
                "(letters, digits, underscores), not a password",
                file=sys.stderr,
            )
            return 2
        password = os.environ.get(args.password_env, "")
        if not password:
            print(
                f"gridgate: no password: set the environment variable {args.password_env} "
                "(passwords are never read from the command line)",
                file=sys.stderr,
            )
            return 2

    async def action(services: Services) -> Result:
        users = services.users
        if args.action == "create":
            user = await users.create(
                CLI,
                email=args.email,
                name=args.name,
                role="operator" if args.operator else args.role or "member",
                account_id=None if args.operator else args.account,
                password=password,
            )
            return user_json(user)
        if args.action == "token":
            owner = await services.people.get_user_by_email(args.email)
            new = await services.tokens.create(
                CLI, args.name, expires_at=args.expires_at, user_id=owner.id
            )
            return token_json(new.record, SystemClock().now_us(), new.secret)
        if args.action in ("disable", "enable"):
            owner = await services.people.get_user_by_email(args.email)
            return user_json(await users.set_disabled(CLI, owner.id, args.action == "disable"))
        return [user_json(u) for u in await users.list(CLI, args.account)]

    result = asyncio.run(_with_services(settings, action))

    def line(u: dict[str, Any]) -> str:
        state = "" if u["is_active"] else "  (disabled)"
        return f"{u['id']}  {u['role']:<8}  {u['account_id'] or '-'}  {u['email']}{state}"

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(line(u) for u in result)
        if "token" in result:
            return (
                f"{result['id']}  {result['name']}\n{result['token']}\n"
                "This secret is shown once; store it now."
            )
        return f"{'created' if args.action == 'create' else args.action + 'd'} {line(result)}"

    _print(result, args.json, human)
    return 0


# -- limits and operator switches ------------------------------------------------------------------
LIMIT_OPTIONS: tuple[tuple[str, LimitKind], ...] = (
    ("rpm", "requests"),
    ("tpm", "tokens"),
    ("concurrent", "concurrent"),
)


def _add_limit_options(parser: argparse.ArgumentParser, scope: str) -> None:
    what = {"key": "key", "account": "account", "instrument": "instrument"}[scope]
    parser.add_argument(
        "subject", metavar=f"{what.upper()}_ID", help=f"the {what}, or '*' for every {what}"
    )
    for option, kind in LIMIT_OPTIONS:
        unit = {
            "requests": "requests per minute",
            "tokens": "tokens per minute (input + output)",
            "concurrent": "requests in flight at once",
        }[kind]
        parser.add_argument(
            f"--{option}",
            default=None,
            metavar="N",
            help=f"{unit}: a whole number, 'unlimited' or 'default' (drop the override)",
        )


def run_limits(args: argparse.Namespace, settings: Settings, scope: LimitScope) -> int:
    """``keys|accounts|instruments limits ID [--rpm N] [--tpm N] [--concurrent N]``: set the
    given limits (none given: show them)."""
    changes = {
        kind: parse_value(getattr(args, option), param=f"--{option}")
        for option, kind in LIMIT_OPTIONS
        if getattr(args, option) is not None
    }

    async def action(services: Services) -> Result:
        if changes:
            return await services.limits.set(CLI, scope, args.subject, changes)
        return await services.limits.show(CLI, scope, args.subject)

    result = asyncio.run(_with_services(settings, action))
    assert isinstance(result, dict)

    def human() -> str:
        effective = result["effective"]
        parts = [
            f"{name.replace('_', ' ')}: {'no limit' if value is None else value}"
            for name, value in effective.items()
        ]
        return f"{scope} {result['subject']}: " + ", ".join(parts)

    _print(result, args.json, human)
    return 0


def cmd_instruments(args: argparse.Namespace, settings: Settings) -> int:
    return run_limits(args, settings, "instrument")


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "limits":
        return run_limits(args, settings, "key")
    now = SystemClock().now_us()

    async def action(services: Services) -> Result:
        keys = services.api_keys
        if args.action == "create":
            new = await keys.create(CLI, args.account, args.name, expires_at=args.expires_at)
            return key_json(new.record, now, new.secret)
        if args.action == "revoke":
            return key_json(await keys.revoke(CLI, args.key_id), SystemClock().now_us())
        return [key_json(k, now) for k in await keys.list(CLI, args.account)]

    result = asyncio.run(_with_services(settings, action))

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

    _print(result, args.json, human)
    return 0


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    async def action(services: Services) -> Result:
        return verify_json(await services.accounts.verify_ledger(CLI))

    result = asyncio.run(_with_services(settings, action))
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

    _print(result, args.json, human)
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


OFFERS_STATUS_HELP = (
    "each offer's measured figures against its instrument's spec (TTFT ceiling, throughput "
    "floor): deliveries, error rate, p50/p90 TTFT of streamed answers, p50 throughput of answers "
    "of at least health.min_throughput_tokens tokens, the in-spec fraction, and a verdict. "
    "Read from the usage records, which every gateway process writes to the one database: the "
    "figures are those of all processes together (each process's own health book, which "
    "decides its routing, sees only its own deliveries)"
)


def cmd_offers(args: argparse.Namespace, settings: Settings) -> int:
    if args.action in ("disable", "enable", "update", "list"):
        return _edit_offers(args, settings)
    window_s: float = (
        settings.health.max_age_seconds if args.window_seconds is None else args.window_seconds
    )
    if not (window_s > 0 and math.isfinite(window_s)):
        print("gridgate: --window-seconds must be a positive, finite number", file=sys.stderr)
        return 2

    async def action(services: Services) -> Result:
        report = await services.offer_board.status(CLI, window_seconds=window_s)
        return [offer_status_json(status) for status in report]

    result = asyncio.run(_with_services(settings, action))
    assert isinstance(result, list)
    _print(result, args.json, lambda: offers_status_table(result, window_s))
    return 0


_OFFER_OPTIONS = ("input_usd_per_m", "output_usd_per_m", "quality", "context", "max_output")


def _edit_offers(args: argparse.Namespace, settings: Settings) -> int:
    """``offers list``, ``offers update ID [--input-usd-per-m …]``, ``offers disable|enable``:
    effective in every gateway process within a second, kept across restarts."""

    async def action(services: Services) -> Result:
        editor = services.catalog_editor
        if args.action == "list":
            return [offer_json(o) for o in await editor.offers(CLI)]
        if args.action == "update":
            given = {k: getattr(args, k) for k in _OFFER_OPTIONS if getattr(args, k) is not None}
            fields = msgspec.convert(given, OfferFields)
            return offer_json(await editor.save_offer(CLI, fields, offer_id=args.offer_id))
        offer = await editor.set_offer_enabled(CLI, args.offer_id, args.action == "enable")
        return {"offer_id": offer.id, "disabled_at": _iso(offer.disabled_us)}

    result = asyncio.run(_with_services(settings, action))

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(
                f"{o['id']}  in {o['input_usd_per_m']} out {o['output_usd_per_m']} USD/1M"
                f"  {'enabled' if o['enabled'] else 'disabled'}"
                for o in result
            )
        if "disabled_at" in result:
            when = result["disabled_at"]
            return f"{result['offer_id']}: " + (f"disabled since {when}" if when else "enabled")
        return (
            f"{result['id']}: in {result['input_usd_per_m']} out {result['output_usd_per_m']} "
            f"USD/1M, quality {result['quality']:g}, context {result['context']}, "
            f"max output {result['max_output']}"
        )

    _print(result, args.json, human)
    return 0


def offers_status_table(statuses: list[dict[str, Any]], window_s: float) -> str:
    """``offers status`` for people: one row per offer, the spec in brackets beside each
    figure it limits."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    header = ("offer", "deliveries", "errors", "ttft p50/p90 ms", "tok/s p50", "in spec", "verdict")
    rows: list[tuple[str, ...]] = []
    for s in statuses:
        spec = s["spec"] or {}
        ceiling, floor = spec.get("ttft_ceiling_ms"), spec.get("throughput_floor_tps")
        ttft = f"{ms(s['ttft_p50_ms'])}/{ms(s['ttft_p90_ms'])}"
        if ceiling is not None:
            ttft += f" (≤{ceiling})"
        tps = "-" if s["throughput_p50_tps"] is None else f"{s['throughput_p50_tps']:.1f}"
        if floor is not None:
            tps += f" (≥{floor:g})"
        offer = s["offer_id"] + ("" if s["enabled"] else " (disabled)")
        errors = share(s["error_rate"]) if s["deliveries"] else "-"
        rows.append(
            (
                offer,
                str(s["deliveries"]),
                errors,
                ttft,
                tps,
                share(s["in_spec_fraction"]),
                s["verdict"],
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = [
        f"offer status over the last {window_s:g} s, from the usage records of every gateway "
        "process"
    ]
    for r in (header, *rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, r[-1]]))
    if not rows:
        lines.append("(no offers in the catalog)")
    return "\n".join(lines)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.state import open_store

    async def run() -> None:
        store = await open_store(settings)
        await store.close()

    asyncio.run(run())
    _print(
        {"migrated": True, "database": _safe_url(settings.database_url)},
        args.json,
        lambda: f"database ready: {_safe_url(settings.database_url)}",
    )
    return 0


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.server import serve

    server = settings.server
    overrides = {
        "workers": args.workers if args.workers is not None else server.workers,
        "host": args.host if args.host is not None else server.host,
        "port": args.port if args.port is not None else server.port,
    }
    if overrides != {"workers": server.workers, "host": server.host, "port": server.port}:
        settings = with_server(settings, **overrides)
    return serve(settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.demo import run_demo

    return run_demo(settings, port=args.port, as_json=args.json)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.simulator import command

    return command.run(args)


# -- parsing -------------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        default=default,
        metavar="PATH",
        help="TOML config file (default: $GRIDGATE_CONFIG, else embedded defaults)",
    )
    parser.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="where the embedded SQLite database lives (default: $GRIDGATE_DATA_DIR or .gridgate)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print machine-readable JSON",
    )


class _Actions:
    """The actions of a command; each takes the common options too (``keys list --json``)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help, description=help)
        _common(parser, suppress=True)
        return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridgate", description=__doc__)
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, func: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, suppress=True)
        p.set_defaults(func=func)
        return p

    serve = add(
        "serve", "run the gateway (host, port and workers: these options, else [server])", cmd_serve
    )
    serve.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes sharing the port"
    )
    serve.add_argument("--host", default=None, help="address to bind")
    serve.add_argument("--port", type=int, default=None, help="port to bind")
    demo = add(
        "demo", "run a demo: gateway on SQLite + simulated suppliers + a funded key", cmd_demo
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    add("migrate", "create or upgrade the database and seed the catalog", cmd_migrate)

    from gridgate.simulator import command as simulator_command

    simulate = add("simulate", "run a simulated supplier (OpenAI wire format)", cmd_simulate)
    simulator_command.add_arguments(simulate)

    accounts = add("accounts", "manage accounts", cmd_accounts)
    acc = _Actions(accounts)
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
    _add_limit_options(p, "account")

    ledger = add("ledger", "check the ledger", cmd_ledger)
    _Actions(ledger).add_parser(
        "verify",
        help="check that every balance equals the sum of its entries and is not negative, and "
        "that every closed hold charged what its usage records cost",
    )

    offers = add("offers", "supplier offers", cmd_offers)
    offer_actions = _Actions(offers)
    p = offer_actions.add_parser(
        "status", help="each offer's measured figures against its instrument's spec"
    )
    p.description = OFFERS_STATUS_HELP
    p.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        metavar="S",
        help="the usage records of the last S seconds, at most health.window_size per offer "
        "(default: health.max_age_seconds, 300)",
    )
    for action, effect in (
        ("disable", "stops serving at once in every gateway process; config seeding keeps it"),
        ("enable", "serves again (if its config entry is enabled)"),
    ):
        p = offer_actions.add_parser(action, help=f"{action} an offer: it {effect}")
        p.add_argument("offer_id")
    offer_actions.add_parser("list", help="every offer with its prices and state")
    p = offer_actions.add_parser(
        "update",
        help="edit an offer's prices and declarations: effective in every gateway process "
        "within a second, and kept over the config's on restart",
    )
    p.add_argument("offer_id")
    p.add_argument("--input-usd-per-m", default=None, metavar="USD", help="e.g. 0.15")
    p.add_argument("--output-usd-per-m", default=None, metavar="USD", help="e.g. 0.60")
    p.add_argument("--quality", type=float, default=None, help="declared quality score, 0-100")
    p.add_argument("--context", type=int, default=None, help="context window, tokens")
    p.add_argument("--max-output", type=int, default=None, help="max output tokens")

    keys = add("keys", "manage API keys", cmd_keys)
    ks = _Actions(keys)
    p = ks.add_parser("create", help="create a key (the secret is shown once)")
    p.add_argument("--account", required=True)
    p.add_argument("--name", required=True)
    p.add_argument(
        "--expires-at",
        default=None,
        metavar="ISO",
        help="ISO 8601 time after which the key stops working",
    )
    p = ks.add_parser("list", help="list keys")
    p.add_argument("--account", default=None)
    p = ks.add_parser("revoke", help="revoke a key (effective on the next request)")
    p.add_argument("key_id")
    p = ks.add_parser("limits", help="show or set a key's rate limits")
    _add_limit_options(p, "key")

    users = add("users", "people who sign in to the dashboard and the management API", cmd_users)
    us = _Actions(users)
    p = us.add_parser(
        "create",
        help=f"create a user; the password is read from ${PASSWORD_ENV} (see --password-env)",
    )
    p.allow_abbrev = False  # `--password SECRET` must fail, not be taken for --password-env
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--operator", action="store_true", help="an operator of the exchange (no account)"
    )
    who.add_argument("--account", default=None, metavar="ACCOUNT_ID", help="the user's account")
    p.add_argument(
        "--role",
        choices=("owner", "member"),
        default=None,
        help="the user's role in --account (default member)",
    )
    p.add_argument(
        "--password-env",
        default=PASSWORD_ENV,
        metavar="VAR",
        help=f"the environment variable holding the password (default {PASSWORD_ENV})",
    )
    p = us.add_parser("list", help="list users (never their password hashes)")
    p.add_argument("--account", default=None, metavar="ACCOUNT_ID")
    for action, effect in (
        ("disable", "ends their sessions and stops their tokens at once"),
        ("enable", "lets them sign in again"),
    ):
        p = us.add_parser(action, help=f"{action} a user: {effect}")
        p.add_argument("--email", required=True)
    p = us.add_parser(
        "token", help="mint a management token for a user's scripts (the secret is shown once)"
    )
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True, help="what the token is for")
    p.add_argument("--expires-at", default=None, metavar="ISO")

    instruments = add("instruments", "instruments of the exchange", cmd_instruments)
    p = _Actions(instruments).add_parser(
        "limits", help="show or set an instrument's rate limits (across every key)"
    )
    _add_limit_options(p, "instrument")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        code: int = args.func(args, settings)
    except SettingsError as exc:
        print(f"gridgate: config error: {exc}", file=sys.stderr)
        return 2
    except GridgateError as exc:
        print(f"gridgate: {exc.message}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"gridgate: storage error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
