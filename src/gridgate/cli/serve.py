"""Running things: ``serve`` the gateway, a ``demo``, ``migrate`` the database, ``simulate`` a
supplier."""

from __future__ import annotations

import argparse
import asyncio

from gridgate.cli.common import Commands, print_result
from gridgate.settings import Settings, with_server


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


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.state import open_store

    async def run() -> None:
        store = await open_store(settings)
        await store.close()

    asyncio.run(run())
    print_result(
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


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from gridgate.simulator import command

    return command.run(args)


def add_parsers(commands: Commands) -> None:
    serve = commands.add(
        "serve", "run the gateway (host, port and workers: these options, else [server])", cmd_serve
    )
    serve.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes sharing the port"
    )
    serve.add_argument("--host", default=None, help="address to bind")
    serve.add_argument("--port", type=int, default=None, help="port to bind")
    demo = commands.add(
        "demo", "run a demo: gateway on SQLite + simulated suppliers + a funded key", cmd_demo
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    commands.add("migrate", "create or upgrade the database and seed the catalog", cmd_migrate)

    from gridgate.simulator import command as simulator_command

    simulate = commands.add(
        "simulate",
        "run a simulated supplier (chat completions, Responses and Messages wires)",
        cmd_simulate,
    )
    simulator_command.add_arguments(simulate)
