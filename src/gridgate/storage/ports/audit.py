"""The audit log read and appended on its own. (A change a person makes writes its audit note
in the change's own transaction, through the ``audit`` argument of the other ports.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gridgate.storage.records import AuditEntry


class AuditStore(Protocol):
    async def append_audit(
        self, actor: str, action: str, subject: str, detail: Mapping[str, Any]
    ) -> AuditEntry:
        """Append one audit entry; ``detail`` must be JSON-encodable (and hold no secret)."""

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
        """Newest first (by id); ``since_us`` inclusive, ``until_us`` exclusive; ``before_id``:
        only entries with a smaller id (a page's cursor)."""
