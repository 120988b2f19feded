"""Test harness: a background event loop, simulated suppliers, a real gateway process.

Everything binds to 127.0.0.1. Waits are bounded by deadlines; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.clock import SystemClock
from gridgate.money import usd_to_nanos
from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.server import RunningSimulator, start_simulator
from gridgate.storage.sql import SqlStore

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio loop in a thread, so sync tests (and the sync SDK) can use async servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _shutdown() -> None:
            await self.loop.shutdown_asyncgens()

        self.run(_shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def run_cli(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``gridgate ARGS --data-dir DIR`` as a separate process (``env`` added to this one's)."""
    return subprocess.run(
        [sys.executable, "-m", "gridgate", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env} if env is not None else None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Offer:
    supplier: str
    instrument: str
    model: str
    usd_in: str
    usd_out: str
    quality: float
    context: int
    max_output: int
    capabilities: tuple[str, ...] = ("tools", "json_schema", "logprobs")


def config_toml(
    *,
    data_dir: Path,
    port: int,
    suppliers: dict[str, str],
    offers: list[Offer],
    extra: str = "",
    key_envs: dict[str, str] | None = None,
    workers: int = 1,
    billing: str = "",
    wires: dict[str, str] | None = None,
    upstream: str = "",
    server: str = "",
) -> str:
    lines = [
        f'data_dir = "{data_dir}"',
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"workers = {workers}",
        server,
        "[billing]",
        "min_output_tokens = 16",
        billing,
        "[upstream]",
        # defaults for tests, unless ``upstream`` sets them
        *(
            f"{name} = {value}"
            for name, value in (
                ("first_byte_timeout_seconds", 10),
                ("idle_timeout_seconds", 10),
                ("total_timeout_seconds", 30),
            )
            if f"{name} =" not in upstream
        ),
        upstream,
    ]
    for name, url in suppliers.items():
        lines += ["[[suppliers]]", f'name = "{name}"', f'base_url = "{url}"']
        if wires and name in wires:
            lines.append(f'wire = "{wires[name]}"')
        if key_envs and name in key_envs:
            lines.append(f'api_key_env = "{key_envs[name]}"')
    for o in offers:
        caps = ", ".join(f'"{c}"' for c in o.capabilities)
        lines += [
            "[[offers]]",
            f'supplier = "{o.supplier}"',
            f'instrument = "{o.instrument}"',
            f'model = "{o.model}"',
            f'input_usd_per_m = "{o.usd_in}"',
            f'output_usd_per_m = "{o.usd_out}"',
            f"quality = {o.quality}",
            f"context = {o.context}",
            f"max_output = {o.max_output}",
            f"capabilities = [{caps}]",
        ]
    return "\n".join(lines) + "\n" + extra


@dataclass
class GatewayProcess:
    """A real ``gridgate serve`` process and a store handle on its database."""

    base_url: str
    config: Path
    data_dir: Path
    process: subprocess.Popen[bytes]
    bg: BackgroundLoop
    store: SqlStore
    log_path: Path
    store_url: str = ""
    offers: list[Offer] = field(default_factory=list)
    sims: dict[str, RunningSimulator] = field(default_factory=dict)
    wires: dict[str, str] = field(default_factory=dict)  # supplier → wire format, if not openai

    def wire(self, supplier: str) -> str:
        return self.wires.get(supplier, "openai")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.bg.run(coro)

    def new_account(self, credit_usd: str = "5", name: str = "test") -> tuple[str, str]:
        """A fresh account with ``credit_usd`` and a key; returns (account_id, secret)."""

        async def make() -> tuple[str, str]:
            accounts = Accounts(self.store, SystemClock())
            account = await accounts.create(CLI, name)
            if Decimal(credit_usd) > 0:
                await accounts.credit(CLI, account.id, credit_usd)
            key = await ApiKeys(self.store, SystemClock()).create(CLI, account.id, "k")
            return account.id, key.secret

        return self.run(make())

    def balance(self, account_id: str) -> int:
        """What the account has left after every charge recorded so far."""
        balance = self.run(self.store.account_balance(account_id))
        assert balance is not None
        return balance.effective

    def assert_balance(self, account_id: str, expected: int, timeout: float = 10.0) -> None:
        """The balance reaches ``expected`` once the request's usage record is written (the
        usage writer flushes every ~50 ms), and stays there."""
        deadline = time.monotonic() + timeout
        while (actual := self.balance(account_id)) != expected:
            assert time.monotonic() < deadline, f"balance {actual}, expected {expected}"
            time.sleep(0.02)

    def usage(self, account_id: str) -> list[Any]:
        return self.run(self.store.list_usage(account_id=account_id, limit=1000))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gridgate", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def start_gateway(
    tmp: Path,
    bg: BackgroundLoop,
    suppliers: dict[str, str],
    offers: list[Offer],
    extra_config: str = "",
    env: dict[str, str] | None = None,
    key_envs: dict[str, str] | None = None,
    workers: int = 1,
    database_url: str | None = None,
    billing: str = "",
    wires: dict[str, str] | None = None,
    upstream: str = "",
    server: str = "",
) -> GatewayProcess:
    """A real ``gridgate serve`` on SQLite in ``tmp`` (or on ``database_url``)."""
    port = free_port()
    data_dir = tmp / "data"
    config = tmp / "gridgate.toml"
    config.write_text(
        config_toml(
            data_dir=data_dir,
            port=port,
            suppliers=suppliers,
            offers=offers,
            extra=extra_config + (f'[database]\nurl = "{database_url}"\n' if database_url else ""),
            key_envs=key_envs,
            workers=workers,
            billing=billing,
            wires=wires,
            upstream=upstream,
            server=server,
        )
    )
    log_path = tmp / "gateway.log"
    process = _serve(config, log_path, env)
    store_url = database_url or f"sqlite:///{data_dir / 'gridgate.db'}"
    store = SqlStore(store_url)
    bg.run(store.open())
    return GatewayProcess(
        store_url=store_url,
        base_url=f"http://127.0.0.1:{port}/v1",
        config=config,
        data_dir=data_dir,
        process=process,
        bg=bg,
        store=store,
        log_path=log_path,
        offers=offers,
        wires=wires or {},
    )


@contextlib.contextmanager
def own_gateway(bg: BackgroundLoop, tmp: Path, offers: list[Offer]) -> Iterator[GatewayProcess]:
    """A ``gridgate serve`` of a test module's own (one that changes its catalog or accounts),
    over a simulator per supplier ``offers`` name; stopped cleanly at the end."""
    names = list(dict.fromkeys(o.supplier for o in offers))
    with simulators(bg, names) as sims:
        gw = start_gateway(tmp, bg, {n: s.base_url for n, s in sims.items()}, offers)
        gw.sims = sims
        try:
            yield gw
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def site(gw: GatewayProcess) -> str:
    """``http://127.0.0.1:PORT``: the gateway's root (the dashboard's, the API's base)."""
    return gw.base_url.removesuffix("/v1")


def _serve(config: Path, log_path: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """``gridgate serve --config CONFIG``, once it says it is serving (its stderr to the log)."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gridgate", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
    killer = threading.Timer(60, process.kill)
    killer.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
    finally:
        killer.cancel()
    if "serving on" not in line:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        raise RuntimeError(f"gateway did not start: {line!r}\n{log_path.read_text()}")
    return process


def restart_gateway(gw: GatewayProcess, env: dict[str, str] | None = None) -> None:
    """Stop ``gw`` and serve its config and data again, on the same port (in place)."""
    code = stop_gateway(gw)
    assert code == 0, gw.log_path.read_text()
    gw.process = _serve(gw.config, gw.log_path, env)
    gw.store = SqlStore(gw.store_url)
    gw.run(gw.store.open())


def stop_gateway(gw: GatewayProcess) -> int:
    gw.run(gw.store.close())
    gw.process.terminate()
    try:
        code = gw.process.wait(30)
    except subprocess.TimeoutExpired:
        gw.process.kill()
        code = gw.process.wait(10)
    if gw.process.stdout is not None:
        gw.process.stdout.close()
    return code


@contextlib.contextmanager
def simulators(
    bg: BackgroundLoop, names: list[str], **options: Any
) -> Iterator[dict[str, RunningSimulator]]:
    running: dict[str, RunningSimulator] = {}
    try:
        for name in names:
            running[name] = bg.run(
                start_simulator(SimulatorOptions(name=name, seed_salt=name, **options))
            )
        yield running
    finally:
        for sim in running.values():
            bg.run(sim.close())


def nanos(usd: str) -> int:
    return usd_to_nanos(usd)
