"""Numbered schema migrations, shared by SQLite and PostgreSQL.

``MIGRATIONS`` is append-only: a released step never changes. Each step runs inside the one
write transaction of ``apply_migrations`` (both databases have transactional DDL), and its
version is recorded in ``schema_migrations``. Two processes opening the same database at once
are serialised: on PostgreSQL by ``pg_advisory_xact_lock``, on SQLite by the ``BEGIN IMMEDIATE``
the caller's write transaction starts with. Steps are synchronous SQLAlchemy Core functions, run
like every other transaction by ``runner.py``.

Version 1 builds its DDL from ``schema.py`` because ``schema.py`` still describes version 1.
Before the first change to ``schema.py``, copy the version-1 table shapes into this module so
that step 1 keeps creating exactly what it created when released, then add step 2 with the
change (``tests/storage`` holds a fingerprint of the version-1 shape that fails as a reminder).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, text

from gridgate.storage import schema
from gridgate.storage.ports import StorageError

# Any fixed 64-bit number; the advisory lock is scoped to the database.
_PG_MIGRATION_LOCK = 0x6772_6964_6761_7465  # "gridgate"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables if t is not schema.schema_migrations]
    schema.metadata.create_all(conn, tables=tables, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial", _v1_initial),)

LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(conn: Connection) -> list[int]:
    """Versions recorded in the database (empty when it was never migrated)."""
    if not conn.dialect.has_table(conn, schema.schema_migrations.name):
        return []
    rows = conn.execute(
        select(schema.schema_migrations.c.version).order_by(schema.schema_migrations.c.version)
    )
    return [int(v) for v in rows.scalars()]


def apply_migrations(conn: Connection) -> list[int]:
    """Apply every pending step; return the versions applied now (empty when up to date).

    ``conn`` must be inside a write transaction (SQLite: started with ``BEGIN IMMEDIATE``);
    the caller commits.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    schema.schema_migrations.create(conn, checkfirst=True)
    done = set(applied_versions(conn))
    newer = sorted(v for v in done if v > LATEST_VERSION)
    if newer:
        raise StorageError(
            f"the database is at schema version {newer[-1]}, newer than this gridgate "
            f"understands ({LATEST_VERSION}); upgrade gridgate"
        )
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version in done:
            continue
        step.apply(conn)
        conn.execute(
            insert(schema.schema_migrations).values(
                version=step.version, name=step.name, applied_us=time.time_ns() // 1000
            )
        )
        applied.append(step.version)
    return applied
