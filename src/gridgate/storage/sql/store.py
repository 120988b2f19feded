"""``SqlStore``: the one store, over SQLite or PostgreSQL. It opens and closes the runner,
applies the migrations, and is composed of one part per port (``accounts.py``, ``keys.py``, …),
each a mixin over ``SqlBase`` (``base.py``)."""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy import literal, select

from gridgate.storage import migrations
from gridgate.storage.ports.store import Store
from gridgate.storage.runner import Dialect, Runner, SqliteRunner, driver_url, make_runner
from gridgate.storage.schema import instruments as instruments_t
from gridgate.storage.schema import ledger_entries
from gridgate.storage.schema import offers as offers_t
from gridgate.storage.schema import suppliers as suppliers_t
from gridgate.storage.sql.accounts import SqlAccounts
from gridgate.storage.sql.audit import SqlAudit
from gridgate.storage.sql.base import _translate
from gridgate.storage.sql.caps import SqlCaps
from gridgate.storage.sql.catalog import SqlCatalog
from gridgate.storage.sql.changes import SqlChanges
from gridgate.storage.sql.idempotency import SqlIdempotency
from gridgate.storage.sql.keys import SqlKeys
from gridgate.storage.sql.ledger import SqlLedger
from gridgate.storage.sql.ledger_upkeep import SqlLedgerUpkeep
from gridgate.storage.sql.limits import SqlLimits
from gridgate.storage.sql.people import SqlPeople
from gridgate.storage.sql.receipts import SqlReceipts
from gridgate.storage.sql.responses import SqlResponses
from gridgate.storage.sql.usage import SqlUsage
from gridgate.storage.sql.webhooks import SqlWebhooks

_PING = select(literal(1))


class SqlStore(
    SqlAccounts,
    SqlKeys,
    SqlLedger,
    SqlLedgerUpkeep,
    SqlUsage,
    SqlCatalog,
    SqlLimits,
    SqlChanges,
    SqlPeople,
    SqlAudit,
    SqlResponses,
    SqlCaps,
    SqlReceipts,
    SqlIdempotency,
    SqlWebhooks,
):
    """``Store`` over SQLite or PostgreSQL. ``await open()`` before use (or ``async with``)."""

    def __init__(
        self, url: str, *, pool_size: int | None = None, max_overflow: int | None = None
    ) -> None:
        """``url``: ``sqlite:///path.db``, ``sqlite:///:memory:`` or ``postgresql://…``.
        ``pool_size`` / ``max_overflow`` size the connection pool (PostgreSQL: 10 + 5;
        SQLite: 4 + 0, one worker thread per connection; ``:memory:`` has one connection)."""
        _, self._dialect = driver_url(url)  # a bad URL fails here, not at open()
        self._url = url
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._runner: Runner | None = None
        self._reader: sqlite3.Connection | None = None  # SQLite file: the loop-thread reader
        self._keys_marker: str | None = None  # SQLite file: ``<file>-keys`` (keys.py)
        self._entry_once = self._insert_ignoring(ledger_entries, "idempotency_key").returning(
            ledger_entries.c.id
        )
        # an operator's edit (edited_us) and disable outlive every seeding from config
        self._seed_instrument = self._upsert(instruments_t, "id", unless_edited=True)
        self._seed_supplier = self._upsert(suppliers_t, "name", unless_edited=True)
        self._seed_offer = self._upsert(offers_t, "id", keep=("disabled_us",), unless_edited=True)

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            if self._runner is None:
                self._runner = make_runner(
                    self._url, pool_size=self._pool_size, max_overflow=self._max_overflow
                )
                with _translate():
                    await self._runner.prepare()
            await self._write(migrations.apply_migrations)
            if isinstance(self._runner, SqliteRunner):
                self._reader = reader = self._runner.reader
                if reader is not None:  # the main database's file, as SQLite resolved it
                    path = reader.execute("PRAGMA database_list").fetchone()[2]
                    self._keys_marker = f"{path}-keys" if path else None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._reader = None
        self._keys_marker = None
        runner, self._runner = self._runner, None
        if runner is not None:
            with _translate():
                await runner.close()

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute(_PING).scalar_one())

    async def schema_version(self) -> int:
        """The newest migration applied to the database (0 when never migrated)."""
        return max(await self._read(migrations.applied_versions), default=0)


def open_store(
    url: str, *, pool_size: int | None = None, max_overflow: int | None = None
) -> SqlStore:
    """The store for a database URL (not yet opened: ``await store.open()`` or ``async with``)."""
    return SqlStore(url, pool_size=pool_size, max_overflow=max_overflow)


if TYPE_CHECKING:

    def _conforms(store: SqlStore) -> Store:  # mypy proves SqlStore implements the port
        return store
