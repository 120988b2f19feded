"""Stored responses: what ``store: true`` keeps, per account, for ``responses.retention_days``.

A stored response is the whole Response JSON as answered, and its items: the turn's input
items, then its output items. ``conversation`` rebuilds what a turn continuing a response
carries before its own input: every response of the chain (``previous_response_id`` links),
oldest first, its input items then its output items. The chain stops at a link that has gone
(deleted, or expired: the older end expires first).

Another account's response, and an expired one, are absent: a read answers None (the endpoints
404) and ``conversation`` raises ``ResponseNotFound``. ``retention_days = 0`` stores nothing
(``enabled`` is false; a caller then answers ``store: false``). The sweep (``sweep``, run by
every process's upkeep) deletes expired responses with their items, in batches; processes
sweeping at once take disjoint batches. Stored content is the customer's: nothing here logs it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from gridgate.core.clock import Clock
from gridgate.errors import BadRequest, ResponseNotFound
from gridgate.storage.ports.responses import ItemKind, ResponseStore, StoredItem
from gridgate.storage.records import KeyRecord

__all__ = ["MAX_CHAIN", "InputItemsPage", "StoredResponses"]

DAY_US: Final = 86_400_000_000
MAX_CHAIN: Final = 10_000  # responses followed back from one previous_response_id
SWEEP_BATCH: Final = 500
_SWEEP_BATCHES: Final = 20  # per sweep call, so one round never holds a process for long
# the id an item gets when it came without one, by type (as OpenAI's own prefixes)
_PREFIXES: Final = {"message": "msg", "function_call": "fc", "reasoning": "rs"}

_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class InputItemsPage:
    """A page of ``GET /v1/responses/{id}/input_items``: each item a JSON object with its id."""

    items: list[bytes]
    first_id: str | None
    last_id: str | None
    has_more: bool


def _item_id(item: dict[str, Any]) -> str | None:
    found = item.get("id")
    return found if isinstance(found, str) and found else None


def _stored(kind: ItemKind, raw: bytes) -> StoredItem:
    """One item to store as given, with its id, or a new one when it has none (OpenAI gives
    every input item an id)."""
    item = _decoder.decode(raw)
    if not isinstance(item, dict):
        raise TypeError("a stored response item must be a JSON object")
    item_id = _item_id(item)
    if item_id is None:
        prefix = _PREFIXES.get(str(item.get("type", "message")), "item")
        item_id = f"{prefix}_{secrets.token_hex(24)}"
    return StoredItem(kind=kind, item_id=item_id, item=raw.decode())


def _listed(stored: StoredItem) -> bytes:
    """An item as ``input_items`` lists it: with its id (the one given at save when it had
    none), first."""
    item = _decoder.decode(stored.item)
    if _item_id(item) == stored.item_id:
        return stored.item.encode()
    return msgspec.json.encode(
        {"id": stored.item_id, **{k: v for k, v in item.items() if k != "id"}}
    )


class StoredResponses:
    """The stored-responses service of the Responses surface (``AppState.responses``)."""

    def __init__(
        self,
        store: ResponseStore,
        clock: Clock,
        *,
        retention_days: int,
        sweep_batch: int = SWEEP_BATCH,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retention_us = retention_days * DAY_US
        self._sweep_batch = sweep_batch

    @property
    def enabled(self) -> bool:
        """Whether ``save`` keeps anything (``responses.retention_days`` above 0)."""
        return self._retention_us > 0

    async def save(
        self,
        *,
        caller: KeyRecord,
        response_id: str,
        previous_response_id: str | None,
        input_items: list[bytes],
        output_items: list[bytes],
        response: bytes,
    ) -> None:
        """Keep a response, its input items (this turn's) and output items, for the retention
        period; nothing when storing is off."""
        if not self.enabled:
            return
        items = [_stored("input", raw) for raw in input_items]
        items += [_stored("output", raw) for raw in output_items]
        now = self._clock.now_us()
        await self._store.save_response(
            response_id=response_id,
            account_id=caller.account_id,
            key_id=caller.id,
            previous_response_id=previous_response_id,
            response=response.decode(),
            items=items,
            created_us=now,
            expires_us=now + self._retention_us,
        )

    async def conversation(self, account_id: str, previous_response_id: str) -> list[bytes]:
        """The items before a turn continuing ``previous_response_id``, oldest first."""
        found = await self._store.response_chain(
            account_id, previous_response_id, self._clock.now_us(), max_depth=MAX_CHAIN
        )
        if found is None:
            raise ResponseNotFound(
                f"Previous response with id '{previous_response_id}' not found.",
                param="previous_response_id",
            )
        return [item.encode() for item in found]

    async def get(self, account_id: str, response_id: str) -> bytes | None:
        """The Response JSON as answered; None when absent, expired or another account's."""
        found = await self._store.get_response(account_id, response_id, self._clock.now_us())
        return None if found is None else found.encode()

    async def delete(self, account_id: str, response_id: str) -> bool:
        """Delete a response and its items; whether it was there (live, the account's)."""
        return await self._store.delete_response(account_id, response_id, self._clock.now_us())

    async def input_items(
        self,
        account_id: str,
        response_id: str,
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
    ) -> InputItemsPage | None:
        """A page of the response's input items after the item ``after``; None when the
        response is absent. ``limit``: 1 to 100 (400 naming ``limit`` otherwise)."""
        if not 1 <= limit <= 100:
            raise BadRequest("limit must be between 1 and 100", param="limit")
        page = await self._store.list_input_items(
            account_id, response_id, self._clock.now_us(), after=after, limit=limit, order=order
        )
        if page is None:
            return None
        return InputItemsPage(
            items=[_listed(item) for item in page.items],
            first_id=page.items[0].item_id if page.items else None,
            last_id=page.items[-1].item_id if page.items else None,
            has_more=page.has_more,
        )

    async def sweep(self) -> int:
        """Delete expired responses with their items, a batch at a time; how many."""
        removed = 0
        for _ in range(_SWEEP_BATCHES):
            batch = await self._store.delete_expired_responses(
                self._clock.now_us(), batch=self._sweep_batch
            )
            removed += batch
            if batch < self._sweep_batch:
                break
        return removed
