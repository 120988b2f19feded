"""``offer.ejected``: offer health's ejection hook writes one event per offer and ejection
window, however many processes eject it (two outboxes on one database here); and the
management rules of ``Webhooks`` (who may add, see, remove and replay what)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gridgate.core.access import Actor
from gridgate.core.health.offer_health import Delivery, HealthPolicy, OfferHealth
from gridgate.core.outage import Outage
from gridgate.core.webhooks.endpoints import Webhooks
from gridgate.core.webhooks.outbox import WebhookOutbox
from gridgate.errors import NotFound, PermissionDenied, ValidationFailed
from gridgate.storage.records import InstrumentRecord
from gridgate.storage.sql import SqlStore
from tests.core.webhooks.test_delivery import ManualClock

PRIME = InstrumentRecord(
    id="text-prime",
    display_name="Text Prime",
    quality_floor=38,
    ttft_ceiling_ms=None,
    throughput_floor_tps=None,
    context_floor=128_000,
    max_output_floor=30_000,
    context_length=196_608,
    max_input_tokens=120_000,
    max_completion_tokens=131_072,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


def _process(store: SqlStore, clock: ManualClock) -> tuple[OfferHealth, WebhookOutbox]:
    """One gateway process's offer health, its ejections hooked to its outbox."""
    health = OfferHealth(HealthPolicy(breaker_failures=2, cooldown_s=5), clock)
    outbox = WebhookOutbox(store, clock, Outage(clock), ejection_window_s=60)
    health.on_eject = outbox.offer_ejected
    return health, outbox


async def _eject(health: OfferHealth, outbox: WebhookOutbox, offer_id: str) -> None:
    for _ in range(2):
        health.record(offer_id, PRIME, Delivery("error"))
    assert health.state(offer_id) == "ejected"
    await outbox.close()


async def test_processes_ejecting_one_offer_in_one_window_write_one_event(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    clock.seconds = 6_000.0  # the start of a 60 s window
    for _ in range(3):  # three processes
        await _eject(*_process(store, clock), "s/text-prime/m")
    await _eject(*_process(store, clock), "s/text-prime/other")
    events = await store.list_events(None, event_type="offer.ejected")
    assert sorted(json.loads(e.event.payload)["offer_id"] for e in events) == [
        "s/text-prime/m",
        "s/text-prime/other",
    ]
    assert all(e.event.account_id is None for e in events)  # the operator's event
    assert "circuit open" in json.loads(events[0].event.payload)["cause"]

    clock.advance(60)  # the next window: a new ejection is a new event
    await _eject(*_process(store, clock), "s/text-prime/m")
    assert len(await store.list_events(None, event_type="offer.ejected")) == 3


OPERATOR = Actor("u_o", "operator", None)


async def test_who_may_manage_which_webhooks(store: SqlStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    owner_a = Actor("u_a", "owner", a.id)
    member_a = Actor("u_m", "member", a.id)
    owner_b = Actor("u_b", "owner", b.id)
    hooks = Webhooks(store, ManualClock())

    mine = await hooks.add(owner_a, None, "https://hooks.example.com/a", ["key.revoked"])
    assert mine.endpoint.account_id == a.id
    assert mine.secret.startswith("whsec_")
    glob = await hooks.add(OPERATOR, None, "https://ops.example.com/all")
    assert glob.endpoint.account_id is None and glob.endpoint.events == ("*",)
    with pytest.raises(PermissionDenied):
        await hooks.add(member_a, None, "https://x.example.com")
    with pytest.raises(NotFound):
        await hooks.add(owner_b, a.id, "https://x.example.com")
    with pytest.raises(ValidationFailed):
        await hooks.add(owner_a, None, "file:///etc/passwd")

    assert [e.id for e in await hooks.list(member_a)] == [mine.endpoint.id]
    assert await hooks.list(owner_b) == []
    assert len(await hooks.list(OPERATOR)) == 2
    with pytest.raises(NotFound):
        await hooks.remove(owner_b, mine.endpoint.id)
    with pytest.raises(NotFound):  # a global endpoint is not an account's to see
        await hooks.remove(owner_a, glob.endpoint.id)

    key = await store.create_key(
        account_id=a.id, name="k", prefix="gg_x", secret_hash="h", expires_us=None
    )
    await store.revoke_key(key.id)
    await store.fan_out()
    [seen] = await hooks.events(member_a)
    assert [d.endpoint_id for d in seen.deliveries] == [mine.endpoint.id]  # not the global one
    assert await hooks.events(owner_b) == []
    [everything] = await hooks.events(OPERATOR)
    assert len(everything.deliveries) == 2
    with pytest.raises(NotFound):
        await hooks.replay(owner_b, seen.event.id)
    with pytest.raises(PermissionDenied):
        await hooks.replay(member_a, seen.event.id)
    assert await hooks.replay(owner_a, seen.event.id) == 1  # its own endpoint's only
    assert await hooks.replay(OPERATOR, seen.event.id) == 2

    with pytest.raises(PermissionDenied):
        await hooks.set_threshold(member_a, a.id, 5)
    await hooks.set_threshold(owner_a, a.id, 5_000_000_000)
    assert await hooks.threshold(member_a, a.id) == 5_000_000_000
    with pytest.raises(NotFound):
        await hooks.threshold(owner_b, a.id)
    await hooks.remove(owner_a, mine.endpoint.id)
    assert await hooks.list(owner_a) == []
