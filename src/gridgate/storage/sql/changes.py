"""The change feed (``ChangeStore``), and ``_announce``: how every other part appends to it, in
the transaction of the change it announces."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, insert, select

from gridgate.storage.records import ChangeKind, ChangeRecord
from gridgate.storage.schema import changes
from gridgate.storage.sql.base import SqlBase


def _announce(conn: Connection, kind: ChangeKind, subject: str, now_us: int) -> None:
    """Append to the change feed, inside the transaction of the change it announces."""
    conn.execute(insert(changes), {"kind": kind, "subject": subject, "created_us": now_us})


class SqlChanges(SqlBase):
    """``ChangeStore`` in SQL."""

    async def changes_since(self, since_us: int) -> list[ChangeRecord]:
        stmt = select(changes).where(changes.c.created_us >= since_us).order_by(changes.c.id)

        def tx(conn: Connection) -> list[ChangeRecord]:
            return [
                ChangeRecord(
                    id=int(r.id),
                    kind=cast(ChangeKind, r.kind),
                    subject=r.subject,
                    created_us=r.created_us,
                )
                for r in conn.execute(stmt)
            ]

        return await self._read(tx)

    async def prune_changes(self, before_us: int) -> int:
        stmt = changes.delete().where(changes.c.created_us < before_us)
        return await self._write_statement(lambda conn: conn.execute(stmt).rowcount)
