"""Operators' rate-limit overrides (``LimitStore``)."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from sqlalchemy import Connection, Row, and_, insert, select

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.records import AuditNote, LimitOverride, LimitScope
from gridgate.storage.schema import accounts, api_keys, rate_limits
from gridgate.storage.schema import instruments as instruments_t
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import SqlBase, _now_us
from gridgate.storage.sql.changes import _announce


def _limits(row: Row[Any]) -> LimitOverride:
    return LimitOverride(
        scope=cast(LimitScope, row.scope),
        subject=row.subject,
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        concurrent=row.concurrent,
        updated_us=row.updated_us,
    )


class SqlLimits(SqlBase):
    """``LimitStore`` in SQL."""

    async def set_limits(
        self, override: LimitOverride, *, audit: AuditNote | None = None
    ) -> LimitOverride:
        now = _now_us()
        saved = msgspec.structs.replace(override, updated_us=now)
        subject = override.subject
        owner = {"key": api_keys.c.id, "account": accounts.c.id, "instrument": instruments_t.c.id}
        column = owner[override.scope]
        values = {f: getattr(saved, f) for f in saved.__struct_fields__}
        where = and_(
            rate_limits.c.scope == override.scope, rate_limits.c.subject == override.subject
        )

        def tx(conn: Connection) -> None:
            if (
                subject != "*"
                and conn.execute(select(column).where(column == subject)).first() is None
            ):
                raise NotFoundInStore(f"no {override.scope} {subject!r}")
            conn.execute(rate_limits.delete().where(where))
            if not saved.empty:
                conn.execute(insert(rate_limits), values)
            _announce(conn, "limits", f"{override.scope}:{subject}", now)
            _note(conn, audit, f"{override.scope}:{subject}", now)

        await self._write(tx)
        return saved

    async def get_limits(self, scope: LimitScope, subject: str) -> LimitOverride | None:
        stmt = select(rate_limits).where(
            rate_limits.c.scope == scope, rate_limits.c.subject == subject
        )
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _limits(row)

    async def list_limits(self) -> list[LimitOverride]:
        stmt = select(rate_limits).order_by(rate_limits.c.scope, rate_limits.c.subject)
        return await self._read(lambda conn: [_limits(r) for r in conn.execute(stmt)])
