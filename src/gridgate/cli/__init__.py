"""The ``gridgate`` command: parses, calls one operation, prints (``--json`` for scripts)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gridgate.cli import accounts, caps, keys, ledger, limits, offers, serve, users, webhooks
from gridgate.cli.common import Commands, common_options
from gridgate.errors import GridgateError
from gridgate.settings import SettingsError, load_settings
from gridgate.storage.ports.errors import StorageError


def build_parser() -> argparse.ArgumentParser:
    """Every command, in the order ``gridgate --help`` lists them; each group declares its own."""
    parser = argparse.ArgumentParser(prog="gridgate", description=__doc__)
    common_options(parser, suppress=False)
    commands = Commands(parser)
    serve.add_parsers(commands)  # serve, demo, migrate, simulate
    accounts.add_parser(commands)
    ledger.add_parser(commands)
    offers.add_parser(commands)
    keys.add_parser(commands)
    caps.add_parser(commands)
    users.add_parser(commands)
    limits.add_parser(commands)  # instruments
    webhooks.add_parser(commands)
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
