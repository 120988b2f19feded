"""Running one transaction function against SQLite or PostgreSQL, without blocking the loop.

A transaction function is plain synchronous SQLAlchemy Core over a ``sqlalchemy.Connection``;
``sql/`` writes each store operation once, as such a function, for both databases. A runner
executes the whole function as one transaction:

- PostgreSQL (asyncpg): ``AsyncConnection.run_sync`` — the function's statements are awaited
  through SQLAlchemy's greenlet bridge. Reads run in autocommit (no BEGIN/ROLLBACK round trips;
  READ COMMITTED gives each statement its own snapshot anyway) unless they ask for a snapshot.
- SQLite (the stdlib driver): the whole function runs in one hop to a worker thread of the
  store's own pool. SQLite is an in-process library, so what costs is crossing threads, and the
  write lock is held for as long as the transaction takes. Measured here (one account, 2 cores):
  aiosqlite crosses for every cursor, execute, fetch and close — ~20 crossings per hold, 3.5 ms
  per hold, ~430 concurrent holds/s for the whole database; one crossing per transaction:
  ~0.5 ms per hold, ~2,000 holds/s.
  WAL, ``synchronous=NORMAL``, foreign keys and ``busy_timeout`` are set on each new connection;
  the driver's own BEGIN handling is off and write transactions start with ``BEGIN IMMEDIATE``
  (a deferred transaction that upgrades to writing fails with "database is locked" instead of
  waiting for another process). Writers of one process queue on an ``asyncio.Lock`` rather than
  in SQLite's sleeping busy handler; other processes are waited for by ``busy_timeout``.

  A file database also gets ``reader``: one more connection, for the few point reads that run on
  every request (``SqlStore.get_key_by_hash``) in the calling thread — the thread hop alone
  costs more than an indexed read. It is read-only (``query_only``), in autocommit (the driver
  never opens a transaction, so each statement is its own WAL read transaction and sees the
  latest commit of any process), and its busy timeout is short: a reader in WAL mode is only
  ever kept waiting by rare events (another connection recovering the WAL), and the caller is
  the event loop; on "busy" it falls back to the worker threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from gridgate.storage.ports.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]
TxFunction = Callable[[Connection], T]

# Execution option marking a connection whose transaction writes (SQLite: BEGIN IMMEDIATE).
_WRITE = "gridgate_write"
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_POOL_SIZE, PG_MAX_OVERFLOW = 10, 5
PG_CONNECT_TIMEOUT_SECONDS = 5.0
SQLITE_POOL_SIZE, SQLITE_MAX_OVERFLOW = 4, 0
SQLITE_READER_BUSY_TIMEOUT_MS = 20


def driver_url(url: str) -> tuple[URL, Dialect]:
    """Map a user URL (``sqlite:///path.db``, ``postgresql://…``) to the driver URL we use."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite"), "sqlite"
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg"), "postgresql"
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path.db or postgresql://user@host:port/db"
    )


class Runner(Protocol):
    dialect: Dialect

    async def prepare(self) -> None:
        """Once after connecting, before the first transaction."""

    async def read(self, fn: TxFunction[T], *, snapshot: bool = False) -> T: ...

    async def write(self, fn: TxFunction[T]) -> T: ...

    async def write_statement(self, fn: TxFunction[T]) -> T:
        """Like ``write`` for a function that runs exactly one statement, which is atomic on its
        own: PostgreSQL runs it in autocommit (one round trip, no BEGIN/COMMIT)."""

    async def close(self) -> None: ...


def make_runner(url: str, *, pool_size: int | None, max_overflow: int | None) -> Runner:
    parsed, dialect = driver_url(url)
    if dialect == "postgresql":
        return PostgresRunner(
            parsed,
            pool_size=pool_size or PG_POOL_SIZE,
            max_overflow=PG_MAX_OVERFLOW if max_overflow is None else max_overflow,
        )
    return SqliteRunner(
        parsed,
        pool_size=pool_size or SQLITE_POOL_SIZE,
        max_overflow=SQLITE_MAX_OVERFLOW if max_overflow is None else max_overflow,
    )


# -- PostgreSQL -----------------------------------------------------------------------------


class PostgresRunner:
    dialect: Dialect = "postgresql"

    def __init__(self, url: URL, *, pool_size: int, max_overflow: int) -> None:
        # imported here: SQLAlchemy's asyncio layer (and the ORM it pulls in) is ~6 MB that a
        # process on SQLite never uses
        from sqlalchemy.ext.asyncio import create_async_engine

        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=3600,
            hide_parameters=True,  # errors (and the tracebacks logged) never quote stored content
            # a database that does not answer (a host gone, packets dropped) fails a new
            # connection in seconds, so callers get a 503 to retry rather than a minute's wait
            connect_args={
                "server_settings": {"application_name": "gridgate"},
                "timeout": PG_CONNECT_TIMEOUT_SECONDS,
            },
        )

    async def prepare(self) -> None:
        return None

    async def read(self, fn: TxFunction[T], *, snapshot: bool = False) -> T:
        async with self._engine.connect() as conn:
            await conn.execution_options(
                isolation_level="REPEATABLE READ" if snapshot else "AUTOCOMMIT"
            )
            return await conn.run_sync(fn)

    async def write(self, fn: TxFunction[T]) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn)

    async def write_statement(self, fn: TxFunction[T]) -> T:
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await conn.run_sync(fn)

    async def close(self) -> None:
        await self._engine.dispose()


# -- SQLite ---------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # no implicit BEGIN from the driver: _sqlite_on_begin
    for pragma in (
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON",
    ):
        dbapi_conn.execute(pragma)


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


class SqliteRunner:
    dialect: Dialect = "sqlite"

    def __init__(self, url: URL, *, pool_size: int, max_overflow: int) -> None:
        self._memory = url.database in (None, "", ":memory:")
        if self._memory:
            # One connection is the whole database: one thread, so one transaction at a time.
            self._engine: Engine = create_engine(
                url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
                hide_parameters=True,
            )
            threads = 1
        else:
            self._engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                connect_args={"check_same_thread": False},
                hide_parameters=True,
            )
            threads = pool_size + max_overflow
        event.listen(self._engine, "connect", _sqlite_on_connect)
        event.listen(self._engine, "begin", _sqlite_on_begin)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="gridgate-sqlite"
        )
        self._write_lock = asyncio.Lock()
        # point reads in the calling thread (see the module docstring); None for ``:memory:``
        self.reader: sqlite3.Connection | None = None

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn)

    async def prepare(self) -> None:
        if not self._memory:
            await self._in_thread(self._enable_wal)
            # opened here, not in a thread: nothing to cancel between connect and keeping it
            self.reader = self._open_reader()

    def _open_reader(self) -> sqlite3.Connection:
        # the file (or ``file:`` URI) exactly as the engine's own connections open it
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        options: dict[str, Any] = {**kwargs, "check_same_thread": False, "isolation_level": None}
        reader: sqlite3.Connection = sqlite3.connect(str(args[0]), **options)
        try:
            reader.execute(f"PRAGMA busy_timeout = {SQLITE_READER_BUSY_TIMEOUT_MS}")
            reader.execute("PRAGMA query_only = ON")
        except BaseException:
            reader.close()
            raise
        return reader

    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent; a no-op once done).

        Changing the journal mode needs an exclusive lock, and SQLite refuses it at once —
        without consulting the busy handler — while another connection is mid-write (e.g. a
        second process migrating the same new file); so this one statement retries, bounded.
        """
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.001
        with self._engine.connect() as conn:
            driver: Any = conn.connection.driver_connection  # outside any BEGIN
            while True:
                try:
                    mode = driver.execute("PRAGMA journal_mode = WAL").fetchone()
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(delay)  # a worker thread, never the event loop
                    delay = min(delay * 2, 0.05)
                    continue
                if mode is None or str(mode[0]).lower() != "wal":
                    raise StorageError(f"SQLite refused WAL journal mode (got {mode!r})")
                return

    def _run(self, fn: TxFunction[T], write: bool) -> T:
        with self._engine.connect() as conn:
            if write:
                conn = conn.execution_options(**{_WRITE: True})
            with conn.begin():
                return fn(conn)

    async def read(self, fn: TxFunction[T], *, snapshot: bool = False) -> T:
        # Every SQLite read transaction is a snapshot (deferred BEGIN, WAL).
        return await self._in_thread(functools.partial(self._run, fn, False))

    async def write(self, fn: TxFunction[T]) -> T:
        async with self._write_lock:
            return await self._in_thread(functools.partial(self._run, fn, True))

    async def write_statement(self, fn: TxFunction[T]) -> T:
        return await self.write(fn)

    def _shutdown(self) -> None:
        self._threads.shutdown(wait=True)  # lets a transaction whose caller was cancelled end
        self._engine.dispose()

    async def close(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.close()
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)
