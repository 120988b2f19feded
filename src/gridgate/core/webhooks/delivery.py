"""Delivering the outbox: each process's loop takes due deliveries and POSTs them.

A round (``Deliverer.round``): make the deliveries of new events (``fan_out``), claim the due
ones (each claim counts an attempt and holds the delivery for ``timeout_seconds`` + 30 s, so no
other process sends the same attempt), POST them concurrently, and record each outcome under its
claim. A 2xx is delivered. Anything else — a refused connection, a timeout, a non-2xx — is
retried after ``backoff_seconds`` × 2^(attempt−1), capped at ``max_backoff_seconds``, ±20%
jitter, until ``max_attempts`` attempts or ``max_age_hours`` after the event: then ``failed``
(a replay makes it pending again, with the same event id). A process that dies mid-attempt
leaves its claim to expire: another process sends it again, as a duplicate with the same id
when the first attempt had in fact arrived.

The last error kept is the status or the kind of failure, never the receiver's body and never
the secret."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gridgate.core.clock import Clock
from gridgate.core.webhooks.signing import signed_headers
from gridgate.money import format_usd
from gridgate.settings import WebhookSettings
from gridgate.storage.ports.webhooks import ClaimedDelivery, WebhookEvent, WebhookStore

log = logging.getLogger("gridgate.webhooks")

_CLAIM_MARGIN_US = 30_000_000
_MAX_ERROR = 300


class PostFailed(Exception):
    """No HTTP answer came (refused, reset, timed out): ``str`` says which, for ``last_error``."""


class WebhookPost(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        """POST and return the receiver's HTTP status; ``PostFailed`` when none came."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_s: float = 10.0
    max_attempts: int = 10
    max_age_us: int = 72 * 3600 * 1_000_000
    backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    batch: int = 20
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> DeliveryPolicy:
        return cls(
            timeout_s=settings.timeout_seconds,
            max_attempts=settings.max_attempts,
            max_age_us=int(settings.max_age_hours * 3600 * 1_000_000),
            backoff_s=settings.backoff_seconds,
            max_backoff_s=settings.max_backoff_seconds,
            batch=settings.batch,
        )

    def backoff_us(self, attempt: int, rand: random.Random) -> int:
        """The wait after failed attempt number ``attempt`` (1 for the first)."""
        base = min(self.backoff_s * 2 ** min(attempt - 1, 30), self.max_backoff_s)
        spread = 1 + self.jitter * (2 * rand.random() - 1)
        return int(base * spread * 1_000_000)


def event_data(payload: str) -> dict[str, Any]:
    """The stored data, each ``<name>_nanos`` amount beside it as ``<name>_usd`` (a decimal
    string, exact)."""
    data: dict[str, Any] = json.loads(payload)
    for name, value in list(data.items()):
        if name.endswith("_nanos") and isinstance(value, int):
            data[name.removesuffix("_nanos") + "_usd"] = format_usd(value)
    return data


def event_body(event: WebhookEvent) -> bytes:
    """``{"id", "type", "created_at", "data"}`` as sent (``created_at`` RFC 3339, UTC)."""
    created = dt.datetime.fromtimestamp(event.created_us / 1_000_000, tz=dt.UTC)
    body = {
        "id": event.id,
        "type": event.type,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "data": event_data(event.payload),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Deliverer:
    def __init__(
        self,
        store: WebhookStore,
        post: WebhookPost,
        clock: Clock,
        policy: DeliveryPolicy,
        *,
        rand: random.Random | None = None,
    ) -> None:
        self._store = store
        self._post = post
        self._clock = clock
        self._policy = policy
        self._rand = rand or random.Random()

    async def round(self) -> int:
        """Fan out, claim what is due, send it; returns how many were delivered."""
        policy = self._policy
        await self._store.fan_out()
        now = self._clock.now_us()
        claimed = await self._store.claim_due(
            now,
            lease_us=int(policy.timeout_s * 1_000_000) + _CLAIM_MARGIN_US,
            claim=secrets.token_hex(8),
            limit=policy.batch,
        )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(c) for c in claimed))
        return sum(outcomes)

    async def _attempt(self, claimed: ClaimedDelivery) -> bool:
        body = event_body(claimed.event)
        sent_us = self._clock.now_us()
        headers = signed_headers(
            claimed.event.id, claimed.endpoint.secret, sent_us // 1_000_000, body
        )
        status: int | None = None
        try:
            status = await self._post.post(
                claimed.endpoint.url, body, headers, self._policy.timeout_s
            )
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except PostFailed as exc:
            error = str(exc)[:_MAX_ERROR] or "no answer"
        now = self._clock.now_us()
        if error is None:
            await self._store.finish_delivery(
                claimed, status="delivered", now_us=now, next_attempt_us=now,
                http_status=status, error=None,
            )  # fmt: skip
            return True
        policy = self._policy
        retry_at = now + policy.backoff_us(claimed.attempt, self._rand)
        too_old = retry_at - claimed.event.created_us > policy.max_age_us
        final = claimed.attempt >= policy.max_attempts or too_old
        await self._store.finish_delivery(
            claimed,
            status="failed" if final else "pending",
            now_us=now,
            next_attempt_us=now if final else retry_at,
            http_status=status,
            error=error,
        )
        if final:
            log.warning(
                "webhook %s to endpoint %s failed after %d attempts: %s",
                claimed.event.id, claimed.endpoint.id, claimed.attempt, error,
            )  # fmt: skip
        return False
