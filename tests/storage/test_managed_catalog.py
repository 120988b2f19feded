"""The store's side of the management API, on SQLite and PostgreSQL: run-time catalog edits that
config seeding keeps, the offers' price history, audit notes written in the change's own
transaction, usage filtered and paged by the database, sums per day, and audit-log paging."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import Connection, insert

from gridgate.storage import migrations, schema
from gridgate.storage.ports.errors import Conflict, NotFoundInStore
from gridgate.storage.records import (
    AuditNote,
    InstrumentRecord,
    OfferRecord,
    SupplierRecord,
    UsageRecord,
)
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import run_sql

DAY = 86_400_000_000
NOW = 20_000 * DAY + 3_600_000_000  # 1 a.m. UTC on day 20000

PRIME = InstrumentRecord(
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
SUP_A = SupplierRecord(name="sim-a", wire="openai", base_url="http://127.0.0.1:1/v1")
SUP_B = SupplierRecord(name="sim-b", wire="anthropic", base_url="http://127.0.0.1:2/v1")


def offer(offer_id: str, supplier: str, input_per_m: int, output_per_m: int) -> OfferRecord:
    return OfferRecord(
        id=offer_id,
        supplier=supplier,
        instrument="text-prime",
        model="m",
        input_per_m=input_per_m,
        output_per_m=output_per_m,
        quality=60,
        context=200_000,
        max_output=64_000,
    )


A = offer("sim-a/text-prime/m", "sim-a", 100, 400)
B = offer("sim-b/text-prime/m", "sim-b", 200, 300)
NOTE = AuditNote(actor="usr_op", action="offer.update", detail={"input_usd_per_m": "0.000001"})


async def seeded(store: SqlStore) -> None:
    await store.upsert_catalog([PRIME], [SUP_A, SUP_B], [A, B])


async def test_an_edit_survives_seeding_and_an_unedited_row_follows_the_config(
    store: SqlStore,
) -> None:
    await seeded(store)
    edited = await store.save_offer(
        msgspec.structs.replace(A, input_per_m=111), create=False, audit=NOTE
    )
    assert edited.input_per_m == 111 and edited.edited_us is not None
    await store.upsert_catalog([], [], [msgspec.structs.replace(A, input_per_m=5),
                                        msgspec.structs.replace(B, input_per_m=6)])  # fmt: skip
    _, _, offers = await store.load_catalog()
    by_id = {o.id: o for o in offers}
    assert by_id[A.id].input_per_m == 111  # the operator's price stands
    assert by_id[B.id].input_per_m == 6 and by_id[B.id].edited_us is None  # config's
    [entry] = await store.list_audit(subject=A.id)
    assert (entry.actor, entry.action, entry.detail) == (
        "usr_op",
        "offer.update",
        {"input_usd_per_m": "0.000001"},
    )
    kinds = [(c.kind, c.subject) for c in await store.changes_since(0)]
    assert ("offer", A.id) in kinds


async def test_saving_creates_or_replaces_and_says_when_it_cannot(store: SqlStore) -> None:
    await seeded(store)
    with pytest.raises(Conflict):
        await store.save_offer(A, create=True)
    with pytest.raises(NotFoundInStore):
        await store.save_offer(offer("nope", "sim-a", 1, 1), create=False)
    with pytest.raises(Conflict):
        await store.save_supplier(SUP_A, create=True)
    with pytest.raises(NotFoundInStore):
        await store.save_instrument(msgspec.structs.replace(PRIME, id="text-x"), create=False)
    new = await store.save_supplier(
        SupplierRecord(name="sim-c", wire="openai", base_url="http://c/v1"), create=True
    )
    assert new.edited_us is not None
    made = await store.save_instrument(
        msgspec.structs.replace(PRIME, id="text-x", display_name="X"), create=True
    )
    assert made.display_name == "X"
    instruments, suppliers, _ = await store.load_catalog()
    assert {i.id for i in instruments} == {"text-prime", "text-x"}
    assert {s.name for s in suppliers} == {"sim-a", "sim-b", "sim-c"}
    assert await store.list_audit() == []  # no note was given


async def test_a_failed_change_writes_no_audit_entry(store: SqlStore) -> None:
    note = AuditNote(actor="usr_x", action="api_key.create")
    with pytest.raises(NotFoundInStore):
        await store.create_key(
            account_id="acct_missing",
            name="k",
            prefix="gg_x",
            secret_hash="h" * 64,
            expires_us=None,
            audit=note,
        )
    assert await store.list_audit() == []
    account = await store.create_account("a", audit=AuditNote(actor="cli", action="account.create"))
    key = await store.create_key(
        account_id=account.id,
        name="k",
        prefix="gg_x",
        secret_hash="h" * 64,
        expires_us=None,
        audit=note,
    )
    revoke = AuditNote(actor="usr_x", action="api_key.revoke")
    await store.revoke_key(key.id, audit=revoke)
    await store.revoke_key(key.id, audit=revoke)  # changes nothing: no second entry
    assert [(e.action, e.subject) for e in await store.list_audit()] == [
        ("api_key.revoke", key.id),
        ("api_key.create", key.id),
        ("account.create", account.id),
    ]


async def test_every_catalog_write_keeps_the_price_history(store: SqlStore) -> None:
    await seeded(store)
    first = await store.price_history("text-prime")
    assert [(p.offer_id, p.input_per_m, p.output_per_m, p.available) for p in first] == [
        (A.id, 100, 400, True),
        (B.id, 200, 300, True),
    ]
    await seeded(store)  # the same catalog again: nothing new
    assert await store.price_history("text-prime") == first
    await store.save_offer(msgspec.structs.replace(A, output_per_m=450), create=False)
    await store.set_offer_disabled(B.id, True)
    await store.save_supplier(msgspec.structs.replace(SUP_A, enabled=False), create=False)
    later = (await store.price_history("text-prime"))[2:]
    assert [(p.offer_id, p.input_per_m, p.output_per_m, p.available) for p in later] == [
        (A.id, 100, 450, True),
        (B.id, 200, 300, False),
        (A.id, 100, 450, False),  # its supplier is off
    ]
    assert all(b.created_us >= a.created_us for a, b in zip(first + later, later, strict=False))
    assert await store.price_history("text-other") == []


def usage(request_id: str, created_us: int, **kw: object) -> UsageRecord:
    fields: dict[str, object] = {
        "account_id": "acct_x",
        "key_id": "key_1",
        "instrument": "text-prime",
        "supplier": "sim-a",
        "offer_id": A.id,
        "upstream_model": "m",
        "stream": False,
        **kw,
    }
    return UsageRecord(request_id=request_id, created_us=created_us, **fields)  # type: ignore[arg-type]


async def test_usage_is_filtered_and_paged_by_the_database(store: SqlStore) -> None:
    await store.insert_usage(
        [
            usage("r1", NOW + 1),
            usage("r2", NOW + 2, key_id="key_2"),
            usage("r3", NOW + 3, instrument="text-max"),
            usage("r4", NOW + 3),
            usage("r5", NOW + 4, account_id="acct_y"),
        ]
    )

    async def ids(**kw: object) -> list[str]:
        return [r.request_id for r in await store.list_usage(**kw)]  # type: ignore[arg-type]

    assert await ids(account_id="acct_x") == ["r4", "r3", "r2", "r1"]
    assert await ids(account_id="acct_x", key_id="key_1") == ["r4", "r3", "r1"]
    assert await ids(account_id="acct_x", instrument="text-prime") == ["r4", "r2", "r1"]
    assert await ids(account_id="acct_x", before=(NOW + 3, "r4")) == ["r3", "r2", "r1"]
    assert await ids(account_id="acct_x", before=(NOW + 3, "r3"), limit=1) == ["r2"]
    assert await ids(key_id="key_1", since_us=NOW + 2, until_us=NOW + 4) == ["r4", "r3"]


async def test_usage_is_summed_per_utc_day_and_instrument(store: SqlStore) -> None:
    await store.insert_usage(
        [
            usage("a", NOW - DAY, input_tokens=10, output_tokens=1, cost=100),
            usage("b", NOW, input_tokens=20, output_tokens=2, cost=200),
            usage("c", NOW + 5, input_tokens=30, output_tokens=3, cost=300, billed=False),
            usage("d", NOW + 6, instrument="text-max", cost=7),
            usage("e", NOW + DAY - 3_600_000_001, cost=1),  # 23:59:59.999999, still day 20000
            usage("f", NOW, account_id="acct_y", cost=10_000),
        ]
    )
    sums = await store.usage_daily(account_id="acct_x")
    assert [(d.day, d.instrument, d.requests, d.billed_requests, d.cost) for d in sums] == [
        (19_999, "text-prime", 1, 1, 100),
        (20_000, "text-max", 1, 1, 7),
        (20_000, "text-prime", 3, 2, 501),
    ]
    prime = next(d for d in sums if d.day == 20_000 and d.instrument == "text-prime")
    assert (prime.input_tokens, prime.output_tokens) == (50, 5)
    since = await store.usage_daily(account_id="acct_x", since_us=NOW, instrument="text-max")
    assert [(d.day, d.cost) for d in since] == [(20_000, 7)]
    assert [d.cost for d in await store.usage_daily()] == [100, 7, 10_501]


async def test_the_audit_log_pages_and_filters(store: SqlStore) -> None:
    for i in range(5):
        await store.append_audit(f"usr_{i % 2}", "thing.do" if i < 3 else "thing.undo", "s", {})
    every = await store.list_audit()
    assert [e.id for e in every] == sorted((e.id for e in every), reverse=True)
    assert [e.actor for e in await store.list_audit(actor="usr_1")] == ["usr_1", "usr_1"]
    assert len(await store.list_audit(action="thing.undo")) == 2
    older = await store.list_audit(before_id=every[1].id, limit=2)
    assert [e.id for e in older] == [every[2].id, every[3].id]


async def test_a_version_5_database_starts_its_price_history_from_the_catalog(
    db_url: str,
) -> None:
    def create_version_5(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS[:5]:
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(
            insert(schema.suppliers).values(
                name="sim-a", wire="openai", base_url="http://a", zero_retention=True, enabled=True
            )
        )
        for offer_id, disabled in (("o-live", None), ("o-off", 5)):
            conn.execute(
                insert(schema.offers).values(
                    id=offer_id, supplier="sim-a", instrument="text-prime", model="m",
                    input_per_m=1, output_per_m=2, quality=50, context=10, max_output=5,
                    capabilities="[]", enabled=True, disabled_us=disabled,
                )
            )  # fmt: skip

    await run_sql(db_url, create_version_5)
    async with SqlStore(db_url) as store:
        history = await store.price_history("text-prime")
        assert {(p.offer_id, p.available) for p in history} == {("o-live", True), ("o-off", False)}
        _, _, offers = await store.load_catalog()
        assert all(o.edited_us is None for o in offers)
