"""Writing events that are not part of a stored change: ``WebhookOutbox.emit``, the
``offer.ejected`` event of an offer's ejection (offer health lives in each process's memory),
and ``cap.reached`` when a spend cap refuses a request (a refusal changes nothing stored: its
hold's transaction was rolled back).

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
from collections.abc import Coroutine, Mapping
from typing import Any

from gridgate.core.billing import cap_windows
from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.storage.ports.webhooks import WebhookEvent, WebhookStore
from gridgate.storage.records import CapUse

log = logging.getLogger("gridgate.webhooks")

_MAX_REPORTED = 10_000
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
        self._reported: set[str] = set()  # cap.reached ids this process wrote

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
        self._background(self.emit("offer.ejected", None, data, event_id=event_id))

    def cap_reached(self, use: CapUse) -> None:
        """Billing's hook when a spend cap refuses a request: write ``cap.reached`` now, in the
        background, once per cap and window (its id is derived from both: every process that
        finds the same cap reached in the same window writes the one event)."""
        cap = use.cap
        event_id = f"evt_cap_{cap.id}_{use.window_start_us}"
        if event_id in self._reported:
            return
        if len(self._reported) >= _MAX_REPORTED:
            self._reported.clear()
        self._reported.add(event_id)
        resets = cap_windows.resets_at(cap.period, use.window_start_us)
        data = {
            "cap_id": cap.id,
            "scope": cap.scope,
            "subject": cap.subject,  # the key id, or the account id
            "period": cap.period,
            "limit_nanos": cap.limit,
            "spent_nanos": use.spent,
            "window_start": cap_windows.iso(use.window_start_us),
            "resets_at": None if resets is None else cap_windows.iso(resets),
        }
        self._background(self.emit("cap.reached", cap.account_id, data, event_id=event_id))

    def _background(self, writing: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.get_running_loop().create_task(writing)
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
