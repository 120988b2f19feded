"""Idempotency keys (``Idempotency-Key`` on the inference endpoints): one row per account and
key, claimed atomically by the first request (a row insert that fails on a duplicate, so it
holds across processes), then holding that request's answer until it expires."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

KeyStatus = Literal["running", "done"]


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed key. ``owner`` names the claim (a fresh token per claim): only its owner
    finishes or releases it. ``stale_us``: a ``running`` claim older than this is taken over
    (its process is presumed dead). ``response_body`` is None while running, and for a done
    answer whose content is not kept (``responses.retention_days = 0``)."""

    account_id: str
    key: str
    request_hash: str
    endpoint: str
    status: KeyStatus
    stream: bool
    owner: str
    created_us: int
    expires_us: int
    stale_us: int
    response_status: int | None = None
    response_headers: str | None = None  # a JSON object
    response_body: str | None = None


class IdempotencyStore(Protocol):
    async def claim_idempotency_key(
        self, record: IdempotencyRecord, now_us: int
    ) -> IdempotencyRecord | None:
        """Claim ``record``'s key for its account (``record`` is written as it is, ``running``).
        None: claimed now. Otherwise the live row that holds the key (an expired row, or a
        ``running`` one past its ``stale_us``, is replaced by the claim)."""

    async def get_idempotency_key(
        self, account_id: str, key: str, now_us: int
    ) -> IdempotencyRecord | None:
        """The live row of the key; None when absent or expired."""

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
        """Mark the owner's running claim ``done`` with its answer; whether it was still the
        owner's."""

    async def release_idempotency_key(self, account_id: str, key: str, owner: str) -> None:
        """Delete the owner's running claim (a request whose answer is not kept)."""

    async def delete_expired_idempotency_keys(self, now_us: int, *, batch: int) -> int:
        """Delete at most ``batch`` rows expired by ``now_us``; how many. Safe to run in many
        processes at once."""
