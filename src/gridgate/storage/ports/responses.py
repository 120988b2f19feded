"""Stored responses of the Responses API (``store: true``): a response's JSON and its items,
per account, until they expire. Every read takes the account and the time: another account's
response, or an expired one, is absent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

ItemKind = Literal["input", "output"]
Order = Literal["asc", "desc"]


class StoredItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a stored response, as JSON text; ``item_id`` is its ``id``."""

    kind: ItemKind
    item_id: str
    item: str


class ItemsPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a response's input items, in the order asked; ``has_more``: more follow."""

    items: list[StoredItem]
    has_more: bool


class ResponseStore(Protocol):
    async def save_response(
        self,
        *,
        response_id: str,
        account_id: str,
        key_id: str | None,
        previous_response_id: str | None,
        response: str,
        items: Sequence[StoredItem],
        created_us: int,
        expires_us: int,
    ) -> None:
        """Store a response and its items (inputs first, then outputs) in one transaction. A
        second save of the same id replaces the first (its items too)."""

    async def get_response(self, account_id: str, response_id: str, now_us: int) -> str | None:
        """The Response JSON; None when absent, expired or another account's."""

    async def response_chain(
        self, account_id: str, response_id: str, now_us: int, *, max_depth: int
    ) -> list[str] | None:
        """The items of the conversation ending at ``response_id``, oldest first: for each
        response of the chain (following ``previous_response_id``, at most ``max_depth``), its
        items in order. The chain stops at a link that is absent or expired. None when
        ``response_id`` itself is absent, expired or another account's."""

    async def delete_response(self, account_id: str, response_id: str, now_us: int) -> bool:
        """Delete the response and its items; whether a live one of the account was there."""

    async def list_input_items(
        self,
        account_id: str,
        response_id: str,
        now_us: int,
        *,
        after: str | None,
        limit: int,
        order: Order,
    ) -> ItemsPage | None:
        """A page of the response's input items after the item ``after`` (exclusive) in
        ``order``; an unknown ``after`` gives an empty page. None when the response is absent."""

    async def delete_expired_responses(self, now_us: int, *, batch: int) -> int:
        """Delete at most ``batch`` responses that expired by ``now_us``, with their items; how
        many. Safe to run in many processes at once (they take disjoint batches)."""
