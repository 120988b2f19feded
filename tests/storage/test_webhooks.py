"""The ``WebhookStore`` contract and the outbox writes of other parts (a key's revocation, the
``balance.low`` crossing of a hold or a debit), against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import Connection, literal, select

from gridgate.storage.ports.webhooks import WebhookEndpoint, WebhookEvent
from gridgate.storage.sql import SqlStore
from gridgate.storage.sql.webhook_outbox import event_insert_from, insert_event, insert_event_once
from tests.storage.helpers import LATER, NOW, _funded, _key


def _endpoint(ident: str, account_id: str | None, *events: str) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=ident,
        account_id=account_id,
        url=f"http://127.0.0.1:9/{ident}",
        secret="whsec_test",
        events=events or ("*",),
        enabled=True,
        created_us=NOW - 1,
    )


async def _hold(store: SqlStore, account_id: str, hold_id: str, amount: int) -> int | None:
    result = await store.place_hold(
        hold_id=hold_id,
        account_id=account_id,
        key_id=None,
        amount=amount,
        expires_us=LATER,
        now_us=NOW,
    )
    return result.balance if result.hold is not None else None


async def test_key_revocation_writes_one_event(store: SqlStore) -> None:
    account = await _funded(store, 0)
    key = await _key(store, account.id)
    await store.revoke_key(key.id)
    await store.revoke_key(key.id)  # a second revoke changes nothing, announces nothing
    listed = await store.list_events(None)
    assert [e.event.type for e in listed] == ["key.revoked"]
    event = listed[0].event
    assert event.account_id == account.id
    assert json.loads(event.payload)["key_id"] == key.id


async def test_balance_low_fires_on_the_crossing_only(store: SqlStore) -> None:
    account = await _funded(store, 1_000)
    assert await _hold(store, account.id, "h0", 100) == 900  # no threshold: no event
    await store.set_balance_threshold(account.id, 500)
    assert await store.balance_threshold(account.id) == 500
    assert await _hold(store, account.id, "h1", 300) == 600  # still above
    assert await _hold(store, account.id, "h2", 100) == 500  # at the threshold: not below
    assert await _hold(store, account.id, "h3", 1) == 499  # crossed: 500 ≥ 500 > 499
    assert await _hold(store, account.id, "h4", 99) == 400  # below already: no new event
    events = [e.event for e in await store.list_events(account.id)]
    assert [(e.id, e.type) for e in events] == [("evt_low_h3", "balance.low")]
    assert json.loads(events[0].payload) == {
        "account_id": account.id,
        "balance_nanos": 499,
        "threshold_nanos": 500,
    }

    # a lease given back lifts the balance over the threshold, and the next lease crosses it
    # again: one event per fall, not one per lease (firing disarmed the threshold)
    await store.release_hold("h4", now_us=NOW)
    await store.release_hold("h3", now_us=NOW)  # 500
    await store.release_hold("h2", now_us=NOW)  # 600
    assert await _hold(store, account.id, "h5", 200) == 400
    assert len(await store.list_events(account.id)) == 1

    await store.credit(account.id, 200)  # a top-up back over it re-arms it: 600
    await store.credit(account.id, -150, kind="adjustment")  # an operator's debit crosses: 450
    assert [e.event.type for e in await store.list_events(account.id)] == ["balance.low"] * 2
    await store.credit(account.id, 100)  # 550: re-armed
    assert await _hold(store, account.id, "h6", 51) == 499  # a hold crosses again
    assert "evt_low_h6" in {e.event.id for e in await store.list_events(account.id)}
    await store.set_balance_threshold(account.id, None)
    assert await store.balance_threshold(account.id) is None
    await store.credit(account.id, 100)
    assert await _hold(store, account.id, "h7", 150) == 449  # no threshold: no event
    assert len(await store.list_events(account.id)) == 3


async def test_fan_out_claim_finish_and_replay(store: SqlStore) -> None:
    a = await _funded(store, 0)
    b = await _funded(store, 0)
    await store.create_endpoint(_endpoint("we_global", None))
    await store.create_endpoint(_endpoint("we_a", a.id, "key.revoked"))
    await store.create_endpoint(_endpoint("we_b", b.id))
    event = WebhookEvent(
        id="evt_1", type="key.revoked", account_id=a.id, payload='{"x":1}', created_us=NOW
    )
    assert await store.add_event(event)
    assert not await store.add_event(event)  # the same id again: ignored
    assert await store.fan_out() == 2  # the global endpoint and a's, not b's
    assert await store.fan_out() == 0
    first = await store.claim_due(NOW, lease_us=30_000_000, claim="c1", limit=10)
    assert sorted(c.endpoint.id for c in first) == ["we_a", "we_global"]
    assert all(c.attempt == 1 for c in first)
    # claimed: nobody else gets them until the claim expires
    assert await store.claim_due(NOW + 1, lease_us=30_000_000, claim="c2", limit=10) == []
    [done] = [c for c in first if c.endpoint.id == "we_a"]
    [retry] = [c for c in first if c.endpoint.id == "we_global"]
    assert await store.finish_delivery(
        done,
        status="delivered",
        now_us=NOW + 2,
        next_attempt_us=NOW + 2,
        http_status=200,
        error=None,
    )
    assert await store.finish_delivery(
        retry,
        status="pending",
        now_us=NOW + 2,
        next_attempt_us=NOW + 10,
        http_status=503,
        error="503",
    )
    assert not await store.finish_delivery(  # the claim is spent
        retry,
        status="delivered",
        now_us=NOW + 3,
        next_attempt_us=NOW + 3,
        http_status=200,
        error=None,
    )
    again = await store.claim_due(NOW + 10, lease_us=30_000_000, claim="c3", limit=10)
    assert [(c.endpoint.id, c.attempt) for c in again] == [(retry.endpoint.id, 2)]
    [listed] = await store.list_events(a.id)
    # an account sees its own endpoints' deliveries only
    assert [(d.endpoint_id, d.status, d.attempts) for d in listed.deliveries] == [
        ("we_a", "delivered", 1)
    ]
    assert await store.replay_event("evt_1", NOW + 20) == 2
    replayed = await store.claim_due(NOW + 20, lease_us=30_000_000, claim="c4", limit=10)
    assert sorted((c.event.id, c.attempt) for c in replayed) == [("evt_1", 1), ("evt_1", 1)]
    assert await store.delete_endpoint("we_a")
    assert not await store.delete_endpoint("we_a")
    assert sorted(e.id for e in await store.list_endpoints()) == ["we_b", "we_global"]


async def test_an_endpoint_gets_no_event_from_before_it_existed(store: SqlStore) -> None:
    await store.add_event(
        WebhookEvent(
            id="evt_old", type="offer.ejected", account_id=None, payload="{}", created_us=NOW - 5
        )
    )
    await store.create_endpoint(_endpoint("we_late", None))
    assert await store.fan_out() == 0


async def test_an_event_is_committed_with_its_change_or_not_at_all(store: SqlStore) -> None:
    """``insert_event`` (what the spend caps call for ``cap.reached``) joins the transaction it
    is given: rolled back with it, committed with it; ``insert_event_once`` and
    ``event_insert_from(once=True)`` write a deterministic id once."""
    account = await _funded(store, 0)

    class Rollback(Exception):
        pass

    def fails(conn: Connection) -> None:
        insert_event(conn, "cap.reached", account.id, {"cap": "daily"}, NOW)
        raise Rollback

    with pytest.raises(Rollback):
        await store._write(fails)
    assert await store.list_events(account.id) == []

    data = {"cap": "daily", "limit_nanos": 5}
    first = await store._write(
        lambda conn: insert_event_once(conn, "cap.reached", account.id, data, NOW, event_id="evt_c")
    )
    again = await store._write(
        lambda conn: insert_event_once(conn, "cap.reached", account.id, data, NOW, event_id="evt_c")
    )
    assert (first, again) == (True, False)
    rows = select(
        literal("evt_c"),
        literal("cap.reached"),
        literal(account.id),
        literal("{}"),
        literal(NOW),
    )
    stmt = event_insert_from(rows, dialect=store.dialect, once=True)
    await store._write(lambda conn: conn.execute(stmt))
    [event] = await store.list_events(account.id)
    assert (event.event.id, json.loads(event.event.payload)) == ("evt_c", data)


async def test_two_processes_claiming_at_once_never_take_the_same_delivery(
    store: SqlStore, db_url: str
) -> None:
    await store.create_endpoint(_endpoint("we_all", None))
    for n in range(30):
        event = WebhookEvent(
            id=f"evt_{n:02d}", type="offer.ejected", account_id=None, payload="{}", created_us=NOW
        )
        await store.add_event(event)
    assert await store.fan_out() == 30
    async with SqlStore(db_url) as other:  # another process's store on the same database
        claims = await asyncio.gather(
            *(
                s.claim_due(NOW, lease_us=30_000_000, claim=f"c{i}", limit=10)
                for i, s in enumerate([store, other, store, other])
            )
        )
    taken = [c.event.id for batch in claims for c in batch]
    assert len(taken) == len(set(taken)) == 30  # each delivery claimed exactly once
    assert all(c.attempt == 1 for batch in claims for c in batch)
