"""Webhooks (``WebhookStore``): endpoints, the durable outbox of events, and each event's
delivery to each endpoint — claimed by one process at a time, retried until delivered or
failed, replayable. Also the balance below which an account's ``balance.low`` event fires.

An event is written in the transaction of what it announces (``storage/sql/webhook_outbox.py``:
``insert_event``), so a process that dies after the change still leaves its event behind; the
delivery loop of any process sends it."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from gridgate.storage.records import AuditNote

DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: str | None  # None: global (the operator's), every account's events
    url: str
    secret: str  # signs each delivery; shown once at creation, never logged
    events: tuple[str, ...]  # event types, ("*",) for all
    enabled: bool
    created_us: int

    def wants(self, event_type: str, account_id: str | None) -> bool:
        """Whether an event of ``event_type`` about ``account_id`` goes to this endpoint."""
        if self.account_id is not None and self.account_id != account_id:
            return False
        return "*" in self.events or event_type in self.events


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the event id: the same on every delivery and retry
    type: str
    account_id: str | None
    payload: str  # the event's data, a JSON object
    created_us: int


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    endpoint_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_us: int
    last_error: str | None = None
    last_status: int | None = None  # the receiver's HTTP status, when it answered
    delivered_us: int | None = None


class EventDeliveries(msgspec.Struct, frozen=True, kw_only=True):
    """An event and its deliveries (none when no endpoint wanted it, or not yet fanned out)."""

    event: WebhookEvent
    deliveries: tuple[WebhookDelivery, ...]


class ClaimedDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A due delivery this process claimed: no other sends it until ``claim`` expires."""

    event: WebhookEvent
    endpoint: WebhookEndpoint
    attempt: int  # 1 for the first
    claim: str


class WebhookStore(Protocol):
    async def create_endpoint(
        self, endpoint: WebhookEndpoint, *, audit: AuditNote | None = None
    ) -> None:
        """An account's endpoint for an unknown account → NotFoundInStore."""

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def list_endpoints(self, account_id: str | None = None) -> list[WebhookEndpoint]:
        """The endpoints of ``account_id``; None: every endpoint (global and every account's)."""

    async def delete_endpoint(self, endpoint_id: str, *, audit: AuditNote | None = None) -> bool:
        """Removes the endpoint and its deliveries. False when there was none."""

    async def add_event(self, event: WebhookEvent) -> bool:
        """Write an event in a transaction of its own (for what is not itself stored, like an
        offer's ejection). An event id already written is ignored: False."""

    async def fan_out(self, *, limit: int = 200) -> int:
        """Make the deliveries of events not yet fanned out: one per enabled endpoint that
        existed when the event was written and wants it. Safe in every process at once.
        Returns the deliveries made."""

    async def claim_due(
        self, now_us: int, *, lease_us: int, claim: str, limit: int
    ) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` pending deliveries due by ``now_us`` (of enabled endpoints):
        each counts an attempt and is not due again before ``now_us + lease_us``, so no other
        process sends it meanwhile. Atomic per delivery across processes."""

    async def finish_delivery(
        self,
        claimed: ClaimedDelivery,
        *,
        status: DeliveryStatus,
        now_us: int,
        next_attempt_us: int,
        http_status: int | None,
        error: str | None,
    ) -> bool:
        """Record an attempt's outcome (delivered, failed for good, or pending again until
        ``next_attempt_us``). False when the claim was lost (expired and taken meanwhile)."""

    async def list_events(
        self, account_id: str | None, *, limit: int = 100, event_type: str | None = None
    ) -> list[EventDeliveries]:
        """The newest events first, with their deliveries; ``account_id`` None: every event.
        An account's events show only its own endpoints' deliveries."""

    async def get_event(self, event_id: str) -> WebhookEvent | None: ...

    async def replay_event(
        self,
        event_id: str,
        now_us: int,
        *,
        account_id: str | None = None,
        audit: AuditNote | None = None,
    ) -> int:
        """Make the event's deliveries (of ``account_id``'s endpoints, None: all) pending and
        due now, with their attempts counted afresh; the event id stays. Returns how many."""

    async def set_balance_threshold(
        self, account_id: str, below: int | None, *, audit: AuditNote | None = None
    ) -> None:
        """``balance.low`` fires when the balance crosses below ``below`` (None: never).
        Unknown account → NotFoundInStore."""

    async def balance_threshold(self, account_id: str) -> int | None: ...
