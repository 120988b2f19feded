"""The usage writer through a database that refuses: every record submitted ends up written once,
in order, from memory or from the spool on disk — whatever the outage's length, and across a
shutdown in the middle of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.clock import SystemClock
from gridgate.core.outage import Outage
from gridgate.storage.ports.errors import StoreUnavailable
from gridgate.storage.records import UsageRecord
from gridgate.storage.sql import SqlStore
from gridgate.storage.usage_spool import FileSpool


class Outageable:
    """The store's usage writes, refused while ``down`` as an unreachable database refuses."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.down = False
        self.refused = 0
        self.up = asyncio.Event()

    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("database error: ConnectionRefusedError")
        await self.store.insert_usage(records)

    async def touch_keys(self, last_used: dict[str, int]) -> None:
        if self.down:
            raise StoreUnavailable("database error: ConnectionRefusedError")
        await self.store.touch_keys(last_used)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


def record(i: int, *, cost: int = 1000, outcome: str = "ok") -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{i:06d}",
        created_us=1_700_000_000_000_000 + i,
        account_id="acct_test",
        key_id="key_test",
        instrument="text-prime",
        supplier="sim-a",
        offer_id="sim-a/text-prime",
        upstream_model="sim/a",
        stream=True,
        output_tokens=i,
        cost=cost,
        outcome=outcome,
    )


async def written(store: SqlStore) -> dict[str, UsageRecord]:
    return {r.request_id: r for r in await store.list_usage(limit=None)}


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` until it holds, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("usage-*.jsonl")) if directory.exists() else []


async def test_records_made_while_the_database_refuses_are_written_once_it_is_back_in_order(
    store: SqlStore, tmp_path: Path
) -> None:
    flaky = Outageable(store)
    outage = Outage(SystemClock())
    writer = UsageWriter(flaky, spool=FileSpool(tmp_path / "spool"), outage=outage)  # type: ignore[arg-type]
    writer.start()
    flaky.down = True
    for i in range(100):
        writer.submit(record(i, cost=1, outcome="in_progress"))  # a stream's checkpoint...
    await until(lambda: flaky.refused >= 3)  # retried, not given up
    assert outage.down
    for i in range(100):
        writer.submit(record(i, cost=1000 + i))  # ...then its final record
    flaky.down = False
    await until(lambda: writer.pending == 0)
    await writer.close()
    rows = await written(store)
    assert len(rows) == 100
    assert all(r.outcome == "ok" and r.cost == 1000 + int(r.request_id[4:]) for r in rows.values())
    assert not outage.down
    assert spool_files(tmp_path / "spool") == []


async def test_past_the_memory_bound_records_go_to_disk_and_are_written_from_there(
    store: SqlStore, tmp_path: Path
) -> None:
    flaky = Outageable(store)
    spool_dir = tmp_path / "spool"
    writer = UsageWriter(flaky, spool=FileSpool(spool_dir), memory_records=50)  # type: ignore[arg-type]
    writer.start()
    flaky.down = True
    for i in range(400):
        writer.submit(record(i, outcome="in_progress"))
        if i % 40 == 0:
            await asyncio.sleep(0)  # requests arrive over time
    for i in range(400):
        writer.submit(record(i, cost=7))
    await until(lambda: writer.spooled >= 750)
    assert writer.pending <= 50 + 1  # memory stays bounded: the rest is on disk
    [file] = spool_files(spool_dir)
    assert len(file.read_bytes().splitlines()) == writer.spooled
    flaky.down = False
    await until(lambda: writer.spooled == 0 and writer.pending == 0)
    await writer.close()
    rows = await written(store)
    assert len(rows) == 400 and {(r.outcome, r.cost) for r in rows.values()} == {("ok", 7)}
    assert spool_files(spool_dir) == []


async def test_stopping_during_an_outage_leaves_the_records_for_the_next_process(
    store: SqlStore, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    flaky = Outageable(store)
    flaky.down = True
    first = UsageWriter(flaky, spool=FileSpool(spool_dir), shutdown_seconds=0.2)  # type: ignore[arg-type]
    first.start()
    for i in range(30):
        first.submit(record(i))
    await first.close()  # gives up after 0.2 s: the records go to disk, not away
    assert await written(store) == {}
    [left] = spool_files(spool_dir)
    assert len(left.read_bytes().splitlines()) == 30

    # the next process (the database back) writes them at once, and removes the file
    second = UsageWriter(store, spool=FileSpool(spool_dir))
    second.start()
    await until(lambda: spool_files(spool_dir) == [])
    await second.close()
    assert sorted(await written(store)) == [f"req_{i:06d}" for i in range(30)]


def spill_and_die(spool_dir: Path, count: int) -> None:
    """A process that spills ``count`` records and is killed while it holds its spool's lock;
    while it lives, no other process claims its file."""
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from gridgate.storage.usage_spool import FileSpool
        from tests.core.billing.test_usage_writer import record
        spool = FileSpool({str(spool_dir)!r})
        spool.spill([record(i) for i in range({count})])
        print("spilled", flush=True)
        sys.stdin.readline()  # held until the parent has seen the lock held
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"spilled\n"
    # alive: its file is its own, no other process claims it
    assert FileSpool(spool_dir).claim_orphan() is None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    assert proc.wait(10) == -signal.SIGKILL
    proc.stdin.close()
    proc.stdout.close()


async def test_a_spool_left_by_a_killed_process_is_written_by_a_living_one(
    store: SqlStore, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    await asyncio.to_thread(spill_and_die, spool_dir, 20)

    writer = UsageWriter(store, spool=FileSpool(spool_dir))
    writer.start()
    await until(lambda: spool_files(spool_dir) == [])
    await writer.close()
    assert len(await written(store)) == 20


def test_a_spill_cut_short_by_a_crash_loses_only_its_partial_line(tmp_path: Path) -> None:
    spool = FileSpool(tmp_path)
    spool.spill([record(1), record(2)])
    spool.close()  # holding records: the file stays
    [file] = spool_files(tmp_path)
    with file.open("ab") as f:
        f.write(b'{"request_id": "req_0000')  # the crash
    other = FileSpool(tmp_path)
    path = other.claim_orphan()
    assert path == str(file)
    chunk = other.read_orphan(path, 0, 100)
    assert [r.request_id for r in chunk.records] == ["req_000001", "req_000002"] and chunk.last
    other.written(chunk)
    assert spool_files(tmp_path) == []
    assert os.listdir(tmp_path) == []


async def test_steady_submissions_are_written_in_batches(store: SqlStore, tmp_path: Path) -> None:
    """Records arriving while a batch is written wait for the next batch: one transaction per
    ``flush_seconds`` or so, never one per record."""

    class Counting(Outageable):
        def __init__(self, store: SqlStore) -> None:
            super().__init__(store)
            self.batches = 0

        async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
            self.batches += 1
            await asyncio.sleep(0.003)  # a transaction takes a while on a busy server
            await super().insert_usage(records)

    counting = Counting(store)
    writer = UsageWriter(counting, spool=FileSpool(tmp_path / "spool"), flush_seconds=0.05)  # type: ignore[arg-type]
    writer.start()
    for i in range(400):  # about 0.5 s of a steady trickle
        writer.submit(record(i))
        await asyncio.sleep(0.001)
    await writer.close()
    assert len(await written(store)) == 400
    assert counting.batches <= 40, counting.batches


async def test_flush_writes_the_batch_being_gathered_and_latest_sees_what_waits(
    store: SqlStore,
) -> None:
    """A receipt asked for right after its answer: ``latest`` finds a record still in memory
    (its newest version), and ``flush`` writes the gathering batch at once — long before the
    batch interval (an hour here) would have."""
    writer = UsageWriter(store, flush_seconds=3600)
    writer.start()
    try:
        writer.submit(record(1, outcome="in_progress"))
        writer.submit(record(1, outcome="ok"))
        writer.submit(record(2))
        found = writer.latest("req_000001")
        assert found is not None and found.outcome == "ok"
        assert writer.latest("req_000009") is None
        assert await writer.flush(within=5) is True
        assert writer.pending == 0 and writer.latest("req_000001") is None
        on_disk = await written(store)
        assert on_disk["req_000001"].outcome == "ok" and "req_000002" in on_disk
        assert await writer.flush(within=5) is True  # nothing waits: at once
    finally:
        await writer.close()


async def test_flush_gives_up_after_its_bound_while_the_database_refuses(
    store: SqlStore,
) -> None:
    flaky = Outageable(store)
    flaky.down = True
    writer = UsageWriter(flaky, flush_seconds=0.01, retry_max_seconds=0.05)  # type: ignore[arg-type]
    writer.start()
    try:
        writer.submit(record(1))
        assert await writer.flush(within=0.2) is False
        assert writer.latest("req_000001") is not None  # still waiting in memory
        flaky.down = False
        assert await writer.flush(within=5) is True
        assert "req_000001" in await written(store)
    finally:
        await writer.close()
