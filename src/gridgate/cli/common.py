"""What every command shares: the common options, the subcommand tables, running one
operation over the management services, and printing its result (JSON or for people)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.clock import SystemClock
from gridgate.services import Services, build_services
from gridgate.settings import Settings

Result = dict[str, Any] | list[Any]
Command = Callable[[argparse.Namespace, Settings], int]


def common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
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


class Commands:
    """The top-level commands; each takes the common options too (``--json`` after it) and
    runs its ``func`` with the parsed arguments and the loaded settings."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(self, name: str, help_text: str, func: Command) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help_text, description=help_text)
        common_options(parser, suppress=True)
        parser.set_defaults(func=func)
        return parser


class Actions:
    """The actions of a command; each takes the common options too (``keys list --json``)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help, description=help)
        common_options(parser, suppress=True)
        return parser


async def with_services(
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


def print_result(result: Result, as_json: bool, human: Callable[[], str]) -> None:
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print(human())
