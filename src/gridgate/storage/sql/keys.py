"""API keys (``KeyStore``). On SQLite, ``get_key_by_hash`` (every request) is plain DB-API on
the runner's read-only ``reader`` connection in the calling thread: no thread hop, no
SQLAlchemy."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from typing import Any

from sqlalchemy import Connection, Row, and_, exists, func, insert, or_, select, update

from gridgate.storage.ports.errors import NotFoundInStore, StorageError
from gridgate.storage.records import AuditNote, KeyRecord
from gridgate.storage.schema import api_keys, spend_caps
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import _BALANCE, SqlBase, _now_us, _p_key, _p_now
from gridgate.storage.sql.changes import _announce
from gridgate.storage.sql.webhook_outbox import insert_event

log = logging.getLogger("gridgate.storage")

_TOUCH_KEY = (
    update(api_keys)
    .where(
        api_keys.c.id == _p_key,
        or_(api_keys.c.last_used_us.is_(None), api_keys.c.last_used_us < _p_now),
    )
    .values(last_used_us=_p_now)
)
_REVOKE_KEY = (
    update(api_keys)
    .where(api_keys.c.id == _p_key)
    .values(revoked_us=func.coalesce(api_keys.c.revoked_us, _p_now))
    .returning(*api_keys.c)
)


def _key(row: Row[Any], *, capped: bool = False) -> KeyRecord:
    return KeyRecord(
        capped=capped,
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        prefix=row.prefix,
        secret_hash=row.secret_hash,
        created_us=row.created_us,
        expires_us=row.expires_us,
        revoked_us=row.revoked_us,
        last_used_us=row.last_used_us,
        own_usage_only=bool(row.own_usage_only),
    )


# The SQLite fast path of ``get_key_by_hash``: plain DB-API on the runner's ``reader``.
_KEY_BY_HASH_SQL = (
    "SELECT id, account_id, name, prefix, secret_hash, created_us, expires_us, revoked_us,"
    " last_used_us, own_usage_only, EXISTS (SELECT 1 FROM spend_caps c WHERE (c.scope = 'key' AND"
    " c.subject = api_keys.id) OR (c.scope = 'account' AND c.subject = api_keys.account_id))"
    " FROM api_keys WHERE secret_hash = ?"
)
# whether a spend cap applies to the key's requests (its own or its account's)
_CAPPED = (
    exists()
    .where(
        or_(
            and_(spend_caps.c.scope == "key", spend_caps.c.subject == api_keys.c.id),
            and_(spend_caps.c.scope == "account", spend_caps.c.subject == api_keys.c.account_id),
        )
    )
    .label("capped")
)


def _key_from_tuple(r: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(
        id=r[0],
        account_id=r[1],
        name=r[2],
        prefix=r[3],
        secret_hash=r[4],
        created_us=r[5],
        expires_us=r[6],
        revoked_us=r[7],
        last_used_us=r[8],
        own_usage_only=bool(r[9]),
        capped=bool(r[10]),
    )


def _key_revoked_event(conn: Connection, row: Row[Any], now: int) -> None:
    """The ``key.revoked`` webhook event, in the revocation's own transaction."""
    data = {"key_id": row.id, "account_id": row.account_id, "name": row.name}
    insert_event(conn, "key.revoked", row.account_id, {**data, "prefix": row.prefix}, now)


class SqlKeys(SqlBase):
    """``KeyStore`` in SQL."""

    async def create_key(
        self,
        *,
        account_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
        own_usage_only: bool = False,
    ) -> KeyRecord:
        record = KeyRecord(
            id="key_" + secrets.token_hex(12),
            account_id=account_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_us=_now_us(),
            expires_us=expires_us,
            own_usage_only=own_usage_only,
        )
        values = {f: getattr(record, f) for f in record.__struct_fields__}

        def tx(conn: Connection) -> None:
            if conn.execute(_BALANCE, {"p_account": account_id}).first() is None:
                raise NotFoundInStore(f"no account {account_id!r}")
            conn.execute(insert(api_keys), values)
            _note(conn, audit, record.id, record.created_us)

        await self._write(tx)
        return record

    async def get_key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """SQLite (a file): an indexed read on the runner's ``reader``, in this thread, with no
        await — a few microseconds instead of a hop to a worker thread. In autocommit, fully
        fetched: no read transaction outlives the call, so the next call sees every commit.
        Synchronous, so concurrent tasks never interleave on the connection."""
        reader = self._reader
        if reader is not None:
            try:
                rows = reader.execute(_KEY_BY_HASH_SQL, (secret_hash,)).fetchall()
            except sqlite3.OperationalError:
                pass  # busy (rare in WAL mode): the worker threads wait for it, below
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {type(exc).__name__}: {exc}") from exc
            else:
                return _key_from_tuple(rows[0]) if rows else None
        stmt = select(api_keys, _CAPPED).where(api_keys.c.secret_hash == secret_hash)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _key(row, capped=bool(row.capped))

    def keys_changed(self) -> int | None:
        marker = self._keys_marker
        if marker is None:
            return None
        try:
            return os.stat(marker).st_size
        except FileNotFoundError:
            return 0  # no key revoked since the file was made
        except OSError:
            return None  # unreadable: the change feed still brings revocations

    async def get_key(self, key_id: str) -> KeyRecord | None:
        stmt = select(api_keys).where(api_keys.c.id == key_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _key(row)

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        stmt = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        if account_id is not None:
            stmt = stmt.where(api_keys.c.account_id == account_id)
        return await self._read(lambda conn: [_key(r) for r in conn.execute(stmt)])

    async def revoke_key(self, key_id: str, *, audit: AuditNote | None = None) -> KeyRecord:
        now = _now_us()
        params = {"p_key": key_id, "p_now": now}

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(_REVOKE_KEY, params).first()
            if row is not None:
                _announce(conn, "key", key_id, now)
                if row.revoked_us == now:  # revoked now, not by an earlier call
                    _note(conn, audit, key_id, now)
                    _key_revoked_event(conn, row, now)
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no key {key_id!r}")
        self._mark_keys_changed()
        return _key(row)

    async def rename_key(
        self, key_id: str, name: str, *, audit: AuditNote | None = None
    ) -> KeyRecord:
        stmt = (
            update(api_keys).where(api_keys.c.id == key_id).values(name=name).returning(*api_keys.c)
        )

        def tx(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                _note(conn, audit, key_id, _now_us())
            return row

        row = await self._write(tx)
        if row is None:
            raise NotFoundInStore(f"no key {key_id!r}")
        return _key(row)

    async def touch_keys(self, last_used: dict[str, int]) -> None:
        if not last_used:
            return
        # a fixed row order, so that two batches never wait on each other in a cycle
        params = [{"p_key": k, "p_now": v} for k, v in sorted(last_used.items())]
        await self._write(lambda conn: conn.execute(_TOUCH_KEY, params))
