"""One contract suite, two databases.

SQLite: a fresh file under ``tmp_path`` per test. PostgreSQL: a fresh database per test on
``$GRIDGATE_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, used only as the
maintenance connection), dropped after the test. Database names carry a host tag and the pid of
the pytest process, so concurrent runs never touch each other's databases, and a later run drops
what a killed run left behind (same host, pid no longer alive).

An unreachable PostgreSQL skips its half of the suite loudly — or fails it when ``CI`` is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from gridgate.storage.runner import driver_url
from gridgate.storage.sql import SqlStore
from tests.postgres import (
    create_database,
    drop_database,
    require_postgres,
)

T = TypeVar("T")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The maintenance URL, once PostgreSQL is known to answer (else skip, or fail on CI)."""
    return require_postgres()


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
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


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
