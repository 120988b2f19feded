"""The audit log: who changed what, when.

Every change a person, a script or the CLI makes goes to the store with a ``note`` (``AuditNote``)
that the store writes in the change's own transaction. Notes never carry a secret: a detail whose
name speaks of a password, secret, token value or hash is refused before anything is written.
Operators read the log newest first, a page at a time, filtered by actor, action or subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridgate.core.access import Actor, require_operator
from gridgate.errors import ValidationFailed
from gridgate.storage.ports.audit import AuditStore
from gridgate.storage.records import AuditEntry, AuditNote

MAX_PAGE = 100
_SECRET_WORDS = ("password", "secret", "hash")


def note(actor: Actor | str, action: str, **detail: Any) -> AuditNote:
    """The audit note of ``action`` by ``actor`` (an actor, or an actor id)."""
    for key in detail:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {key!r} looks like a secret")
    who = actor if isinstance(actor, str) else actor.id
    return AuditNote(actor=who, action=action, detail=detail)


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    next: str | None  # the cursor of the next page


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def page(
        self,
        actor: Actor,
        *,
        limit: int = MAX_PAGE,
        cursor: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        by: str | None = None,
        action: str | None = None,
        subject: str | None = None,
    ) -> AuditPage:
        require_operator(actor)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit: must be 1 to {MAX_PAGE}", param="limit")
        before = None
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
                raise ValidationFailed("cursor: not a cursor this API returned", param="cursor")
            before = int(cursor)
        entries = await self._store.list_audit(
            since_us=since_us,
            until_us=until_us,
            limit=limit + 1,
            subject=subject,
            actor=by,
            action=action,
            before_id=before,
        )
        if len(entries) > limit:
            return AuditPage(entries[:limit], str(entries[limit - 1].id))
        return AuditPage(entries, None)
