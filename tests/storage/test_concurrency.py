"""No overspend under concurrency: many tasks, and several OS processes, on one account.

An account funded for exactly K holds receives 20×K simultaneous ``place_hold`` calls: exactly K
succeed, the balance ends at exactly zero, and the ledger still balances. Processes start
together on an explicit signal (each reports "ready", then all are told "go"), never on sleeps.
Also: expiry racing the settles of the same leases closes each exactly once, and a key revoked
by another process is seen revoked by the very next lookup.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import msgspec

from gridgate.storage import migrations
from gridgate.storage.ports.ledger import SettleResult
from gridgate.storage.records import KeyRecord, UsageRecord
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql

WORKER = str(Path(__file__).with_name("hold_worker.py"))
K = 10
HOLD = 7_777
NOW = 1_700_000_000_000_000


async def _exactly_k_funded(store: SqlStore) -> tuple[str, str]:
    account = await store.create_account("contended")
    await store.credit(account.id, K * HOLD)
    key = await store.create_key(
        account_id=account.id,
        name="k",
        prefix="gg-",
        secret_hash="contended-key",
        expires_us=None,
    )
    return account.id, key.id


async def _assert_spent_exactly(store: SqlStore, account_id: str) -> None:
    account = await store.get_account(account_id)
    assert account is not None
    assert account.balance == 0
    entries = await store.entries(account_id)
    assert sum(e.amount for e in entries) == 0
    assert sum(e.kind == "hold" for e in entries) == K
    report = await store.verify_ledger()
    assert report.ok, report


async def test_tasks_of_one_process_cannot_overspend(store: SqlStore) -> None:
    account_id, key_id = await _exactly_k_funded(store)
    results = await asyncio.gather(
        *(
            store.place_hold(
                hold_id=f"h{i}",
                account_id=account_id,
                key_id=key_id,
                amount=HOLD,
                expires_us=NOW + 1,
                now_us=NOW,
            )
            for i in range(20 * K)
        )
    )
    held = [r for r in results if r.hold is not None]
    assert len(held) == K
    assert {r.refused for r in results if r.hold is None} == {"insufficient_balance"}
    assert all(r.balance >= 0 for r in results)
    await _assert_spent_exactly(store, account_id)

    # closing them all while expiry races the settles: each hold is closed exactly once
    settles = [store.settle_hold(r.hold.id, HOLD // 2, now_us=NOW + 2) for r in held if r.hold]
    settled, expired_a, expired_b = await asyncio.gather(
        asyncio.gather(*settles), store.expire_holds(NOW + 2), store.expire_holds(NOW + 2)
    )
    closers = [r for r in settled if not r.already_settled] + expired_a + expired_b
    assert sorted(r.hold_id for r in closers) == sorted(r.hold.id for r in held if r.hold)
    account = await store.get_account(account_id)
    assert account is not None
    assert account.balance == sum(r.released for r in closers)
    assert (await store.verify_ledger()).ok


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_processes_cannot_overspend(store: SqlStore, db_url: str) -> None:
    account_id, key_id = await _exactly_k_funded(store)
    procs = [
        await _spawn("hold", db_url, account_id, key_id, str(HOLD), str(5 * K), f"p{n}")
        for n in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"ready":
                _, err = await proc.communicate()
                raise AssertionError(f"worker did not start: {line!r} {err.decode()}")
        for proc in procs:  # everyone is connected and migrated: go
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        results = [await _finish(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
    held = [h for r in results for h in r["held"]]
    assert len(held) == K
    assert sum(sum(r["refused"].values()) for r in results) == 19 * K
    assert {k for r in results for k in r["refused"]} == {"insufficient_balance"}
    await _assert_spent_exactly(store, account_id)


async def test_processes_migrate_a_fresh_database_together(db_url: str) -> None:
    procs = [await _spawn("open", db_url) for _ in range(3)]
    try:
        results = [await _finish(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
    latest = migrations.LATEST_VERSION
    assert [r["version"] for r in results] == [latest] * 3
    rows = await raw_sql(db_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [int(r[0]) for r in rows] == [m.version for m in migrations.MIGRATIONS]


async def test_expiry_racing_settles_closes_each_lease_once(store: SqlStore) -> None:
    """Leases past their expiry, each with usage recorded against it; their owners settle them
    while three expiry sweeps (small batches) run: every lease is closed by exactly one of them,
    at that closer's charge, and the others report what it did."""
    leases, amount, owner_charge = 24, 1_000, 500
    account = await store.create_account("leases")
    await store.credit(account.id, leases * amount)
    recorded: dict[str, int] = {}
    usage: list[UsageRecord] = []
    for i in range(leases):
        hold_id = f"lease-{i:02}"
        placed = await store.place_hold(
            hold_id=hold_id,
            account_id=account.id,
            key_id=None,
            amount=amount,
            expires_us=NOW + 1,
            now_us=NOW,
        )
        assert placed.hold is not None
        costs = [(i * 97) % 700, (i * 131) % 900]  # 0 … 1,598: some above the lease
        recorded[hold_id] = min(amount, sum(costs))
        usage += [
            UsageRecord(
                request_id=f"{hold_id}-r{n}",
                created_us=NOW,
                account_id=account.id,
                key_id="key_x",
                instrument="text-prime",
                supplier=None,
                offer_id=None,
                upstream_model=None,
                stream=False,
                cost=cost,
                hold_id=hold_id,
            )
            for n, cost in enumerate(costs)
        ]
    await store.insert_usage(usage)

    calls: list[Awaitable[SettleResult | list[SettleResult]]] = []
    for i, hold_id in enumerate(sorted(recorded)):
        if i % 8 == 0:  # sweeps started among the settles, so that both sides win some
            calls.append(store.expire_holds(NOW + 2, limit=5))
        calls.append(store.settle_hold(hold_id, owner_charge, now_us=NOW + 2))
    outcomes = await asyncio.gather(*calls)
    settled = [r for r in outcomes if isinstance(r, SettleResult)]
    expired = [r for sweep in outcomes if isinstance(sweep, list) for r in sweep]
    settled_by_owner = [r for r in settled if not r.already_settled]
    closers = {r.hold_id: r for r in settled_by_owner + expired}
    assert len(settled_by_owner) + len(expired) == len(closers) == leases
    assert settled_by_owner  # guaranteed: the sweeps can close at most 3 × 5
    # SQLite runs them in order (one writer queue): the sweeps win 15; PostgreSQL varies
    assert expired or store.dialect == "postgresql"
    for r in settled_by_owner:
        assert (r.charged, r.released) == (owner_charge, amount - owner_charge)
    for r in expired:
        assert (r.charged, r.released) == (recorded[r.hold_id], amount - recorded[r.hold_id])
    for r in settled:  # a late owner is told what the expiry charged
        assert (r.charged, r.released) == (closers[r.hold_id].charged, closers[r.hold_id].released)
    for hold_id, closer in closers.items():
        hold = await store.get_hold(hold_id)
        assert hold is not None
        assert hold.charged == closer.charged
        assert hold.status == ("settled" if closer in settled_by_owner else "expired")

    charged = sum(r.charged for r in closers.values())
    assert (await store.get_account(account.id)).balance == leases * amount - charged  # type: ignore[union-attr]
    entries = await store.entries(account.id)
    closing = sorted(e.hold_id or "" for e in entries if e.kind == "settle")
    assert closing == sorted(recorded)  # one closing entry per lease
    balance = await store.account_balance(account.id)
    assert balance is not None
    assert (balance.held, balance.recorded, balance.effective) == (0, 0, leases * amount - charged)
    assert (await store.verify_ledger()).ok


async def test_a_revocation_by_another_process_is_seen_at_once(
    store: SqlStore, db_url: str
) -> None:
    account = await store.create_account("keys")
    key = await store.create_key(
        account_id=account.id, name="k", prefix="gg-", secret_hash="victim", expires_us=None
    )
    assert await store.get_key_by_hash("victim") == key  # the lookup path is warm
    new_hash = secrets.token_hex(32)
    assert await store.get_key_by_hash(new_hash) is None

    done = await _finish(await _spawn("revoke", db_url, key.id, new_hash))
    revoked = msgspec.convert(done["revoked"], KeyRecord)
    created = msgspec.convert(done["created"], KeyRecord)

    seen = await store.get_key_by_hash("victim")
    assert seen == revoked
    assert seen.revoked_us is not None
    assert not seen.active_at(seen.revoked_us)
    assert await store.get_key_by_hash(new_hash) == created
