"""Offer health across processes: every process reads what all of them delivered.

The usage table is shared by every process (and every host) on one database, and each usage
record carries its delivery's measurements. Every ``health.share_seconds`` each process builds
the fleet-wide window of every offer from it (the same rules ``gridgate offers status`` uses)
and hands it to its own health book: an offer the fleet has measured out of spec is ejected
here too, without this process having to suffer ``min_samples`` bad deliveries of its own.
Deliveries older than an offer's last probation here do not count (they were judged already).
"""

from __future__ import annotations

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.clock import Clock
from gridgate.core.health.offer_health import OfferHealth
from gridgate.core.health.report import offer_report
from gridgate.storage.ports.usage import UsageStore


async def share_round(
    store: UsageStore, health: OfferHealth, catalog: Catalog, clock: Clock
) -> int:
    """One round: read the fleet's window, absorb it. Returns the offers newly ejected."""
    policy = health.policy
    since = clock.now_us() - int(policy.max_age_s * 1_000_000)
    rows = await store.offer_deliveries(since, policy.window_size)
    fresh = [row for row in rows if row.created_us >= health.fresh_since_us(row.offer_id)]
    offers = [priced.offer for group in catalog.offers.values() for priced in group]
    before = {o.id for o in offers if health.state(o.id) != "healthy"}
    for status in offer_report(offers, catalog.instruments.values(), fresh, policy):
        health.absorb(status.offer.id, status.summary, status.breaches)
    return len({o.id for o in offers if health.state(o.id) != "healthy"} - before)
