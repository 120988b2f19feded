"""No overspend under concurrency: many tasks, and several OS processes, on one account.

An account funded for exactly K holds receives 20×K simultaneous ``place_hold`` calls: exactly K
succeed, the balance ends at exactly zero, and the ledger still balances. Processes start
together on an explicit signal (each reports "ready", then all are told "go"), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

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
    assert [r["version"] for r in results] == [1, 1, 1]
    rows = await raw_sql(db_url, "SELECT version FROM schema_migrations")
    assert [int(r[0]) for r in rows] == [1]
