"""Idempotency keys (``IdempotencyStore``): the claim is one transaction of a delete (of an
expired or abandoned row), an insert that does nothing on a duplicate ``(account_id, key)``,
and, when it did nothing, a read of the row that holds the key. Two requests claiming at once,
in one process or many, on SQLite or PostgreSQL: exactly one insert lands."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Insert, and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gridgate.storage.ports.idempotency import IdempotencyRecord
from gridgate.storage.schema import idempotency_keys
from gridgate.storage.sql.base import SqlBase

_k = idempotency_keys.c
_CLAIM_TRIES = 3  # a row released between our insert and our read: insert again


def _record(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        account_id=row.account_id,
        key=row.key,
        request_hash=row.request_hash,
        endpoint=row.endpoint,
        status=row.status,
        stream=bool(row.stream),
        owner=row.owner,
        created_us=int(row.created_us),
        expires_us=int(row.expires_us),
        stale_us=int(row.stale_us),
        response_status=row.response_status,
        response_headers=row.response_headers,
        response_body=row.response_body,
    )


class SqlIdempotency(SqlBase):
    """``IdempotencyStore`` in SQL."""

    def _claim_insert(self) -> Insert:
        keys = ["account_id", "key"]
        if self._dialect == "postgresql":
            return pg_dialect.insert(idempotency_keys).on_conflict_do_nothing(index_elements=keys)
        return sqlite_dialect.insert(idempotency_keys).on_conflict_do_nothing(index_elements=keys)

    async def claim_idempotency_key(
        self, record: IdempotencyRecord, now_us: int
    ) -> IdempotencyRecord | None:
        row = {f: getattr(record, f) for f in record.__struct_fields__}
        this = and_(_k.account_id == record.account_id, _k.key == record.key)
        gone = or_(_k.expires_us <= now_us, and_(_k.status == "running", _k.stale_us <= now_us))
        insert = self._claim_insert().returning(_k.owner)

        def claim(conn: Connection) -> IdempotencyRecord | None:
            conn.execute(delete(idempotency_keys).where(this, gone))
            for _ in range(_CLAIM_TRIES):
                if conn.execute(insert, row).first() is not None:
                    return None
                found = conn.execute(select(idempotency_keys).where(this)).first()
                if found is not None:
                    return _record(found)
            raise RuntimeError("an idempotency key claimed and released over and over")

        return await self._write(claim)

    async def get_idempotency_key(
        self, account_id: str, key: str, now_us: int
    ) -> IdempotencyRecord | None:
        stmt = select(idempotency_keys).where(
            _k.account_id == account_id, _k.key == key, _k.expires_us > now_us
        )
        found = await self._read(lambda conn: conn.execute(stmt).first())
        return None if found is None else _record(found)

    async def finish_idempotency_key(
        self,
        account_id: str,
        key: str,
        owner: str,
        *,
        response_status: int,
        response_headers: str,
        response_body: str | None,
    ) -> bool:
        stmt = (
            update(idempotency_keys)
            .where(
                _k.account_id == account_id,
                _k.key == key,
                _k.owner == owner,
                _k.status == "running",
            )
            .values(
                status="done",
                response_status=response_status,
                response_headers=response_headers,
                response_body=response_body,
            )
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def release_idempotency_key(self, account_id: str, key: str, owner: str) -> None:
        stmt = delete(idempotency_keys).where(
            _k.account_id == account_id,
            _k.key == key,
            _k.owner == owner,
            _k.status == "running",
        )
        await self._write(lambda conn: conn.execute(stmt))

    async def delete_expired_idempotency_keys(self, now_us: int, *, batch: int) -> int:
        def sweep(conn: Connection) -> int:
            due = (
                select(_k.account_id, _k.key)
                .where(_k.expires_us <= now_us)
                .order_by(_k.expires_us)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
            rows = [tuple(row) for row in conn.execute(due).all()]
            if not rows:
                return 0
            gone = delete(idempotency_keys).where(
                tuple_(_k.account_id, _k.key).in_(rows), _k.expires_us <= now_us
            )
            return int(conn.execute(gone).rowcount)

        return await self._write(sweep)
