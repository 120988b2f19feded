"""``gridgate simulate``: serve one simulated supplier until SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.server import start_simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=9100, help="port to bind (default 9100; 0 picks a free one)"
    )
    parser.add_argument(
        "--ttft-ms", type=float, default=0.0, help="time to first token, ms (default 0)"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=0.0,
        help="streaming pace after the first token (default 0: as fast as possible)",
    )
    parser.add_argument(
        "--default-max-tokens",
        type=int,
        default=64,
        help="length of a text answer when the request sets no max tokens (default 64)",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="serve only this model (repeatable; default: any model name)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require `Authorization: Bearer <key>` (or, on /v1/messages, `x-api-key: <key>`) "
        "with the key read from this env variable",
    )
    parser.add_argument(
        "--name", default="sim", help="supplier name (system_fingerprint, owned_by; default sim)"
    )


def options_from(args: argparse.Namespace) -> SimulatorOptions:
    """Options from parsed arguments; ``ValueError`` names what is wrong."""
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    return SimulatorOptions(
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        default_max_tokens=args.default_max_tokens,
        models=tuple(args.models) if args.models else None,
        api_key=api_key,
        name=args.name,
    )


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"gridgate simulate: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(options, args.host, args.port))
    except OSError as exc:
        print(
            f"gridgate simulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: the simulator must not be the benchmark's bottleneck."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return None
    return uvloop.new_event_loop


async def _serve(options: SimulatorOptions, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = await start_simulator(options, host, port)
    try:
        print(f"simulator listening on {sim.base_url}", flush=True)
        await stop.wait()
    finally:
        await sim.close()
