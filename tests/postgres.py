"""PostgreSQL for tests: throwaway databases on the server at ``$GRIDGATE_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, used only as the maintenance connection).

Database names carry a host tag and the pid of the pytest process, so concurrent runs never
touch each other's databases, and a later run drops what a killed run left behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("GRIDGATE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_DB_PREFIX = f"ggt_{_HOST_TAG}_"
_DB_NAME = re.compile(rf"^{_DB_PREFIX}(\d+)_[0-9a-f]+$")

T = TypeVar("T")


def _run_isolated(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in its own thread (session setup, outside the tests' loops)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dsn(url: str) -> str:
    """The asyncpg DSN for a ``postgresql://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _drop_stale_databases(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        names = [
            r["datname"]
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", _DB_PREFIX + "%"
            )
        ]
        for name in names:
            match = _DB_NAME.match(name)
            if match and not _pid_alive(int(match.group(1))):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def require_postgres() -> str:
    """The maintenance URL once PostgreSQL answers; otherwise skip loudly, or fail on CI."""
    try:
        _run_isolated(lambda: _drop_stale_databases(_dsn(PG_ADMIN_URL)))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = (
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__}: {exc}); "
            "the tests that need it did NOT run"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_ADMIN_URL


async def create_database() -> str:
    """A fresh, empty database; returns its URL."""
    name = f"{_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(PG_ADMIN_URL, name)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
