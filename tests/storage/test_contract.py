"""The ``Store`` contract, run against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import re
import secrets
import sqlite3
from pathlib import Path

import pytest

from gridgate.storage.ports.errors import IdempotencyConflict, NotFoundInStore, StorageError
from gridgate.storage.ports.ledger import AccountBalance
from gridgate.storage.ports.store import Store
from gridgate.storage.records import (
    AccountRecord,
    DeliveryRow,
    InstrumentRecord,
    KeyRecord,
    OfferRecord,
    SupplierRecord,
    UsageRecord,
)
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql

NOW = 1_700_000_000_000_000
LATER = NOW + 60_000_000


def _hash() -> str:
    return secrets.token_hex(32)


async def _funded(store: Store, amount: int) -> AccountRecord:
    account = await store.create_account("acme")
    if amount:
        await store.credit(account.id, amount)
    return account


async def _key(store: Store, account_id: str, *, expires_us: int | None = None) -> KeyRecord:
    return await store.create_key(
        account_id=account_id,
        name="k",
        prefix="gg-abc",
        secret_hash=_hash(),
        expires_us=expires_us,
    )


async def _balance(store: Store, account_id: str) -> int:
    account = await store.get_account(account_id)
    assert account is not None
    return account.balance


async def _ledger_sum(store: Store, account_id: str) -> int:
    return sum(e.amount for e in await store.entries(account_id))


def test_sql_store_is_a_store() -> None:
    store: Store = SqlStore("sqlite:///:memory:")
    assert isinstance(store, SqlStore)


# -- accounts ---------------------------------------------------------------------------------


async def test_create_get_list_accounts(store: SqlStore) -> None:
    a = await store.create_account("alpha")
    b = await store.create_account("beta")
    assert re.fullmatch(r"acct_[0-9a-f]{24}", a.id)
    assert a.balance == 0
    assert a.name == "alpha"
    assert await store.get_account(a.id) == a
    assert await store.get_account("acct_missing") is None
    listed = await store.list_accounts()
    assert [x.id for x in listed] == [a.id, b.id]


async def test_credit_appends_and_moves_balance(store: SqlStore) -> None:
    a = await store.create_account("a")
    entry = await store.credit(a.id, 5_000, memo="top-up")
    assert (entry.kind, entry.amount, entry.memo, entry.account_id) == (
        "credit",
        5_000,
        "top-up",
        a.id,
    )
    await store.credit(a.id, 7)
    assert await _balance(store, a.id) == 5_007
    assert await store.entries(a.id) == [entry, (await store.entries(a.id))[1]]
    assert await _ledger_sum(store, a.id) == 5_007


async def test_credit_validation(store: SqlStore) -> None:
    a = await store.create_account("a")
    with pytest.raises(ValueError, match="positive"):
        await store.credit(a.id, 0)
    with pytest.raises(ValueError, match="positive"):
        await store.credit(a.id, -5)
    with pytest.raises(NotFoundInStore):
        await store.credit("acct_nope", 10)
    with pytest.raises(NotFoundInStore):
        await store.credit("acct_nope", -10, kind="adjustment")
    assert await store.entries(a.id) == []


async def test_credit_idempotency(store: SqlStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    first = await store.credit(a.id, 1_000, idempotency_key="pay-1")
    again = await store.credit(a.id, 1_000, idempotency_key="pay-1", memo="other memo")
    assert again == first
    assert await _balance(store, a.id) == 1_000
    with pytest.raises(IdempotencyConflict):
        await store.credit(a.id, 2_000, idempotency_key="pay-1")
    with pytest.raises(IdempotencyConflict):
        await store.credit(b.id, 1_000, idempotency_key="pay-1")
    with pytest.raises(IdempotencyConflict):
        await store.credit(a.id, 1_000, idempotency_key="pay-1", kind="adjustment")
    assert await _balance(store, a.id) == 1_000
    assert await _balance(store, b.id) == 0
    assert len(await store.entries(a.id)) == 1


async def test_concurrent_replays_of_one_idempotency_key_credit_once(store: SqlStore) -> None:
    import asyncio

    a = await store.create_account("a")
    results = await asyncio.gather(
        *(store.credit(a.id, 300, idempotency_key="same") for _ in range(8))
    )
    assert len({r.id for r in results}) == 1
    assert await _balance(store, a.id) == 300
    assert (await store.verify_ledger()).ok


async def test_adjustment_any_sign_but_never_below_zero(store: SqlStore) -> None:
    a = await _funded(store, 100)
    down = await store.credit(a.id, -60, kind="adjustment", memo="goodwill reversal")
    assert (down.kind, down.amount) == ("adjustment", -60)
    with pytest.raises(ValueError, match="below zero"):
        await store.credit(a.id, -41, kind="adjustment")
    assert await _balance(store, a.id) == 40
    await store.credit(a.id, -40, kind="adjustment")
    assert await _balance(store, a.id) == 0
    assert await _ledger_sum(store, a.id) == 0


# -- keys -------------------------------------------------------------------------------------


async def test_keys_create_get_list(store: SqlStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    k1 = await store.create_key(
        account_id=a.id, name="prod", prefix="gg-AbCd", secret_hash="h1", expires_us=LATER
    )
    k2 = await store.create_key(
        account_id=b.id, name="dev", prefix="gg-EfGh", secret_hash="h2", expires_us=None
    )
    assert re.fullmatch(r"key_[0-9a-f]{24}", k1.id)
    assert (k1.account_id, k1.name, k1.prefix, k1.expires_us) == (a.id, "prod", "gg-AbCd", LATER)
    assert k1.revoked_us is None
    assert k1.last_used_us is None
    assert await store.get_key(k1.id) == k1
    assert await store.get_key_by_hash("h2") == k2
    assert await store.get_key_by_hash("nope") is None
    assert await store.get_key("key_nope") is None
    assert await store.list_keys(a.id) == [k1]
    assert await store.list_keys() == [k1, k2]
    with pytest.raises(NotFoundInStore):
        await _key(store, "acct_nope")


async def test_key_lookup_sees_another_stores_writes_at_once(store: SqlStore, db_url: str) -> None:
    a = await store.create_account("a")
    k = await _key(store, a.id)
    assert await store.get_key_by_hash(k.secret_hash) == k
    async with SqlStore(db_url) as other:
        revoked = await other.revoke_key(k.id)
        assert await store.get_key_by_hash(k.secret_hash) == revoked
        created = await _key(other, a.id)
        assert await store.get_key_by_hash(created.secret_hash) == created
        await other.touch_keys({created.id: NOW})
        touched = await store.get_key_by_hash(created.secret_hash)
        assert touched is not None
        assert touched.last_used_us == NOW


async def test_sqlite_key_lookup_runs_in_the_calling_thread(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        a = await store.create_account("a")
        k = await _key(store, a.id)
        for secret_hash, expected in [(k.secret_hash, k), ("unknown", None)]:
            lookup = store.get_key_by_hash(secret_hash)
            with pytest.raises(StopIteration) as done:  # finished without ever suspending
                lookup.send(None)
            assert done.value.value == expected

        # No read transaction outlives a lookup (it would pin an old snapshot and keep the WAL
        # from being reset): a TRUNCATE checkpoint, which waits for every reader, goes through.
        def truncate_checkpoint_is_blocked() -> bool:
            probe = sqlite3.connect(path, isolation_level=None)
            try:
                probe.execute("PRAGMA busy_timeout = 0")
                busy, _, _ = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                return bool(busy)
            finally:
                probe.close()

        await store.revoke_key(k.id)  # something in the WAL
        pinned = sqlite3.connect(path, isolation_level=None)  # the control: a lingering reader
        try:
            pinned.execute("BEGIN")
            pinned.execute("SELECT count(*) FROM api_keys").fetchall()
            assert truncate_checkpoint_is_blocked()
        finally:
            pinned.close()
        assert (await store.get_key_by_hash(k.secret_hash)) is not None
        assert await store.get_key_by_hash("unknown") is None
        assert not truncate_checkpoint_is_blocked()


async def test_sqlite_key_lookup_falls_back_to_the_workers_when_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Busy:
        def execute(self, *_: object) -> None:
            raise sqlite3.OperationalError("database is locked")

    class Broken:
        def execute(self, *_: object) -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

    async with SqlStore(f"sqlite:///{tmp_path / 'busy.db'}") as store:
        a = await store.create_account("a")
        k = await _key(store, a.id)
        monkeypatch.setattr(store, "_reader", Busy())
        assert await store.get_key_by_hash(k.secret_hash) == k
        monkeypatch.setattr(store, "_reader", Broken())
        with pytest.raises(StorageError, match="malformed"):
            await store.get_key_by_hash(k.secret_hash)
    with pytest.raises(StorageError, match="not open"):
        await store.get_key_by_hash(k.secret_hash)


async def test_revoke_key_is_idempotent(store: SqlStore) -> None:
    a = await store.create_account("a")
    k = await _key(store, a.id)
    first = await store.revoke_key(k.id)
    assert first.revoked_us is not None
    assert not first.active_at(NOW)
    again = await store.revoke_key(k.id)
    assert again.revoked_us == first.revoked_us
    assert await store.get_key(k.id) == first
    with pytest.raises(NotFoundInStore):
        await store.revoke_key("key_nope")


async def test_touch_keys_only_moves_forward(store: SqlStore) -> None:
    a = await store.create_account("a")
    k1, k2 = await _key(store, a.id), await _key(store, a.id)
    await store.touch_keys({})
    await store.touch_keys({k1.id: 200, k2.id: 100, "key_unknown": 5})
    await store.touch_keys({k1.id: 150, k2.id: 300})
    got1, got2 = await store.get_key(k1.id), await store.get_key(k2.id)
    assert got1 is not None
    assert got2 is not None
    assert (got1.last_used_us, got2.last_used_us) == (200, 300)


# -- holds ------------------------------------------------------------------------------------


async def test_place_hold_success(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    k = await _key(store, a.id)
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=k.id, amount=300, expires_us=LATER, now_us=NOW
    )
    assert result.refused is None
    assert result.balance == 700
    assert result.hold is not None
    assert (result.hold.id, result.hold.amount, result.hold.status) == ("h1", 300, "held")
    assert await store.get_hold("h1") == result.hold
    assert await store.get_hold("nope") is None
    entries = await store.entries(a.id)
    assert [(e.kind, e.amount, e.hold_id) for e in entries][-1] == ("hold", -300, "h1")
    assert await _balance(store, a.id) == 700 == await _ledger_sum(store, a.id)
    # no key at all (internal callers)
    keyless = await store.place_hold(
        hold_id="h2", account_id=a.id, key_id=None, amount=700, expires_us=LATER, now_us=NOW
    )
    assert keyless.hold is not None
    assert keyless.balance == 0


async def test_place_hold_exact_balance_then_insufficient(store: SqlStore) -> None:
    a = await _funded(store, 500)
    ok = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=None, amount=500, expires_us=LATER, now_us=NOW
    )
    assert ok.hold is not None
    assert ok.balance == 0
    refused = await store.place_hold(
        hold_id="h2", account_id=a.id, key_id=None, amount=1, expires_us=LATER, now_us=NOW
    )
    assert (refused.hold, refused.refused, refused.balance) == (None, "insufficient_balance", 0)
    assert await store.get_hold("h2") is None
    assert len(await store.entries(a.id)) == 2


@pytest.mark.parametrize("case", ["revoked", "expired", "other_account", "unknown_key"])
async def test_place_hold_refuses_inactive_key(store: SqlStore, case: str) -> None:
    a = await _funded(store, 1_000)
    other = await _funded(store, 1_000)
    if case == "revoked":
        key_id = (await _key(store, a.id)).id
        await store.revoke_key(key_id)
    elif case == "expired":
        key_id = (await _key(store, a.id, expires_us=NOW)).id  # expiry is exclusive
    elif case == "other_account":
        key_id = (await _key(store, other.id)).id
    else:
        key_id = "key_unknown"
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=key_id, amount=10, expires_us=LATER, now_us=NOW
    )
    assert (result.hold, result.refused, result.balance) == (None, "key_inactive", 1_000)
    assert await _balance(store, a.id) == 1_000
    assert await store.get_hold("h1") is None


async def test_place_hold_key_valid_until_expiry(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    k = await _key(store, a.id, expires_us=NOW + 1)
    result = await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=k.id, amount=10, expires_us=LATER, now_us=NOW
    )
    assert result.hold is not None


async def test_place_hold_unknown_account(store: SqlStore) -> None:
    result = await store.place_hold(
        hold_id="h1", account_id="acct_nope", key_id=None, amount=1, expires_us=LATER, now_us=NOW
    )
    assert (result.hold, result.refused, result.balance) == (None, "account_missing", 0)


async def test_place_hold_rejects_negative_amount(store: SqlStore) -> None:
    a = await _funded(store, 10)
    with pytest.raises(ValueError, match="negative"):
        await store.place_hold(
            hold_id="h1", account_id=a.id, key_id=None, amount=-1, expires_us=LATER, now_us=NOW
        )


# -- settle / release / expire ----------------------------------------------------------------


async def _held(store: Store, amount: int, hold_id: str = "h1", fund: int = 1_000) -> str:
    a = await _funded(store, fund)
    result = await store.place_hold(
        hold_id=hold_id,
        account_id=a.id,
        key_id=None,
        amount=amount,
        expires_us=LATER,
        now_us=NOW,
    )
    assert result.hold is not None
    return a.id


async def test_settle_below_hold_refunds_the_rest(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    result = await store.settle_hold("h1", 150, now_us=NOW + 1)
    assert (result.charged, result.released, result.already_settled) == (150, 250, False)
    assert await _balance(store, account_id) == 850 == await _ledger_sum(store, account_id)
    hold = await store.get_hold("h1")
    assert hold is not None
    assert (hold.status, hold.charged) == ("settled", 150)
    last = (await store.entries(account_id))[-1]
    assert (last.kind, last.amount, last.hold_id) == ("settle", 250, "h1")


async def test_settle_above_hold_is_clamped(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    result = await store.settle_hold("h1", 10_000, now_us=NOW + 1)
    assert (result.charged, result.released, result.already_settled) == (400, 0, False)
    assert await _balance(store, account_id) == 600 == await _ledger_sum(store, account_id)


async def test_double_settle_is_idempotent(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    first = await store.settle_hold("h1", 100, now_us=NOW + 1)
    second = await store.settle_hold("h1", 300, now_us=NOW + 2)
    assert (second.charged, second.released, second.already_settled) == (100, 300, True)
    assert first.already_settled is False
    assert await _balance(store, account_id) == 900 == await _ledger_sum(store, account_id)
    assert len(await store.entries(account_id)) == 3
    with pytest.raises(NotFoundInStore):
        await store.settle_hold("nope", 1, now_us=NOW)
    with pytest.raises(ValueError, match="negative"):
        await store.settle_hold("h1", -1, now_us=NOW)


async def test_concurrent_settles_settle_once(store: SqlStore) -> None:
    import asyncio

    account_id = await _held(store, 400)
    results = await asyncio.gather(*(store.settle_hold("h1", 100, now_us=NOW) for _ in range(6)))
    assert sum(not r.already_settled for r in results) == 1
    assert {(r.charged, r.released) for r in results} == {(100, 300)}
    assert await _balance(store, account_id) == 900 == await _ledger_sum(store, account_id)


async def test_release_then_settle_is_a_no_op(store: SqlStore) -> None:
    account_id = await _held(store, 400)
    released = await store.release_hold("h1", now_us=NOW + 1)
    assert (released.charged, released.released, released.already_settled) == (0, 400, False)
    assert await _balance(store, account_id) == 1_000
    hold = await store.get_hold("h1")
    assert hold is not None
    assert hold.status == "released"
    late = await store.settle_hold("h1", 200, now_us=NOW + 2)
    assert (late.charged, late.released, late.already_settled) == (0, 400, True)
    again = await store.release_hold("h1", now_us=NOW + 3)
    assert again.already_settled is True
    assert await _balance(store, account_id) == 1_000 == await _ledger_sum(store, account_id)
    kinds = [(e.kind, e.amount) for e in await store.entries(account_id)]
    assert kinds == [("credit", 1_000), ("hold", -400), ("release", 400)]
    with pytest.raises(NotFoundInStore):
        await store.release_hold("nope", now_us=NOW)


async def test_settle_released_hold_after_settle_keeps_charge(store: SqlStore) -> None:
    await _held(store, 400)
    await store.settle_hold("h1", 400, now_us=NOW + 1)
    result = await store.release_hold("h1", now_us=NOW + 2)
    assert (result.charged, result.released, result.already_settled) == (400, 0, True)


async def test_expire_holds(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    b = await _funded(store, 1_000)
    for hold_id, account, expires in [
        ("a1", a, NOW + 10),
        ("a2", a, NOW + 20),
        ("b1", b, NOW + 10),
        ("a3", a, NOW + 99),
        ("a4", a, NOW + 5),
    ]:
        placed = await store.place_hold(
            hold_id=hold_id,
            account_id=account.id,
            key_id=None,
            amount=100,
            expires_us=expires,
            now_us=NOW,
        )
        assert placed.hold is not None
    await store.settle_hold("a4", 50, now_us=NOW + 1)  # closed before expiry: untouched

    assert await store.expire_holds(NOW + 9) == []
    first = await store.expire_holds(NOW + 20, limit=2)
    assert {r.hold_id for r in first} == {"a1", "b1"}
    assert all((r.charged, r.released, r.already_settled) == (0, 100, False) for r in first)
    rest = await store.expire_holds(NOW + 20)
    assert [r.hold_id for r in rest] == ["a2"]
    assert await store.expire_holds(NOW + 20) == []

    hold = await store.get_hold("a1")
    assert hold is not None
    assert (hold.status, hold.charged) == ("expired", 0)
    still = await store.get_hold("a3")
    assert still is not None
    assert still.status == "held"
    late = await store.settle_hold("a2", 80, now_us=NOW + 30)
    assert (late.charged, late.released, late.already_settled) == (0, 100, True)

    assert await _balance(store, a.id) == 1_000 - 100 - 50 == await _ledger_sum(store, a.id)
    assert await _balance(store, b.id) == 1_000 == await _ledger_sum(store, b.id)
    expired = [e for e in await store.entries(a.id) if e.memo == "expired"]
    assert [(e.kind, e.amount) for e in expired] == [("settle", 100), ("settle", 100)]
    assert (await store.verify_ledger()).ok


async def test_expire_charges_the_usage_recorded_against_each_hold(store: SqlStore) -> None:
    a = await _funded(store, 10_000)
    b = await _funded(store, 10_000)
    # hold id → account, amount, expiry, costs of the usage records written against it
    leases = {
        "none": (a, 1_000, NOW + 10, []),
        "zero": (a, 300, NOW + 10, [0, 0]),
        "part": (a, 1_000, NOW + 10, [100, 250]),
        "over": (b, 1_000, NOW + 5, [800, 700]),
        "exact": (b, 500, NOW + 10, [500]),
        "live": (a, 200, LATER, [50]),  # not due: untouched
    }
    usage = [_usage("no-hold", NOW, a.id, cost=999)]  # against no hold: never charged here
    for hold_id, (account, amount, expires, costs) in leases.items():
        placed = await store.place_hold(
            hold_id=hold_id,
            account_id=account.id,
            key_id=None,
            amount=amount,
            expires_us=expires,
            now_us=NOW,
        )
        assert placed.hold is not None
        usage += [
            _usage(f"{hold_id}-{n}", NOW + n, account.id, cost=c, hold_id=hold_id)
            for n, c in enumerate(costs)
        ]
    await store.insert_usage(usage)

    results = await store.expire_holds(NOW + 10)
    assert [r.hold_id for r in results] == sorted(["none", "zero", "part", "over", "exact"])
    assert {r.hold_id: (r.charged, r.released, r.already_settled) for r in results} == {
        "none": (0, 1_000, False),
        "zero": (0, 300, False),
        "part": (350, 650, False),
        "over": (1_000, 0, False),  # capped at the hold
        "exact": (500, 0, False),
    }
    for r in results:
        hold = await store.get_hold(r.hold_id)
        assert hold is not None
        assert (hold.status, hold.charged) == ("expired", r.charged)
    live = await store.get_hold("live")
    assert live is not None
    assert (live.status, live.charged) == ("held", None)

    assert await _balance(store, a.id) == 10_000 - 350 - 200 == await _ledger_sum(store, a.id)
    assert await _balance(store, b.id) == 10_000 - 1_000 - 500 == await _ledger_sum(store, b.id)
    closing = [
        (e.hold_id, e.kind, e.amount, e.memo)
        for account in (a, b)
        for e in await store.entries(account.id)
        if e.kind not in ("credit", "hold")
    ]
    assert sorted(closing, key=str) == sorted(
        [
            ("none", "settle", 1_000, "expired"),
            ("zero", "settle", 300, "expired"),
            ("part", "settle", 650, "expired"),
            ("over", "settle", 0, "expired"),
            ("exact", "settle", 0, "expired"),
        ],
        key=str,
    )
    assert (await store.verify_ledger()).ok

    # the owner's settle comes too late: told what the expiry charged, nothing moves
    late = await store.settle_hold("part", 900, now_us=NOW + 11)
    assert (late.charged, late.released, late.already_settled) == (350, 650, True)
    assert await store.expire_holds(NOW + 10) == []
    assert await _balance(store, a.id) == 10_000 - 350 - 200


async def test_expiry_makes_a_dead_streams_checkpoint_final(store: SqlStore) -> None:
    """A stream cut by a crash left its checkpoint (``in_progress``) on its process's lease:
    when the lease expires the record becomes ``interrupted``, at the cost it recorded (what
    the expiry charged). Checkpoints on live leases, and final records, are left alone."""
    account = await _funded(store, 10_000)
    for hold_id, expires in (("dead", NOW + 10), ("alive", LATER)):
        placed = await store.place_hold(
            hold_id=hold_id,
            account_id=account.id,
            key_id=None,
            amount=1_000,
            expires_us=expires,
            now_us=NOW,
        )
        assert placed.hold is not None
    await store.insert_usage(
        [
            _usage("cut", NOW, account.id, cost=120, hold_id="dead", outcome="in_progress"),
            _usage("done", NOW + 1, account.id, cost=80, hold_id="dead", outcome="ok"),
            _usage("running", NOW + 2, account.id, cost=50, hold_id="alive", outcome="in_progress"),
        ]
    )
    [result] = await store.expire_holds(NOW + 10)
    assert (result.hold_id, result.charged) == ("dead", 200)
    records = {r.request_id: r for r in await store.list_usage(account_id=account.id)}
    assert {k: (r.outcome, r.cost) for k, r in records.items()} == {
        "cut": ("interrupted", 120),
        "done": ("ok", 80),
        "running": ("in_progress", 50),
    }
    assert (await store.verify_ledger()).ok


async def test_extend_holds_moves_only_open_holds_and_only_later(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    for hold_id, expires in [("h1", NOW + 10), ("h2", NOW + 10), ("h3", NOW + 10), ("h4", LATER)]:
        placed = await store.place_hold(
            hold_id=hold_id, account_id=a.id, key_id=None, amount=10, expires_us=expires, now_us=NOW
        )
        assert placed.hold is not None
    await store.settle_hold("h3", 5, now_us=NOW + 1)

    assert await store.extend_holds([], NOW + 1_000) == 0
    extended = await store.extend_holds(["h1", "h2", "h3", "h4", "h_unknown", "h1"], NOW + 1_000)
    assert extended == 2  # h1, h2; h3 is closed, h4 already expires later

    async def expiry(hold_id: str) -> tuple[str, int]:
        hold = await store.get_hold(hold_id)
        assert hold is not None
        return hold.status, hold.expires_us

    assert await expiry("h1") == ("held", NOW + 1_000)
    assert await expiry("h2") == ("held", NOW + 1_000)
    assert await expiry("h3") == ("settled", NOW + 10)
    assert await expiry("h4") == ("held", LATER)  # never moved back
    assert await store.extend_holds(["h1"], NOW + 500) == 0  # nor h1
    assert await store.extend_holds(["h1"], NOW + 1_000) == 0  # same expiry: nothing to do

    assert await store.expire_holds(NOW + 999) == []
    assert {r.hold_id for r in await store.expire_holds(NOW + 1_000)} == {"h1", "h2"}
    assert await store.extend_holds(["h1", "h2"], LATER + 1) == 0  # a lease lost to expiry
    assert await expiry("h1") == ("expired", NOW + 1_000)
    assert (await store.verify_ledger()).ok


async def test_extend_holds_of_nothing_needs_no_database() -> None:
    assert await SqlStore("sqlite:///:memory:").extend_holds([], NOW) == 0  # not even open


async def test_account_balance_counts_usage_recorded_on_open_holds(store: SqlStore) -> None:
    assert await store.account_balance("acct_nope") is None
    a = await _funded(store, 10_000)
    b = await _funded(store, 10_000)
    assert await store.account_balance(a.id) == AccountBalance(
        account_id=a.id, ledger=10_000, held=0, recorded=0
    )

    for hold_id, account, amount in [("L1", a, 3_000), ("L2", a, 2_000), ("B1", b, 1_000)]:
        placed = await store.place_hold(
            hold_id=hold_id,
            account_id=account.id,
            key_id=None,
            amount=amount,
            expires_us=NOW + 10,
            now_us=NOW,
        )
        assert placed.hold is not None
    opened = await store.account_balance(a.id)
    assert opened == AccountBalance(account_id=a.id, ledger=5_000, held=5_000, recorded=0)
    assert opened.effective == 10_000

    await store.insert_usage(
        [
            _usage("r1", NOW + 1, a.id, cost=400, hold_id="L1"),
            _usage("r2", NOW + 2, a.id, cost=600, hold_id="L1"),
            _usage("r3", NOW + 3, a.id, cost=2_500, hold_id="L2"),  # beyond the lease
            _usage("r4", NOW + 4, a.id, cost=77),  # against no hold
            _usage("r5", NOW + 5, b.id, cost=300, hold_id="B1"),  # another account's lease
        ]
    )
    spent = await store.account_balance(a.id)
    # L2 counts what closing it can charge: its amount
    assert spent == AccountBalance(account_id=a.id, ledger=5_000, held=5_000, recorded=3_000)
    assert spent.effective == 10_000 - 1_000 - 2_000
    other = await store.account_balance(b.id)
    assert other == AccountBalance(account_id=b.id, ledger=9_000, held=1_000, recorded=300)

    await store.settle_hold("L1", 1_000, now_us=NOW + 6)  # the owner settles what it served
    settled = await store.account_balance(a.id)
    assert settled == AccountBalance(account_id=a.id, ledger=7_000, held=2_000, recorded=2_000)
    assert settled.effective == 7_000

    expired = await store.expire_holds(NOW + 10)  # L2's owner died: charged from its usage
    assert {(r.hold_id, r.charged) for r in expired} == {("L2", 2_000), ("B1", 300)}
    closed = await store.account_balance(a.id)
    assert closed == AccountBalance(account_id=a.id, ledger=7_000, held=0, recorded=0)
    assert closed.effective == 7_000 == await _ledger_sum(store, a.id)
    assert (await store.account_balance(b.id)) == AccountBalance(
        account_id=b.id, ledger=9_700, held=0, recorded=0
    )


# -- ledger -----------------------------------------------------------------------------------


async def test_entries_time_window(store: SqlStore) -> None:
    a = await _funded(store, 1_000)
    for i, t in enumerate([NOW, NOW + 10, NOW + 20]):
        await store.place_hold(
            hold_id=f"h{i}", account_id=a.id, key_id=None, amount=1, expires_us=LATER, now_us=t
        )
    window = await store.entries(a.id, since_us=NOW + 10, until_us=NOW + 20)
    assert [e.hold_id for e in window] == ["h1"]
    # the credit (first entry) is stamped with the wall clock, later than NOW
    assert [e.hold_id for e in await store.entries(a.id, since_us=NOW + 10)] == [None, "h1", "h2"]
    assert [e.hold_id for e in await store.entries(a.id, until_us=NOW + 10)] == ["h0"]
    assert await store.entries("acct_nope") == []


async def test_verify_ledger_ok_and_detects_tampering(store: SqlStore, db_url: str) -> None:
    empty = await store.verify_ledger()
    assert (empty.accounts_checked, empty.ok) == (0, True)
    a = await _funded(store, 1_000)
    b = await store.create_account("empty")
    await store.place_hold(
        hold_id="h1", account_id=a.id, key_id=None, amount=300, expires_us=LATER, now_us=NOW
    )
    report = await store.verify_ledger()
    assert (report.accounts_checked, report.ok) == (2, True)

    await raw_sql(db_url, "UPDATE accounts SET balance = balance + 5 WHERE id = :id", {"id": a.id})
    await raw_sql(db_url, "UPDATE accounts SET balance = -7 WHERE id = :id", {"id": b.id})
    report = await store.verify_ledger()
    assert not report.ok
    assert sorted(report.mismatches) == sorted([(a.id, 705, 700), (b.id, -7, 0)])
    assert report.negative == (b.id,)


# -- usage ------------------------------------------------------------------------------------


def _usage(
    request_id: str, created_us: int, account_id: str = "acct_x", **kw: object
) -> UsageRecord:
    fields: dict[str, object] = {
        "key_id": "key_x",
        "instrument": "text-prime",
        "supplier": None,
        "offer_id": None,
        "upstream_model": None,
        "stream": False,
        **kw,
    }
    return UsageRecord(
        request_id=request_id,
        created_us=created_us,
        account_id=account_id,
        **fields,  # type: ignore[arg-type]
    )


async def test_usage_batch_insert_replaces_by_request_id_and_lists_newest_first(
    store: SqlStore,
) -> None:
    full = UsageRecord(
        request_id="r-full",
        created_us=NOW + 5,
        account_id="acct_a",
        key_id="key_a",
        instrument="text-prime",
        supplier="sim-a",
        offer_id="sim-a/text-prime",
        upstream_model="sim-large",
        stream=True,
        input_tokens=1_234,
        output_tokens=567,
        reasoning_tokens=89,
        cached_tokens=10,
        usage_estimated=True,
        price_input_per_m=30_200_000,
        price_output_per_m=2**40,
        cost=987_654_321,
        hold_id="h-full",
        ttft_us=12_345,
        generation_us=2**40,
        duration_us=678_901,
        outcome="cancelled",
        status=499,
        billed=False,
        in_spec=False,
        spec_note='first token after 4620.1 ms > ceiling 4620 ms; "quoted" — ünïcode',
        error="client went away",
    )
    await store.insert_usage([])
    await store.insert_usage(
        [_usage("r1", NOW + 1, "acct_a"), full, _usage("r2", NOW + 2, "acct_b")]
    )
    changed = _usage("r1", NOW + 100, "acct_a", cost=1)
    await store.insert_usage([changed, _usage("r3", NOW + 3, "acct_a"), _usage("r3", NOW + 3)])

    everything = await store.list_usage()
    assert [u.request_id for u in everything] == ["r1", "r-full", "r3", "r2"]
    assert everything[0] == changed  # the later record of r1 replaced the earlier one
    assert everything[1] == full
    assert everything[2] == _usage("r3", NOW + 3)  # within a batch, the last one wins
    await store.insert_usage([changed, full])  # the same records again: nothing changes
    assert await store.list_usage() == everything
    # r3's last record belongs to acct_x
    assert [u.request_id for u in await store.list_usage(account_id="acct_a")] == ["r1", "r-full"]
    assert [u.request_id for u in await store.list_usage(limit=2)] == ["r1", "r-full"]


async def test_list_usage_time_window_and_no_limit(store: SqlStore) -> None:
    await store.insert_usage(
        [_usage(f"r{i}", NOW + i * 10, "acct_a" if i % 2 == 0 else "acct_b") for i in range(6)]
    )

    def ids(records: list[UsageRecord]) -> list[str]:
        return [u.request_id for u in records]

    # since inclusive, until exclusive, newest first
    assert ids(await store.list_usage(since_us=NOW + 10, until_us=NOW + 40)) == ["r3", "r2", "r1"]
    assert ids(await store.list_usage(account_id="acct_a", since_us=NOW + 20)) == ["r4", "r2"]
    assert ids(await store.list_usage(account_id="acct_b", until_us=NOW + 30)) == ["r1"]
    assert ids(await store.list_usage(since_us=NOW + 60)) == []
    assert ids(await store.list_usage(since_us=NOW, limit=2)) == ["r5", "r4"]
    assert len(await store.list_usage(limit=None)) == 6


async def test_usage_spec_verdict_round_trips_and_the_last_record_wins(store: SqlStore) -> None:
    """A stream's checkpoint (not judged yet) gives way to its final record, which carries the
    measurements and the verdict; each of in / out of spec / not judged reads back as written."""
    checkpoint = _usage(
        "r-stream", NOW, stream=True, offer_id="sim-a/text-prime", outcome="in_progress"
    )
    await store.insert_usage([checkpoint])
    assert await store.list_usage() == [checkpoint]
    final = _usage(
        "r-stream",
        NOW,
        stream=True,
        offer_id="sim-a/text-prime",
        output_tokens=500,
        ttft_us=4_620_100,
        generation_us=9_000_000,
        billed=False,
        in_spec=False,
        spec_note="first token after 4620.1 ms > ceiling 4620 ms",
    )
    judged_ok = _usage("r-fast", NOW + 1, ttft_us=100, generation_us=1, in_spec=True)
    failed = _usage("r-failed", NOW + 2, outcome="upstream_error", status=502)
    await store.insert_usage([final, judged_ok, failed])
    assert await store.list_usage() == [failed, judged_ok, final]
    assert [(u.in_spec, u.spec_note) for u in await store.list_usage()] == [
        (None, None),
        (True, None),
        (False, "first token after 4620.1 ms > ceiling 4620 ms"),
    ]


# -- offer deliveries -------------------------------------------------------------------------


def _delivery(request_id: str, created_us: int, offer_id: str | None, **kw: object) -> UsageRecord:
    return _usage(request_id, created_us, offer_id=offer_id, supplier="sim", **kw)


async def test_offer_deliveries_are_each_offers_latest_in_the_window(store: SqlStore) -> None:
    assert await store.offer_deliveries(0, 10) == []
    a, b, c = "sim-a/text-prime", "sim-b/text-prime", "sim-c/text-lite"
    await store.insert_usage(
        [
            _delivery("a-old", NOW - 1, a),  # before the window
            *(_delivery(f"a{i}", NOW + i, a) for i in range(5)),
            _delivery("a-tie", NOW + 4, a),  # same time as a4: request id breaks the tie
            _delivery("a-checkpoint", NOW + 9, a, outcome="in_progress"),
            _delivery("a-rejected", NOW + 9, a, outcome="rejected", status=400),
            _delivery("no-offer", NOW + 9, None, outcome="upstream_error", status=502),
            _delivery(
                "b1",
                NOW + 3,
                b,
                instrument="text-prime",
                stream=True,
                output_tokens=321,
                ttft_us=1_500,
                generation_us=6_400_000,
                outcome="stream_error",
                status=502,
                in_spec=False,
                spec_note="throughput 50 tok/s < floor 60 tok/s over 321 tokens",
            ),
            _delivery("b0", NOW + 2, b, outcome="cancelled", status=499, in_spec=True),
            _delivery("c-old", NOW - 5, c),  # an offer with nothing in the window
        ]
    )
    found = await store.offer_deliveries(NOW, 3)
    assert [(d.offer_id, d.request_id) for d in found] == [
        (a, "a4"),
        (a, "a-tie"),
        (a, "a3"),
        (b, "b1"),
        (b, "b0"),
    ]
    assert found[3] == DeliveryRow(
        request_id="b1",
        offer_id=b,
        instrument="text-prime",
        outcome="stream_error",
        status=502,
        stream=True,
        created_us=NOW + 3,
        output_tokens=321,
        ttft_us=1_500,
        generation_us=6_400_000,
        in_spec=False,
    )
    assert (found[4].in_spec, found[0].in_spec, found[0].stream) == (True, None, False)
    # since is inclusive; a large limit returns everything in the window
    everything = await store.offer_deliveries(NOW - 5, 1_000)
    assert [d.request_id for d in everything] == [
        "a4",
        "a-tie",
        "a3",
        "a2",
        "a1",
        "a0",
        "a-old",
        "b1",
        "b0",
        "c-old",
    ]
    assert await store.offer_deliveries(NOW + 10, 5) == []
    # the final record of a checkpointed stream is a delivery
    await store.insert_usage([_delivery("a-checkpoint", NOW + 9, a, outcome="ok")])
    assert [d.request_id for d in await store.offer_deliveries(NOW + 9, 5)] == ["a-checkpoint"]
    with pytest.raises(ValueError, match="limit_per_offer"):
        await store.offer_deliveries(NOW, 0)


# -- catalog ----------------------------------------------------------------------------------


async def test_catalog_upsert_and_load_round_trip(store: SqlStore) -> None:
    assert await store.load_catalog() == ([], [], [])
    prime = InstrumentRecord(
        id="text-prime",
        display_name="Text Prime",
        quality_floor=0.1 + 0.2,  # not representable in decimal: must round-trip bit-exact
        ttft_ceiling_ms=1_500,
        throughput_floor_tps=33.333333333333336,
        context_floor=128_000,
        max_output_floor=8_192,
        context_length=131_072,
        max_input_tokens=120_000,
        max_completion_tokens=16_384,
        image_input=True,
        reasoning_efforts=("low", "medium", "high"),
        default_reasoning_effort="medium",
        bill_out_of_spec=True,
    )
    lite = InstrumentRecord(
        id="text-lite",
        display_name='Text Lite, "quoted"',
        quality_floor=0.0,
        ttft_ceiling_ms=None,
        throughput_floor_tps=None,
        context_floor=8_000,
        max_output_floor=1_000,
        context_length=8_192,
        max_input_tokens=7_000,
        max_completion_tokens=1_024,
        enabled=False,
    )
    sup_a = SupplierRecord(name="sim-a", wire="openai", base_url="http://127.0.0.1:9/v1")
    sup_b = SupplierRecord(
        name="sim-b",
        wire="anthropic",
        base_url="http://x",
        api_key_env="SIM_B_KEY",
        zero_retention=False,
        enabled=False,
    )
    offer_1 = OfferRecord(
        id="sim-a/text-prime",
        supplier="sim-a",
        instrument="text-prime",
        model="sim-large",
        input_per_m=30_200_000,
        output_per_m=2**53 + 1,
        quality=0.875,
        context=131_072,
        max_output=16_384,
        capabilities=("tools", "json_schema", "vision", "logprobs"),
    )
    offer_2 = OfferRecord(
        id="sim-b/text-lite",
        supplier="sim-b",
        instrument="text-lite",
        model="sim-small",
        input_per_m=0,
        output_per_m=1,
        quality=1e-300,
        context=8_192,
        max_output=1_024,
        enabled=False,
    )
    await store.upsert_catalog([prime, lite], [sup_b, sup_a], [offer_2, offer_1])
    assert await store.load_catalog() == ([lite, prime], [sup_a, sup_b], [offer_1, offer_2])

    cheaper = OfferRecord(
        id="sim-a/text-prime",
        supplier="sim-a",
        instrument="text-prime",
        model="sim-large-2",
        input_per_m=1,
        output_per_m=2,
        quality=0.5,
        context=1,
        max_output=1,
        capabilities=(),
        enabled=False,
    )
    prime_off = InstrumentRecord(
        **{
            **{f: getattr(prime, f) for f in prime.__struct_fields__},
            "enabled": False,
            "reasoning_efforts": (),
            "bill_out_of_spec": False,
        },
    )
    await store.upsert_catalog([prime_off], [], [cheaper])
    instruments, suppliers, offers = await store.load_catalog()
    assert instruments == [lite, prime_off]
    assert suppliers == [sup_a, sup_b]
    assert offers == [cheaper, offer_2]


async def test_usage_pages_walk_records_that_share_a_microsecond(store: SqlStore) -> None:
    """Pages of one record over five that share their time, then two older ones: each record
    once, newest first, whatever the page's reads look like (core/accounts/usage_pages.py)."""
    from gridgate.core.accounts.usage_pages import UsageQuery, usage_page

    same = [_usage(f"r{i}", NOW + 9) for i in range(5)]
    older = [_usage("o1", NOW + 2), _usage("o0", NOW + 1)]
    await store.insert_usage([*same, *older])
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await usage_page(store, UsageQuery("acct_x", limit=1, cursor=cursor))
        seen += [r.request_id for r in page.records]
        cursor = page.next
        if cursor is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0", "o1", "o0"]
