"""The audit log (``AuditStore``), and ``_note``: how every other part writes a person's change
to it, in the change's own transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from gridgate.storage.records import AuditEntry, AuditNote
from gridgate.storage.schema import audit_log
from gridgate.storage.sql.base import SqlBase, _now_us


def _audit(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail=json.loads(row.detail),
        created_us=int(row.created_us),
    )


def _audit_values(
    actor: str, action: str, subject: str, detail: Mapping[str, Any], now_us: int
) -> dict[str, Any]:
    return {
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": json.dumps(dict(detail), separators=(",", ":"), sort_keys=True),
        "created_us": now_us,
    }


def _note(conn: Connection, note: AuditNote | None, subject: str, now_us: int) -> None:
    """Write ``note`` to the audit log about ``subject``, inside the transaction of the change."""
    if note is not None:
        conn.execute(
            insert(audit_log), _audit_values(note.actor, note.action, subject, note.detail, now_us)
        )


class SqlAudit(SqlBase):
    """``AuditStore`` in SQL."""

    async def append_audit(
        self, actor: str, action: str, subject: str, detail: Mapping[str, Any]
    ) -> AuditEntry:
        now = _now_us()
        values = _audit_values(actor, action, subject, detail, now)
        stmt = insert(audit_log).returning(audit_log.c.id)
        entry_id = await self._write_statement(lambda conn: conn.execute(stmt, values).scalar_one())
        return AuditEntry(
            id=int(entry_id),
            actor=actor,
            action=action,
            subject=subject,
            detail=json.loads(values["detail"]),
            created_us=now,
        )

    async def list_audit(
        self,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        subject: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        for column, value in (
            (audit_log.c.subject, subject),
            (audit_log.c.actor, actor),
            (audit_log.c.action, action),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since_us is not None:
            stmt = stmt.where(audit_log.c.created_us >= since_us)
        if until_us is not None:
            stmt = stmt.where(audit_log.c.created_us < until_us)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        return await self._read(lambda conn: [_audit(r) for r in conn.execute(stmt)])
