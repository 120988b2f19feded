"""The management answers about webhooks (like ``shapes.py``'s, which is full): an endpoint
(its secret only in the answer that created it), an event with its deliveries, and a
balance threshold."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gridgate.core.webhooks.delivery import event_data
from gridgate.money import format_usd
from gridgate.shapes import SECRET, View, When, iso, when
from gridgate.storage.ports.webhooks import (
    DeliveryStatus,
    EventDeliveries,
    WebhookDelivery,
    WebhookEndpoint,
)


class WebhookEndpointView(View):
    """Where events are sent: an account's endpoint, or a global one (``account_id`` null)."""

    id: str
    account_id: str | None
    url: str
    events: list[str]
    enabled: bool
    secret: Annotated[str | None, msgspec.Meta(description=SECRET)]
    created_at: When

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookEndpointView:
        return cls(
            id=endpoint.id,
            account_id=endpoint.account_id,
            url=endpoint.url,
            events=list(endpoint.events),
            enabled=endpoint.enabled,
            secret=secret,
            created_at=when(endpoint.created_us),
        )


class WebhookDeliveryView(View):
    endpoint_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: When | None
    last_status: int | None
    last_error: str | None
    delivered_at: When | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> WebhookDeliveryView:
        return cls(
            endpoint_id=d.endpoint_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=when(d.next_attempt_us) if d.status == "pending" else None,
            last_status=d.last_status,
            last_error=d.last_error,
            delivered_at=iso(d.delivered_us),
        )


class WebhookEventView(View):
    """An event of the outbox and its deliveries; ``id`` is what every delivery carries."""

    id: str
    type: str
    account_id: str | None
    created_at: When
    data: dict[str, Any]
    deliveries: list[WebhookDeliveryView]

    @classmethod
    def of(cls, item: EventDeliveries) -> WebhookEventView:
        event = item.event
        return cls(
            id=event.id,
            type=event.type,
            account_id=event.account_id,
            created_at=when(event.created_us),
            data=event_data(event.payload),  # as sent
            deliveries=[WebhookDeliveryView.of(d) for d in item.deliveries],
        )


class BalanceThresholdView(View):
    """``balance.low`` fires when the balance crosses below this (null: never)."""

    account_id: str
    threshold_usd: str | None
    threshold_nanos: int | None

    @classmethod
    def of(cls, account_id: str, below: int | None) -> BalanceThresholdView:
        usd = None if below is None else format_usd(below)
        return cls(account_id=account_id, threshold_usd=usd, threshold_nanos=below)
