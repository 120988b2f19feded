"""Writing events that are not part of a stored change: ``WebhookOutbox.emit``, and the
``offer.ejected`` event of an offer's ejection (offer health lives in each process's memory).

Events that announce a stored change are written in that change's transaction by the storage
layer (``storage/sql/webhook_outbox.py``: ``insert_event``, ``balance_low_*``), never here.

An ejection is written in the background as it happens (``offer_ejected`` is called from
``OfferHealth``'s synchronous state machine). Its event id is derived from the offer and the
ejection window (``webhooks.ejection_window_seconds``, 300 s by default, counted from the
epoch): N processes that eject the same offer within one window write one event; the next
window's ejection is a new event."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.storage.ports.webhooks import WebhookEvent, WebhookStore

log = logging.getLogger("gridgate.webhooks")

EVENT_TYPES = ("balance.low", "cap.reached", "key.revoked", "offer.ejected")


def ejection_event_id(offer_id: str, now_us: int, window_s: float) -> str:
    window = now_us // int(window_s * 1_000_000)
    digest = hashlib.sha256(f"{offer_id}\x00{window}".encode()).hexdigest()[:24]
    return f"evt_ej_{digest}"


class WebhookOutbox:
    def __init__(
        self, store: WebhookStore, clock: Clock, outage: Outage, *, ejection_window_s: float
    ) -> None:
        self._store = store
        self._clock = clock
        self._outage = outage
        self._window_s = ejection_window_s
        self._writing: set[asyncio.Task[bool]] = set()

    async def emit(
        self,
        event_type: str,
        account_id: str | None,
        data: Mapping[str, Any],
        *,
        event_id: str | None = None,
    ) -> bool:
        """Write one event in a transaction of its own (for a change already committed, or none
        stored). A change the store makes should write its event in its own transaction instead
        (``insert_event``). ``event_id`` deduplicates: an id written before is ignored (False).
        ``data`` is sent to every subscribed endpoint: never a secret."""
        event = WebhookEvent(
            id=event_id or "evt_" + secrets.token_hex(12),
            type=event_type,
            account_id=account_id,
            payload=json.dumps(dict(data), separators=(",", ":"), sort_keys=True),
            created_us=self._clock.now_us(),
        )
        return await self._store.add_event(event)

    def offer_ejected(self, offer_id: str, cause: str) -> None:
        """``OfferHealth``'s hook: write ``offer.ejected`` now, in the background."""
        now = self._clock.now_us()
        data = {"offer_id": offer_id, "cause": cause}
        event_id = ejection_event_id(offer_id, now, self._window_s)
        task = asyncio.get_running_loop().create_task(
            self.emit("offer.ejected", None, data, event_id=event_id)
        )
        self._writing.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[bool]) -> None:
        self._writing.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if not self._outage.noted(exc, "webhook event"):
            log.error("could not write a webhook event", exc_info=exc)

    async def close(self) -> None:
        """Wait for the events being written."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
