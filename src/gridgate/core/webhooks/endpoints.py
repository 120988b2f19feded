"""Webhook endpoints, events and thresholds as operations, authorised (``core/access.py``)
and audited, for the management API, the dashboard and the CLI alike.

An account's owner (or an operator naming the account) manages the account's endpoints; an
operator alone manages global endpoints (no account: every event, the operator's own). A
member reads the account's endpoints and events. The secret is shown once, when created.
Something of another account is answered as not existing."""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from gridgate.core.access import Actor, account_in_scope, may_act_on, require_owner
from gridgate.core.audit_log import note
from gridgate.core.clock import Clock
from gridgate.core.webhooks.outbox import EVENT_TYPES
from gridgate.echo import capped
from gridgate.errors import NotFound, PermissionDenied, ValidationFailed
from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.webhooks import EventDeliveries, WebhookEndpoint, WebhookStore

MAX_URL_LENGTH = 2000
MAX_EVENTS_PAGE = 200


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def check_url(url: str) -> str:
    cleaned = url.strip()
    parts = urlsplit(cleaned)
    if len(cleaned) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url: must be an http:// or https:// URL with a host", param="url")
    return cleaned


def check_events(events: list[str] | None) -> tuple[str, ...]:
    if not events or events == ["*"]:
        return ("*",)
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"events: unknown event type {capped(unknown[0])!r} (known: {', '.join(EVENT_TYPES)})",
            param="events",
        )
    return tuple(dict.fromkeys(events))


class Webhooks:
    def __init__(self, store: WebhookStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def add(
        self,
        actor: Actor,
        account_id: str | None,
        url: str,
        events: list[str] | None = None,
    ) -> NewEndpoint:
        """An endpoint of ``account_id``; an operator naming no account makes a global one."""
        if account_id is None and not actor.is_operator:
            account_id = actor.account_id
        if account_id is not None:
            require_owner(actor, account_id)
        secret = "whsec_" + secrets.token_urlsafe(24)
        endpoint = WebhookEndpoint(
            id="we_" + secrets.token_hex(12),
            account_id=account_id,
            url=check_url(url),
            secret=secret,
            events=check_events(events),
            enabled=True,
            created_us=self._clock.now_us(),
        )
        audit = note(
            actor, "webhook.create", account_id=account_id, url=endpoint.url,
            events=list(endpoint.events),
        )  # fmt: skip
        try:
            await self._store.create_endpoint(endpoint, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no account {capped(account_id)!r}") from exc
        return NewEndpoint(endpoint, secret)

    async def list(self, actor: Actor, account_id: str | None = None) -> list[WebhookEndpoint]:
        """An account's user: the account's endpoints; an operator: one account's, or all."""
        return await self._store.list_endpoints(account_in_scope(actor, account_id, required=False))

    async def get(self, actor: Actor, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self._store.get_endpoint(endpoint_id)
        if endpoint is None or not _visible(actor, endpoint.account_id):
            raise NotFound(f"no webhook endpoint {capped(endpoint_id)!r}")
        return endpoint

    async def remove(self, actor: Actor, endpoint_id: str) -> None:
        endpoint = await self.get(actor, endpoint_id)
        _may_manage(actor, endpoint.account_id)
        audit = note(actor, "webhook.delete", account_id=endpoint.account_id)
        if not await self._store.delete_endpoint(endpoint_id, audit=audit):
            raise NotFound(f"no webhook endpoint {capped(endpoint_id)!r}")

    async def events(
        self,
        actor: Actor,
        account_id: str | None = None,
        *,
        limit: int = 50,
        event_type: str | None = None,
    ) -> builtins.list[EventDeliveries]:
        """The newest events with their deliveries: an account's (its endpoints' deliveries),
        or for an operator naming no account every event and delivery."""
        if not 1 <= limit <= MAX_EVENTS_PAGE:
            raise ValidationFailed(f"limit: must be 1 to {MAX_EVENTS_PAGE}", param="limit")
        scope = account_in_scope(actor, account_id, required=False)
        return await self._store.list_events(scope, limit=limit, event_type=event_type)

    async def replay(self, actor: Actor, event_id: str) -> int:
        """Send the event again (same id) to its endpoints: an account's own endpoints, or for
        an operator every one. Returns how many deliveries were re-queued."""
        event = await self._store.get_event(event_id)
        if event is None or not _visible(actor, event.account_id):
            raise NotFound(f"no webhook event {capped(event_id)!r}")
        if event.account_id is not None:
            require_owner(actor, event.account_id)
        scope = None if actor.is_operator else actor.account_id
        audit = note(actor, "webhook.replay", account_id=event.account_id, type=event.type)
        return await self._store.replay_event(
            event_id, self._clock.now_us(), account_id=scope, audit=audit
        )

    async def set_threshold(self, actor: Actor, account_id: str, below: int | None) -> None:
        """``balance.low`` when the balance crosses below ``below`` nano-dollars (None: off)."""
        require_owner(actor, account_id)
        if below is not None and below <= 0:
            raise ValidationFailed("below: must be a positive amount", param="below")
        audit = note(actor, "webhook.threshold", account_id=account_id, below=below)
        try:
            await self._store.set_balance_threshold(account_id, below, audit=audit)
        except NotFoundInStore as exc:
            raise NotFound(f"no account {capped(account_id)!r}") from exc

    async def threshold(self, actor: Actor, account_id: str) -> int | None:
        if not may_act_on(actor, account_id):
            raise NotFound(f"no account {capped(account_id)!r}")
        return await self._store.balance_threshold(account_id)


def _visible(actor: Actor, account_id: str | None) -> bool:
    return actor.is_operator if account_id is None else may_act_on(actor, account_id)


def _may_manage(actor: Actor, account_id: str | None) -> None:
    if account_id is None:
        if not actor.is_operator:
            raise PermissionDenied("only an operator manages global webhooks", code="forbidden")
        return
    require_owner(actor, account_id)
