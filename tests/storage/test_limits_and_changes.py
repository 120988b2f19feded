"""The store's limit overrides, operator switches and change feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.records import (
    UNLIMITED,
    InstrumentRecord,
    LimitOverride,
    OfferRecord,
    SupplierRecord,
)
from gridgate.storage.sql import SqlStore


async def _key_id(store: SqlStore) -> tuple[str, str]:
    account = await store.create_account("acme")
    key = await store.create_key(
        account_id=account.id,
        name="k",
        prefix="gg_abc",
        secret_hash=secrets.token_hex(32),
        expires_us=None,
    )
    return account.id, key.id


async def _catalog(store: SqlStore) -> None:
    await store.upsert_catalog(
        [
            InstrumentRecord(
                id="text-prime",
                display_name="Prime",
                quality_floor=0,
                ttft_ceiling_ms=None,
                throughput_floor_tps=None,
                context_floor=0,
                max_output_floor=0,
                context_length=8192,
                max_input_tokens=8000,
                max_completion_tokens=1024,
            )
        ],
        [SupplierRecord(name="sim-a", wire="openai", base_url="http://127.0.0.1:1")],
        [
            OfferRecord(
                id="sim-a/text-prime",
                supplier="sim-a",
                instrument="text-prime",
                model="m",
                input_per_m=1,
                output_per_m=2,
                quality=40,
                context=8192,
                max_output=1024,
            )
        ],
    )


async def test_limits_are_set_replaced_and_removed(store: SqlStore) -> None:
    account_id, key_id = await _key_id(store)
    assert await store.get_limits("key", key_id) is None
    saved = await store.set_limits(
        LimitOverride(scope="key", subject=key_id, requests_per_minute=10, concurrent=UNLIMITED)
    )
    assert saved.updated_us > 0
    found = await store.get_limits("key", key_id)
    assert found is not None
    assert (found.requests_per_minute, found.tokens_per_minute, found.concurrent) == (
        10,
        None,
        UNLIMITED,
    )
    await store.set_limits(LimitOverride(scope="account", subject=account_id, tokens_per_minute=5))
    await store.set_limits(LimitOverride(scope="key", subject="*", requests_per_minute=60))
    listed = [(o.scope, o.subject) for o in await store.list_limits()]
    assert listed == sorted([("account", account_id), ("key", "*"), ("key", key_id)])
    # an empty override removes the row
    await store.set_limits(LimitOverride(scope="key", subject=key_id))
    assert await store.get_limits("key", key_id) is None


async def test_limits_of_an_unknown_subject_are_refused(store: SqlStore) -> None:
    for scope in ("key", "account", "instrument"):
        with pytest.raises(NotFoundInStore):
            await store.set_limits(
                LimitOverride(scope=scope, subject="nope", requests_per_minute=1)  # type: ignore[arg-type]
            )
    await _catalog(store)
    await store.set_limits(LimitOverride(scope="instrument", subject="text-prime", concurrent=3))
    assert [o.subject for o in await store.list_limits()] == ["text-prime"]


async def test_every_cached_change_is_announced_in_its_transaction(store: SqlStore) -> None:
    _, key_id = await _key_id(store)
    await _catalog(store)
    await store.set_limits(LimitOverride(scope="key", subject=key_id, requests_per_minute=1))
    await store.revoke_key(key_id)
    await store.set_offer_disabled("sim-a/text-prime", True)
    feed = await store.changes_since(0)
    assert [(c.kind, c.subject) for c in feed] == [
        ("catalog", "*"),
        ("limits", f"key:{key_id}"),
        ("key", key_id),
        ("offer", "sim-a/text-prime"),
    ]
    assert [c.id for c in feed] == sorted(c.id for c in feed)
    assert await store.changes_since(feed[-1].created_us + 1) == []
    # failures announce nothing
    with pytest.raises(NotFoundInStore):
        await store.revoke_key("key_missing")
    with pytest.raises(NotFoundInStore):
        await store.set_offer_disabled("missing", True)
    assert len(await store.changes_since(0)) == len(feed)
    assert await store.prune_changes(feed[-1].created_us + 1) == len(feed)
    assert await store.changes_since(0) == []


async def test_an_operators_disable_survives_catalog_seeding(store: SqlStore) -> None:
    await _catalog(store)
    first = await store.set_offer_disabled("sim-a/text-prime", True)
    again = await store.set_offer_disabled("sim-a/text-prime", True)
    assert first.disabled_us is not None and again.disabled_us == first.disabled_us
    await _catalog(store)  # a process starting up seeds the config's catalog again
    _, _, [offer] = await store.load_catalog()
    assert offer.disabled_us == first.disabled_us
    enabled = await store.set_offer_disabled("sim-a/text-prime", False)
    assert enabled.disabled_us is None
