"""build_state: a process's state is taken apart in the order its parts depend on — the
background tasks stop first, the usage writer drains before the leases and the store close,
and the store closes last."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from gridgate.core.billing.leases import LeaseBook
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.clock import SystemClock
from gridgate.core.idempotency.keys import IdempotencyKeys
from gridgate.core.limits.guard import RateGuard
from gridgate.core.responses.stored import DAY_US, StoredResponses
from gridgate.metrics import Metrics
from gridgate.settings import ResponsesSettings, Settings
from gridgate.state import build_state
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.ports.idempotency import IdempotencyRecord
from gridgate.storage.ports.responses import StoredItem
from gridgate.storage.records import KeyRecord
from gridgate.storage.sql import SqlStore
from gridgate.tasks import BackgroundTasks
from tests.storage.conftest import raw_sql


async def test_the_state_closes_in_reverse_dependency_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def record(cls: type, method: str, label: str) -> None:
        original = getattr(cls, method)
        if asyncio.iscoroutinefunction(original):

            async def traced(self: object) -> None:
                closed.append(label)
                await original(self)

            monkeypatch.setattr(cls, method, traced)
        else:
            monkeypatch.setattr(cls, method, lambda self: (closed.append(label), original(self)))

    record(BackgroundTasks, "drain", "tasks")
    record(UsageWriter, "close", "usage")
    record(RateGuard, "close", "guard")
    record(MemoryLimiter, "close", "limiter")
    record(Metrics, "flush", "metrics")
    record(LeaseBook, "close", "leases")
    record(aiohttp.ClientSession, "close", "http")
    record(SqlStore, "close", "store")
    settings = Settings(data_dir=str(tmp_path))
    async with build_state(settings, SystemClock(), {}, openapi=b"{}") as state:
        assert state.openapi == b"{}"
        closed.clear()
    assert closed == [
        "tasks",
        "usage",
        "guard",
        "limiter",  # the requests' limiter, closed by the guard
        "limiter",  # the login limiter
        "metrics",
        "leases",
        "http",
        "store",
    ]


async def test_the_state_serves_stored_responses_and_sweeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AppState.responses`` keeps a response in the process's store for the configured
    retention, and the sweep among the background tasks deletes what expired."""
    swept = asyncio.Event()
    sweep = StoredResponses.sweep

    async def observed(self: StoredResponses) -> int:
        removed = await sweep(self)
        if removed:
            swept.set()
        return removed

    monkeypatch.setattr(StoredResponses, "sweep", observed)
    responses = ResponsesSettings(retention_days=2, sweep_seconds=0.05)
    settings = Settings(data_dir=str(tmp_path), responses=responses)
    key = KeyRecord(
        id="key_1", name="k", prefix="gg_", secret_hash="h", created_us=0, account_id="acct_1"
    )
    async with build_state(settings, SystemClock(), {}, openapi=b"{}") as state:
        assert state.responses.enabled
        assert "gridgate-responses-sweep" in {t.get_name() for t in asyncio.all_tasks()}
        await state.responses.save(
            caller=key,
            response_id="resp_1",
            previous_response_id=None,
            input_items=[b'{"type":"message","role":"user","content":"hi"}'],
            output_items=[],
            response=b'{"id":"resp_1"}',
        )
        assert await state.responses.get("acct_1", "resp_1") == b'{"id":"resp_1"}'
        [(created, expires)] = await raw_sql(
            settings.database_url, "SELECT created_us, expires_us FROM responses"
        )
        assert expires - created == 2 * DAY_US
        await state.store.save_response(
            response_id="resp_old",
            account_id="acct_1",
            key_id=None,
            previous_response_id=None,
            response="{}",
            items=[StoredItem(kind="input", item_id="msg_1", item="{}")],
            created_us=0,
            expires_us=1,
        )
        async with asyncio.timeout(10):
            await swept.wait()
    assert await raw_sql(settings.database_url, "SELECT id FROM responses") == [("resp_1",)]
    items = await raw_sql(settings.database_url, "SELECT response_id FROM response_items")
    assert items == [("resp_1",)]


async def test_the_responses_sweep_deletes_expired_idempotency_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept idempotent answers are swept by the stored responses' loop."""
    swept = asyncio.Event()
    sweep = IdempotencyKeys.sweep

    async def observed(self: IdempotencyKeys) -> int:
        removed = await sweep(self)
        if removed:
            swept.set()
        return removed

    monkeypatch.setattr(IdempotencyKeys, "sweep", observed)
    settings = Settings(data_dir=str(tmp_path), responses=ResponsesSettings(sweep_seconds=0.05))
    async with build_state(settings, SystemClock(), {}, openapi=b"{}") as state:
        for key, expires in (("old", 1), ("live", 2**62)):
            claimed = IdempotencyRecord(
                account_id="acct_1",
                key=key,
                request_hash="h",
                endpoint="/v1/chat/completions",
                status="running",
                stream=False,
                owner="o",
                created_us=0,
                expires_us=expires,
                stale_us=expires,
            )
            assert await state.store.claim_idempotency_key(claimed, 0) is None
        async with asyncio.timeout(10):
            await swept.wait()
    assert await raw_sql(settings.database_url, "SELECT key FROM idempotency_keys") == [("live",)]
