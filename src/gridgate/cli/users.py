"""``users``: people who sign in to the dashboard and the management API (create, list, disable,
enable) and their management tokens."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from typing import Any

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.core.clock import SystemClock
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import token_json, user_json

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

    result = asyncio.run(with_services(settings, action))

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

    print_result(result, args.json, human)
    return 0


def add_parser(commands: Commands) -> None:
    users = commands.add(
        "users", "people who sign in to the dashboard and the management API", cmd_users
    )
    us = Actions(users)
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
