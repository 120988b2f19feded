"""Migrations, URLs, lifecycle and error translation."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Connection, MetaData, insert, inspect, text
from sqlalchemy.exc import IntegrityError

from gridgate.storage import migrations, schema
from gridgate.storage.ports.errors import StorageError
from gridgate.storage.runner import driver_url
from gridgate.storage.sql import SqlStore, open_store
from tests.storage.conftest import raw_sql, run_sql

# The shape version 1 created when released: migrations.V1_METADATA must never change.
V1_FINGERPRINT = "5d50d8ee7001e4149688e3f4a073680545651fe4626de312877a86be70fc659f"
# The shape of schema.py (the newest version). If this fails you changed schema.py: add a
# migration step for the change (literal DDL in migrations.py), then update the fingerprint.
LATEST_FINGERPRINT = "b7b4fc4c3726051a56394d9f9c870a985e46a5b4e38ad1cd7af7aaec620d473c"


def _shape(metadata: MetaData) -> list[object]:
    shape: list[object] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        columns = [
            (c.name, type(c.type).__name__, c.nullable, c.primary_key, c.unique or False)
            for c in table.columns
        ]
        fks = sorted((fk.parent.name, fk.target_fullname) for fk in table.foreign_keys)
        indexes = sorted((str(ix.name), [c.name for c in ix.columns]) for ix in table.indexes)
        shape.append([table.name, columns, fks, indexes])
    return shape


def _fingerprint(metadata: MetaData) -> str:
    return hashlib.sha256(json.dumps(_shape(metadata)).encode()).hexdigest()


def test_version_1_is_frozen_as_released() -> None:
    assert _fingerprint(migrations.V1_METADATA) == V1_FINGERPRINT, (
        "migrations.V1_METADATA changed: version 1 is released and must create what it did"
    )


def test_schema_matches_the_latest_migration() -> None:
    digest = _fingerprint(schema.metadata)
    assert digest == LATEST_FINGERPRINT, (
        "schema.py changed: add a migration step for the change, "
        f"then set LATEST_FINGERPRINT = {digest!r}"
    )


def _indexes(conn: Connection) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Our named indexes in the database: name → (table, columns)."""
    return {
        str(ix["name"]): (table, tuple(str(c) for c in ix["column_names"]))
        for table in inspect(conn).get_table_names()
        for ix in inspect(conn).get_indexes(table)
        if str(ix["name"]).startswith("ix_")
    }


_DECLARED_INDEXES = {
    str(ix.name): (t.name, tuple(c.name for c in ix.columns))
    for t in schema.metadata.tables.values()
    for ix in t.indexes
}


async def test_migrated_database_has_every_declared_index(store: SqlStore, db_url: str) -> None:
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


async def test_a_version_1_database_is_upgraded_in_place(db_url: str) -> None:
    def create_version_1(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        migrations.MIGRATIONS[0].apply(conn)
        conn.execute(
            insert(schema.schema_migrations).values(version=1, name="initial", applied_us=0)
        )
        conn.execute(
            insert(schema.accounts).values(id="acct_old", name="old", balance=0, created_us=1)
        )

    await run_sql(db_url, create_version_1)
    assert "ix_usage_records_hold_id" not in await run_sql(db_url, _indexes)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        await store.credit("acct_old", 50)
        balance = await store.account_balance("acct_old")
        assert balance is not None
        assert balance.effective == 50
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


_V2_INSTRUMENT = (
    "INSERT INTO instruments (id, display_name, quality_floor, ttft_ceiling_ms,"
    " throughput_floor_tps, context_floor, max_output_floor, context_length, max_input_tokens,"
    " max_completion_tokens, image_input, reasoning_efforts, default_reasoning_effort, enabled)"
    " VALUES (:id, 'Old', 0, 4620, 40, 0, 0, 8192, 8000, 1024, false, '[]', NULL, true)"
)
_V2_USAGE = (
    "INSERT INTO usage_records (request_id, created_us, account_id, key_id, instrument, supplier,"
    " offer_id, upstream_model, stream, input_tokens, output_tokens, reasoning_tokens,"
    " cached_tokens, usage_estimated, price_input_per_m, price_output_per_m, cost, hold_id,"
    " ttft_us, duration_us, outcome, status, billed, error) VALUES (:id, 5, 'acct_old',"
    " 'key_old', 'text-old', 'sim-a', 'sim-a/text-old', 'm', true, 10, 64, 0, 0, false, 1, 2, 3,"
    " NULL, 900000, 1500000, 'ok', 200, true, NULL)"
)


async def test_a_version_2_database_gets_spec_columns_with_defaults(db_url: str) -> None:
    """Version 3 adds the instruments' billing choice (existing ones: out-of-spec deliveries are
    not billed) and the usage records' spec columns (existing records: not judged)."""

    def create_version_2(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS[:2]:
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(text(_V2_INSTRUMENT), {"id": "text-old"})
        conn.execute(text(_V2_USAGE), {"id": "req-old"})

    await run_sql(db_url, create_version_2)
    assert "ix_usage_records_offer_created" not in await run_sql(db_url, _indexes)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        instruments, _, _ = await store.load_catalog()
        assert [(i.id, i.bill_out_of_spec) for i in instruments] == [("text-old", False)]
        [old] = await store.list_usage()
        assert (old.request_id, old.ttft_us, old.output_tokens) == ("req-old", 900_000, 64)
        assert (old.generation_us, old.in_spec, old.spec_note) == (None, None, None)
        [row] = await store.offer_deliveries(0, 10)
        assert (row.offer_id, row.ttft_us, row.generation_us, row.in_spec) == (
            "sim-a/text-old",
            900_000,
            None,
            None,
        )
    # the column default holds for an insert that does not name the column
    await raw_sql(db_url, _V2_INSTRUMENT, {"id": "text-older"})
    found = await raw_sql(db_url, "SELECT id, bill_out_of_spec FROM instruments ORDER BY id")
    assert [(str(r[0]), bool(r[1])) for r in found] == [("text-old", False), ("text-older", False)]
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


async def _versions(url: str) -> list[tuple[int, str]]:
    rows = await raw_sql(url, "SELECT version, name FROM schema_migrations ORDER BY version")
    return [(int(r[0]), str(r[1])) for r in rows]


async def test_open_migrates_once_and_is_idempotent(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    await store.open()
    assert await store.schema_version() == migrations.LATEST_VERSION
    await store.close()
    await store.close()
    async with SqlStore(db_url) as again:
        assert await again.schema_version() == migrations.LATEST_VERSION
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]


async def test_migrated_database_has_every_table_and_column(store: SqlStore, db_url: str) -> None:
    found = await run_sql(
        db_url,
        lambda c: {
            t: {col["name"] for col in inspect(c).get_columns(t)}
            for t in inspect(c).get_table_names()
        },
    )
    expected = {t.name: {c.name for c in t.columns} for t in schema.metadata.tables.values()}
    assert found == expected


async def test_two_stores_opening_a_fresh_database_at_once(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        accounts = await asyncio.gather(*(s.create_account(f"s{i}") for i, s in enumerate(stores)))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    async with SqlStore(db_url) as store:
        assert {a.id for a in await store.list_accounts()} == {a.id for a in accounts}


async def test_a_newer_schema_is_refused(db_url: str) -> None:
    async with SqlStore(db_url):
        pass
    await raw_sql(
        db_url,
        "INSERT INTO schema_migrations (version, name, applied_us) VALUES (999, 'future', 0)",
    )
    store = SqlStore(db_url)
    with pytest.raises(StorageError, match="newer"):
        await store.open()
    await store.close()


async def test_store_must_be_open() -> None:
    store = SqlStore("sqlite:///:memory:")
    with pytest.raises(StorageError, match="not open"):
        await store.list_accounts()


async def test_driver_errors_become_storage_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    store = SqlStore(f"sqlite:///{junk}")
    with pytest.raises(StorageError, match="not a database") as info:
        await store.open()
    assert info.value.__cause__ is not None
    await store.close()
    nowhere = SqlStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(StorageError, match="unable to open") as info:
        await nowhere.open()
    assert info.value.__cause__ is not None


async def test_duplicate_hold_id_is_a_storage_error(store: SqlStore) -> None:
    account = await store.create_account("a")
    await store.credit(account.id, 100)
    kw = {"account_id": account.id, "key_id": None, "amount": 10, "expires_us": 9, "now_us": 1}
    await store.place_hold(hold_id="dup", **kw)  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        await store.place_hold(hold_id="dup", **kw)  # type: ignore[arg-type]
    assert (await store.get_account(account.id)).balance == 90  # type: ignore[union-attr]


async def test_memory_database_works_with_concurrent_tasks() -> None:
    async with open_store("sqlite:///:memory:") as store:
        account = await store.create_account("m")
        await store.credit(account.id, 50)
        key = await store.create_key(  # no loop-thread reader for :memory:: the worker path
            account_id=account.id, name="k", prefix="gg-", secret_hash="m", expires_us=None
        )
        assert await store.get_key_by_hash("m") == key
        results = await asyncio.gather(
            *(
                store.place_hold(
                    hold_id=f"h{i}",
                    account_id=account.id,
                    key_id=None,
                    amount=10,
                    expires_us=9,
                    now_us=1,
                )
                for i in range(12)
            )
        )
        assert sum(r.hold is not None for r in results) == 5
        assert (await store.verify_ledger()).ok


@pytest.mark.parametrize(
    ("url", "driver", "database"),
    [
        ("sqlite:///relative/path.db", "sqlite+pysqlite", "relative/path.db"),
        ("sqlite:////abs/path.db", "sqlite+pysqlite", "/abs/path.db"),
        ("sqlite:///:memory:", "sqlite+pysqlite", ":memory:"),
        ("sqlite+aiosqlite:///x.db", "sqlite+pysqlite", "x.db"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg", "test"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg", "db"),
    ],
)
def test_driver_url(url: str, driver: str, database: str) -> None:
    mapped, dialect = driver_url(url)
    assert (mapped.drivername, mapped.database) == (driver, database)
    assert dialect == driver.split("+")[0]


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url", ""])
def test_driver_url_rejects_other_databases(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        driver_url(url)
    with pytest.raises(ValueError, match="URL"):
        SqlStore(url)


_V3_OFFER = (
    "INSERT INTO offers (id, supplier, instrument, model, input_per_m, output_per_m, quality,"
    " context, max_output, capabilities, enabled) VALUES (:id, 'sim-a', 'text-old', 'm', 1, 2,"
    " 40, 8192, 1024, '[]', true)"
)


async def test_a_version_3_database_gets_limits_and_the_change_feed(db_url: str) -> None:
    """Version 4: existing offers are not disabled by an operator, seeding the catalog again
    keeps an operator's disable, and the limit and change tables start empty."""

    def create_version_3(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS[:3]:
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(text(_V3_OFFER), {"id": "sim-a/text-old"})

    await run_sql(db_url, create_version_3)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        _, _, [offer] = await store.load_catalog()
        assert offer.disabled_us is None
        assert await store.list_limits() == []
        assert await store.changes_since(0) == []
        disabled = await store.set_offer_disabled(offer.id, True)
        assert disabled.disabled_us is not None
        await store.upsert_catalog([], [], [msgspec.structs.replace(offer, quality=50.0)])
        _, _, [seeded] = await store.load_catalog()
        assert (seeded.quality, seeded.disabled_us) == (50.0, disabled.disabled_us)
        kinds = [(c.kind, c.subject) for c in await store.changes_since(0)]
        assert kinds == [("offer", offer.id), ("catalog", "*")]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


async def test_a_version_4_database_gets_people_and_the_audit_log(db_url: str) -> None:
    """Version 5: existing accounts keep working and gain users; the people tables and the
    audit log start empty, and the role rules hold in the database itself."""

    def create_version_4(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS[:4]:
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(
            insert(schema.accounts).values(id="acct_old", name="old", balance=0, created_us=1)
        )

    await run_sql(db_url, create_version_4)
    assert "ix_audit_log_created" not in await run_sql(db_url, _indexes)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        assert await store.list_users() == []
        assert await store.list_audit() == []
        user = await store.create_user(
            email="Owner@Example.com",
            name="Owner",
            role="owner",
            account_id="acct_old",
            password_hash="$argon2id$x",
        )
        assert (await store.list_users("acct_old")) == [user]
        entry = await store.append_audit("cli", "user.create", user.id, {"role": "owner"})
        assert await store.list_audit() == [entry]
    with pytest.raises(IntegrityError, match="ck_users_role_account"):  # operators: no account
        await raw_sql(
            db_url,
            "INSERT INTO users (id, email, name, role, account_id, password_hash, created_us)"
            " VALUES ('usr_x', 'x@example.com', 'x', 'operator', 'acct_old', 'h', 1)",
        )
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


async def test_a_version_6_database_gets_stored_responses(db_url: str) -> None:
    """Version 7: the stored-responses tables arrive empty, with their indexes, beside what the
    database held; and an item's kind is held to input or output by the database itself."""

    def create_version_6(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS[:6]:
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(
            insert(schema.accounts).values(id="acct_old", name="old", balance=0, created_us=1)
        )

    await run_sql(db_url, create_version_6)
    assert "ix_responses_expires" not in await run_sql(db_url, _indexes)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        assert await store.get_account("acct_old") is not None
        assert await store.get_response("acct_old", "resp_x", 0) is None
    assert await raw_sql(db_url, "SELECT count(*) FROM responses") == [(0,)]
    with pytest.raises(IntegrityError, match="ck_response_items_kind"):
        await raw_sql(
            db_url,
            "INSERT INTO response_items (response_id, position, kind, item_id, item)"
            " VALUES ('resp_x', 0, 'other', 'msg_1', '{}')",
        )
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES


async def test_a_version_7_database_gets_receipts(db_url: str) -> None:
    """Version 11: existing keys read their account's receipts (``own_usage_only`` false),
    existing usage records have no surface or request hash, and the signing-key table arrives
    empty."""

    def create_version_7(conn: Connection) -> None:
        schema.schema_migrations.create(conn)
        for step in migrations.MIGRATIONS:
            if step.version > 7:
                break
            step.apply(conn)
            conn.execute(
                insert(schema.schema_migrations).values(
                    version=step.version, name=step.name, applied_us=0
                )
            )
        conn.execute(
            insert(schema.accounts).values(id="acct_old", name="old", balance=0, created_us=1)
        )
        conn.execute(
            text(
                "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, created_us)"
                " VALUES ('key_old', 'acct_old', 'old', 'gg_old', 'hash_old', 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO usage_records (request_id, created_us, account_id, key_id,"
                " instrument, stream, input_tokens, output_tokens, reasoning_tokens,"
                " cached_tokens, usage_estimated, price_input_per_m, price_output_per_m, cost,"
                " duration_us, outcome, status, billed) VALUES ('req_old', 1, 'acct_old',"
                " 'key_old', 'text-prime', false, 1, 2, 0, 0, false, 0, 0, 3, 4, 'ok', 200, true)"
            )
        )

    await run_sql(db_url, create_version_7)
    async with SqlStore(db_url) as store:
        assert await store.schema_version() == migrations.LATEST_VERSION
        key = await store.get_key("key_old")
        assert key is not None and key.own_usage_only is False
        record = await store.get_usage("req_old")
        assert record is not None and record.cost == 3
        assert record.endpoint is None and record.request_hash is None
        assert await store.receipt_keys() == []
    assert await _versions(db_url) == [(m.version, m.name) for m in migrations.MIGRATIONS]
    assert await run_sql(db_url, _indexes) == _DECLARED_INDEXES
