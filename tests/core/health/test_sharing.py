"""Offer health across processes: a process ejects an offer that the others measured out of
spec (read from the shared usage records of a real SQLite store), and stale measurements do
not eject it again after its probation here."""

from __future__ import annotations

from pathlib import Path

from gridgate.core.catalog.catalog import Catalog
from gridgate.core.health.offer_health import HealthPolicy, OfferHealth
from gridgate.core.health.sharing import share_round
from gridgate.money import usd_to_nanos
from gridgate.storage.records import InstrumentRecord, OfferRecord, SupplierRecord, UsageRecord
from gridgate.storage.sql import SqlStore
from tests.core.health.test_offer_health import ManualClock

INSTRUMENT = InstrumentRecord(
    id="text-prime",
    display_name="Text Prime",
    quality_floor=38,
    ttft_ceiling_ms=4620,
    throughput_floor_tps=40,
    context_floor=128_000,
    max_output_floor=30_000,
    context_length=196_608,
    max_input_tokens=120_000,
    max_completion_tokens=131_072,
)
SUPPLIERS = [SupplierRecord(name=n, wire="openai", base_url="http://127.0.0.1:9/v1") for n in "ab"]
OFFERS = [
    OfferRecord(
        id=f"{n}/text-prime/m",
        supplier=n,
        instrument="text-prime",
        model="m",
        input_per_m=usd_to_nanos("1"),
        output_per_m=usd_to_nanos("1"),
        quality=40,
        context=200_000,
        max_output=64_000,
    )
    for n in "ab"
]
POLICY = HealthPolicy(min_samples=5, cooldown_s=30)


def deliveries(offer_id: str, clock: ManualClock, ttft_ms: int, count: int) -> list[UsageRecord]:
    """What other processes recorded: streamed deliveries with this TTFT."""
    return [
        UsageRecord(
            request_id=f"req-{offer_id}-{clock.now_us()}-{i}",
            created_us=clock.now_us() - i,
            account_id="acct_x",
            key_id="key_x",
            instrument="text-prime",
            supplier=offer_id[0],
            offer_id=offer_id,
            upstream_model="m",
            stream=True,
            output_tokens=100,
            ttft_us=ttft_ms * 1000,
            generation_us=1_000_000,
            outcome="ok",
        )
        for i in range(count)
    ]


async def test_the_fleet_ejects_an_offer_this_process_never_tried(tmp_path: Path) -> None:
    clock = ManualClock()
    health = OfferHealth(POLICY, clock)
    catalog = Catalog.build([INSTRUMENT], SUPPLIERS, OFFERS)
    async with SqlStore(f"sqlite:///{tmp_path / 'gridgate.db'}") as store:
        await store.insert_usage(deliveries("a/text-prime/m", clock, ttft_ms=6000, count=5))
        await store.insert_usage(deliveries("b/text-prime/m", clock, ttft_ms=300, count=5))

        assert await share_round(store, health, catalog, clock) == 1
        assert health.state("a/text-prime/m") == "ejected"
        assert health.state("b/text-prime/m") == "healthy"
        reason = health.figures("a/text-prime/m").reason or ""
        assert "across processes (5 deliveries)" in reason and "TTFT" in reason

        # after the cool-down it goes on probation here; the old measurements no longer count
        clock.advance(31)
        assert health.state("a/text-prime/m") == "probation"
        assert await share_round(store, health, catalog, clock) == 0
        assert health.state("a/text-prime/m") == "probation"

        # but new bad deliveries from the fleet do
        clock.advance(1)
        await store.insert_usage(deliveries("a/text-prime/m", clock, ttft_ms=6000, count=5))
        assert await share_round(store, health, catalog, clock) == 0  # on probation: local
        assert health.state("a/text-prime/m") == "probation"


async def test_too_few_fleet_deliveries_eject_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    health = OfferHealth(POLICY, clock)
    catalog = Catalog.build([INSTRUMENT], SUPPLIERS, OFFERS)
    async with SqlStore(f"sqlite:///{tmp_path / 'gridgate.db'}") as store:
        await store.insert_usage(deliveries("a/text-prime/m", clock, ttft_ms=6000, count=4))
        assert await share_round(store, health, catalog, clock) == 0
        assert health.state("a/text-prime/m") == "healthy"
