"""API keys: minted, looked up on every request, renamed, revoked."""

from __future__ import annotations

from typing import Protocol

from gridgate.storage.records import AuditNote, KeyRecord


class KeyStore(Protocol):
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
        """Unknown account → NotFoundInStore. ``own_usage_only``: the key reads its own usage
        receipts only, not its account's."""

    async def get_key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """On the hot path for every request: must be cheap (on SQLite an indexed read in the
        calling thread, no hop to a worker thread)."""

    def keys_changed(self) -> int | None:
        """A number that changes whenever a key is revoked, by any process, read cheaply in the
        calling thread (SQLite: the size of a marker file beside the database, one byte
        appended per revocation, read with one ``stat``), or None where there is none
        (PostgreSQL, an in-memory database: the change feed invalidates cached keys). A key
        cached while it stays the same has not been revoked meanwhile."""

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]: ...

    async def revoke_key(self, key_id: str, *, audit: AuditNote | None = None) -> KeyRecord:
        """Idempotent (a second revoke keeps the first time). Unknown → NotFoundInStore.
        Announced on the change feed (kind ``key``)."""

    async def rename_key(
        self, key_id: str, name: str, *, audit: AuditNote | None = None
    ) -> KeyRecord:
        """Unknown → NotFoundInStore."""

    async def touch_keys(self, last_used: dict[str, int]) -> None:
        """Batch update of last_used_us (only ever moves forward)."""
