"""The loops every process runs beside serving requests (``state.py`` starts them in its
``BackgroundTasks``): lease upkeep, the renewal of rate-limit slots, offer health shared
across processes, the sweep of expired stored responses (and of expired idempotency keys), and
webhook delivery. The change feed's loop is ``ChangeFeed.run``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gridgate.core.billing.billing import Billing
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.clock import Clock
from gridgate.core.health.offer_health import OfferHealth
from gridgate.core.health.sharing import share_round
from gridgate.core.idempotency.keys import IdempotencyKeys
from gridgate.core.limits.guard import RateGuard
from gridgate.core.outage import Outage
from gridgate.core.responses.stored import StoredResponses
from gridgate.core.webhooks.delivery import Deliverer
from gridgate.settings import Settings
from gridgate.storage.ports.store import Store

log = logging.getLogger("gridgate")


async def renew_slots(guard: RateGuard) -> None:
    """Keep the rate-limit concurrency slots of requests in flight from expiring."""
    while True:
        await asyncio.sleep(1.0)
        await guard.tick()


async def share_health(
    store: Store,
    health: OfferHealth,
    catalog: Callable[[], Catalog],
    clock: Clock,
    seconds: float,
    outage: Outage,
) -> None:
    """Offer health across processes (``core/health/sharing.py``), every ``seconds``."""
    while True:
        await asyncio.sleep(seconds)
        try:
            ejected = await share_round(store, health, catalog(), clock)
            if ejected:
                log.info("ejected %d offers on what every process measured", ejected)
        except Exception as exc:
            if not outage.noted(exc, "offer health sharing"):
                log.exception("offer health sharing failed")


async def sweep_responses(
    responses: StoredResponses,
    seconds: float,
    outage: Outage,
    idempotency: IdempotencyKeys | None = None,
) -> None:
    """Delete expired stored responses, and expired idempotency keys with their kept answers,
    every ``seconds`` (every process: they take disjoint batches). Only the counts are logged,
    never what was stored."""
    while True:
        try:
            removed = await responses.sweep()
            if removed:
                log.info("deleted %d expired stored responses", removed)
            keys = await idempotency.sweep() if idempotency is not None else 0
            if keys:
                log.info("deleted %d expired idempotency keys", keys)
        except Exception as exc:
            if not outage.noted(exc, "stored responses sweep"):
                log.exception("stored responses sweep failed")
        await asyncio.sleep(seconds)


async def lease_upkeep(
    billing: Billing,
    store: Store,
    clock: Clock,
    settings: Settings,
    outage: Outage,
    *,
    gauges: Callable[[], None] | None = None,
) -> None:
    """Keep leases fresh (renew, close idle ones) and release the holds of crashed processes;
    refresh the metrics ``gauges`` every tick. While the database is down, see each tick
    whether it is back (requests refused meanwhile would not tell)."""
    tick = settings.billing.lease_tick_seconds
    sweep_every = max(1, round(settings.billing.sweep_interval_seconds / tick))
    rounds = 0
    while True:
        try:
            if outage.down:
                await store.ping()
                outage.recovered()
            await billing.leases.tick()
            if rounds % sweep_every == 0:
                expired = await store.expire_holds(clock.now_us())
                if expired:
                    log.info("closed %d expired holds", len(expired))
        except Exception as exc:
            if not outage.noted(exc, "lease upkeep"):
                log.exception("lease upkeep failed")
        if gauges is not None:
            gauges()
        rounds += 1
        await asyncio.sleep(tick)


async def deliver_webhooks(deliverer: Deliverer, seconds: float, outage: Outage) -> None:
    """Send the webhooks that are due (``core/webhooks/delivery.py``), every ``seconds``, in
    every process: each claims its own."""
    while True:
        try:
            await deliverer.round()
        except Exception as exc:
            if not outage.noted(exc, "webhook delivery"):
                log.exception("webhook delivery failed")
        await asyncio.sleep(seconds)
