"""``keys|accounts|instruments limits``: show or set rate-limit overrides; and the
``instruments`` command, which has only that action."""

from __future__ import annotations

import argparse
import asyncio

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.core.limits.overrides import parse_value
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.storage.limiter.port import LimitKind, LimitScope

LIMIT_OPTIONS: tuple[tuple[str, LimitKind], ...] = (
    ("rpm", "requests"),
    ("tpm", "tokens"),
    ("concurrent", "concurrent"),
)


def add_limit_options(parser: argparse.ArgumentParser, scope: str) -> None:
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

    result = asyncio.run(with_services(settings, action))
    assert isinstance(result, dict)

    def human() -> str:
        effective = result["effective"]
        parts = [
            f"{name.replace('_', ' ')}: {'no limit' if value is None else value}"
            for name, value in effective.items()
        ]
        return f"{scope} {result['subject']}: " + ", ".join(parts)

    print_result(result, args.json, human)
    return 0


def cmd_instruments(args: argparse.Namespace, settings: Settings) -> int:
    return run_limits(args, settings, "instrument")


def add_parser(commands: Commands) -> None:
    instruments = commands.add("instruments", "instruments of the exchange", cmd_instruments)
    p = Actions(instruments).add_parser(
        "limits", help="show or set an instrument's rate limits (across every key)"
    )
    add_limit_options(p, "instrument")
