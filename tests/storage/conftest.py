"""One contract suite, two databases.

SQLite: a fresh file under ``tmp_path`` per test. PostgreSQL: a fresh database per test on
``$GRIDGATE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, used only as the
maintenance connection), dropped after the test. Database names carry a host tag and the pid of
the pytest process, so concurrent runs never touch each other's databases, and a later run drops
what a killed run left behind (same host, pid no longer alive).

An unreachable PostgreSQL skips its half of the suite loudly — or fails it when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gridgate.storage.runner import driver_url
from gridgate.storage.sql import SqlStore

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


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The maintenance URL, once PostgreSQL is known to answer (else skip, or fail on CI)."""
    try:
        _run_isolated(lambda: _drop_stale_databases(_dsn(PG_ADMIN_URL)))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = (
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__}: {exc}); "
            "the PostgreSQL half of the storage contract suite did NOT run"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_admin_url")
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database of each kind."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'gridgate.db'}"
        return
    admin = PG_ADMIN_URL
    name = f"{_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_dsn(admin), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield _with_database(admin, name)
    finally:
        conn = await asyncpg.connect(_dsn(admin), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    async with SqlStore(db_url) as opened:
        yield opened


async def run_sql(url: str, fn: Callable[[Connection], T]) -> T:
    """Run ``fn`` in one transaction behind the store's back (to tamper, or to inspect)."""
    driver, dialect = driver_url(url)
    if dialect == "sqlite":
        engine = create_engine(driver)
        try:
            with engine.begin() as conn:
                return fn(conn)
        finally:
            engine.dispose()
    async_engine = create_async_engine(driver)
    try:
        async with async_engine.begin() as aconn:
            return await aconn.run_sync(fn)
    finally:
        await async_engine.dispose()


async def raw_sql(url: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    def run(conn: Connection) -> list[Any]:
        result = conn.execute(text(sql), params or {})
        return list(result.all()) if result.returns_rows else []

    return await run_sql(url, run)
