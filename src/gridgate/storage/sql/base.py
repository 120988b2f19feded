"""What every part of ``SqlStore`` runs on: a transaction in one hop through the runner, the
one place driver errors become ``StorageError`` (``_translate``), the clock, the bind
parameters the parts share, and the statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from typing import TypeVar

from sqlalchemy import BigInteger, Insert, Table, Text, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError

from gridgate.storage.ports.errors import StorageError, StoreUnavailable
from gridgate.storage.runner import Dialect, Runner, TxFunction
from gridgate.storage.schema import accounts

T = TypeVar("T")
_log = logging.getLogger("gridgate.storage")


def _now_us() -> int:
    return time.time_ns() // 1000


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """The storage boundary: driver and SQLAlchemy errors become ``StorageError`` — and
    ``StoreUnavailable`` when the database could not be reached (``_unreachable``)."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
        orig = getattr(exc, "orig", None)
        detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{exc}"
        error = StoreUnavailable if _unreachable(exc) else StorageError
        raise error(f"database error: {detail}") from exc


# SQLSTATE classes of a server that is gone or going: connection exceptions (08), operator
# intervention (57: shutting down, crashed, not yet accepting), insufficient resources (53)
_UNREACHABLE_SQLSTATES = ("08", "57", "53")
# SQLite's words for a file it cannot use right now (another process's lock, the disk)
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly database")


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now, rather than that the
    statement itself was wrong: the former is a 503 to retry, the latter a bug (500)."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) or exc
    cause = orig.__cause__ if orig.__cause__ is not None else orig
    if isinstance(cause, OSError | TimeoutError):
        return True
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return any(word in text for word in _SQLITE_UNAVAILABLE)
    # asyncpg's own connection-level errors (a closed connection, a lost one)
    return isinstance(exc, sa_exc.InterfaceError) or type(cause).__name__ in (
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InterfaceError",
    )


# -- statements, built once -----------------------------------------------------------------
# Bind parameter names start with ``p_`` (names of columns being SET are reserved).

_p_account = bindparam("p_account", type_=Text)
_p_key = bindparam("p_key", type_=Text)
_p_amount = bindparam("p_amount", type_=BigInteger)
_p_now = bindparam("p_now", type_=BigInteger)

_BALANCE = select(accounts.c.balance).where(accounts.c.id == _p_account)


class SqlBase:
    """The runner every part of ``SqlStore`` reads and writes through (``store.py`` opens and
    closes it), and the dialect-specific statements they build."""

    _dialect: Dialect
    _runner: Runner | None
    _reader: sqlite3.Connection | None  # SQLite file: the loop-thread reader
    _keys_marker: str | None  # SQLite file: grows by a byte per key revocation (keys.py)

    def _require_runner(self) -> Runner:
        if self._runner is None:
            raise StorageError("the store is not open")
        return self._runner

    async def _read(self, fn: TxFunction[T], *, snapshot: bool = False) -> T:
        runner = self._require_runner()
        with _translate():
            return await runner.read(fn, snapshot=snapshot)

    async def _write(self, fn: TxFunction[T]) -> T:
        """Run ``fn`` as one write transaction: committed on return, rolled back on raise."""
        runner = self._require_runner()
        with _translate():
            return await runner.write(fn)

    async def _write_statement(self, fn: TxFunction[T]) -> T:
        """Run ``fn``, which executes exactly one statement, atomically."""
        runner = self._require_runner()
        with _translate():
            return await runner.write_statement(fn)

    # -- dialect-specific statements --------------------------------------------------------

    def _insert_ignoring(self, table: Table, conflict: str) -> Insert:
        if self._dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=[conflict])
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=[conflict])

    def _upsert(
        self, table: Table, key: str, *, keep: tuple[str, ...] = (), unless_edited: bool = False
    ) -> Insert:
        """Insert, or on a conflicting ``key`` replace every column but those in ``keep`` —
        with ``unless_edited``, only a row no operator has edited (``edited_us`` unset)."""
        cols = [c.name for c in table.columns if c.name != key and c.name not in keep]
        where = table.c.edited_us.is_(None) if unless_edited else None
        if self._dialect == "postgresql":
            pg = pg_dialect.insert(table)
            return pg.on_conflict_do_update(
                index_elements=[key], set_={c: pg.excluded[c] for c in cols}, where=where
            )
        lite = sqlite_dialect.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[key], set_={c: lite.excluded[c] for c in cols}, where=where
        )

    def _mark_keys_changed(self) -> None:
        """One byte more in the marker (after the commit): every process's next request reads
        its key again (``keys_changed``)."""
        marker = self._keys_marker
        if marker is None:
            return
        try:
            with open(marker, "ab") as file:
                file.write(b".")
        except OSError:
            _log.warning(
                "could not mark a key change in %s; the change feed still brings it", marker
            )
