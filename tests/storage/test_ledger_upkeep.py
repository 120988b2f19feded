"""The rest of the ``LedgerStore`` contract, run against SQLite and PostgreSQL (see conftest.py):
expiry, extension, balances, entries and verification."""

from __future__ import annotations

from gridgate.storage.ports.ledger import AccountBalance
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql
from tests.storage.helpers import LATER, NOW, _balance, _funded, _ledger_sum, _usage


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
