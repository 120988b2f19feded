"""Usage receipts: one request's usage record, pages of them filtered and ordered the way the
Consumption API's ``GET /v1/usage`` asks, their sums per bucket, the ledger entry that closed a
request's lease, and the Ed25519 keys receipts are signed with."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from gridgate.storage.records import UsageRecord

ReceiptOrder = Literal["created_us", "cost"]
SummaryGroup = Literal["day", "model", "api_key"]


class ReceiptFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which usage records a page or a summary reads. ``since_us`` inclusive, ``until_us``
    exclusive; ``status`` and ``cost_status`` are the receipt's words (``pending``,
    ``reconciled``, ``error``; ``pending``, ``reconciled``, ``cancelled``, ``waived``)."""

    account_id: str
    key_id: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    instrument: str | None = None
    status: str | None = None
    cost_status: str | None = None


class SummaryRow(msgspec.Struct, frozen=True, kw_only=True):
    """The records of one bucket (a UTC day's number, an instrument, a key id; None without
    grouping) and one cost status, summed."""

    bucket: str | int | None
    cost_status: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: int  # nano-dollars


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    private_key: str  # the raw 32-byte Ed25519 seed, base64url; never logged
    public_key: str  # the raw 32-byte public key, base64url
    created_us: int
    active: bool


class ReceiptStore(Protocol):
    async def get_usage(self, request_id: str) -> UsageRecord | None: ...

    async def receipt_page(
        self,
        where: ReceiptFilter,
        *,
        order_by: ReceiptOrder,
        descending: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[UsageRecord]:
        """Ordered by ``(order_by, request_id)``, both descending or both ascending; ``after``
        keeps only the records past that ``(value, request_id)`` in this order."""

    async def usage_summary(
        self, where: ReceiptFilter, group_by: SummaryGroup | None
    ) -> list[SummaryRow]:
        """The matching records summed per bucket and cost status."""

    async def lease_closing_entry(self, hold_id: str) -> int | None:
        """The id of the ledger entry that closed this hold (its ``settle``, or its ``release``
        when nothing was charged), or None while it is open."""

    async def receipt_keys(self) -> list[SigningKey]:
        """Every signing key, the active one first."""

    async def add_receipt_key(self, key: SigningKey) -> SigningKey:
        """Store ``key`` as the active key unless one already is; return the active key (the
        one stored first, whichever process made it)."""
