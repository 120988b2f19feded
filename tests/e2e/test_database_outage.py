"""A PostgreSQL outage under load: nothing served is lost, nothing fails with a 500.

Two ``gridgate serve`` workers reach PostgreSQL through a proxy the test cuts (the machine's shared
server keeps running); keys are cached (``auth.cache_seconds = 30``), so requests on the
processes' open leases are served through the outage while their usage records cannot be
written. After the outage and a clean stop, every request that was answered 200 has exactly one
usage record, every lease charged what its records cost (``gridgate ledger verify``), and the
account's statement reconciles; callers the gateway could not serve got 503 with
``Retry-After``, and the log says so once per process, not once per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)
from tests.postgres import create_database, drop_database, require_postgres
from tests.tcp_proxy import CuttableProxy

OFFERS = [Offer("sim-a", "text-prime", "sim/a", "0.10", "0.40", 40, 196_608, 131_072)]
CLIENTS = 8
MAX_REQUESTS = 200_000  # a bound on the load whatever the timing, well above what a run makes
BODY = {"model": "text-prime", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


class Outcome:
    def __init__(self, status: int, request_id: str, retry_after: str | None, body: bytes) -> None:
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


@pytest.fixture
def database(bg: BackgroundLoop) -> Iterator[str]:
    require_postgres()
    url = bg.run(create_database())
    try:
        yield url
    finally:
        bg.run(drop_database(url))


@pytest.fixture
def proxy(bg: BackgroundLoop, database: str) -> Iterator[CuttableProxy]:
    parsed = make_url(database)
    cuttable = CuttableProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    bg.run(cuttable.start())
    try:
        yield cuttable
    finally:
        bg.run(cuttable.close())


def _through(database: str, proxy: CuttableProxy) -> str:
    return (
        make_url(database)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


async def _load(
    base_url: str, keys: list[str], stop: asyncio.Event, outcomes: list[Outcome]
) -> None:
    async def client(i: int) -> None:
        headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
        body = {**BODY, "stream": i % 3 == 0}
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while not stop.is_set() and len(outcomes) < MAX_REQUESTS:
                answer = await http.post("/chat/completions", json=body, headers=headers)
                outcomes.append(
                    Outcome(
                        answer.status_code,
                        answer.headers.get("x-request-id", ""),
                        answer.headers.get("retry-after"),
                        answer.content,
                    )
                )

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))


def _more_than(outcomes: list[Outcome], count: int) -> Callable[[], bool]:
    return lambda: len(outcomes) > count


def _readyz(gw: GatewayProcess) -> int:
    return httpx.get(gw.base_url.removesuffix("/v1") + "/readyz", timeout=5).status_code


@pytest.mark.parametrize("outage_seconds", [4, 30])
def test_an_outage_under_load_loses_no_usage_record_and_answers_503_not_500(
    bg: BackgroundLoop,
    tmp_path: Path,
    database: str,
    proxy: CuttableProxy,
    outage_seconds: int,
) -> None:
    with simulators(bg, ["sim-a"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {"sim-a": sims["sim-a"].base_url},
            OFFERS,
            extra_config="[auth]\ncache_seconds = 30\n[health]\nenabled = false\n",
            database_url=_through(database, proxy),
            workers=2,
            # few records in memory, so a long outage spills them to the spool on disk
            billing="usage_memory_records = 200\n",
        )
        try:
            account, key_one = gw.new_account("20", name="outage")
            keys = [key_one]
            _, unseen = gw.new_account("1", name="first request during the outage")
            stop = asyncio.Event()
            outcomes: list[Outcome] = []
            load = asyncio.run_coroutine_threadsafe(
                _load(gw.base_url, keys, stop, outcomes), bg.loop
            )
            wait_until(lambda: sum(o.status == 200 for o in outcomes) >= 200, timeout=30)
            served_before = len(outcomes)
            bg.run(proxy.cut())
            cut_at = time.monotonic()
            assert wait_until(lambda: _readyz(gw) == 503, timeout=5)
            # a key no process has cached needs the database: refused, to be retried
            probe = httpx.post(
                f"{gw.base_url}/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {unseen}"},
                timeout=30,
            )
            assert probe.status_code == 503, probe.text
            assert int(probe.headers["retry-after"]) > 0
            assert probe.json()["error"]["type"] == "service_unavailable"
            while time.monotonic() - cut_at < outage_seconds:  # the outage, under load
                wait_until(_more_than(outcomes, len(outcomes)), timeout=10)
            during = outcomes[served_before:]
            bg.run(proxy.restore())
            wait_until(lambda: _readyz(gw) == 200, timeout=15)
            after = len(outcomes)
            wait_until(lambda: sum(o.status == 200 for o in outcomes[after:]) >= 200, timeout=30)
            bg.loop.call_soon_threadsafe(stop.set)
            load.result(60)
        finally:
            code = stop_gateway(gw)
    log = gw.log_path.read_text()
    assert code == 0, log

    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, {o.status: o.body[:300] for o in outcomes if o.status != 200}
    refused = [o for o in outcomes if o.status == 503]
    assert all(o.retry_after is not None and int(o.retry_after) > 0 for o in refused)
    assert all(json.loads(o.body)["error"]["code"] == "temporarily_unavailable" for o in refused)
    served = [o.request_id for o in outcomes if o.status == 200]
    assert sum(1 for o in during if o.status == 200) > 0, "nothing was served during the outage"

    # every served request: exactly one usage record, billed; and nothing else was recorded
    async def recorded() -> list[Any]:
        return await gw.store.list_usage(account_id=account, limit=None)

    gw.bg.run(gw.store.open())
    try:
        records = gw.run(recorded())
    finally:
        gw.run(gw.store.close())
    by_id = [r.request_id for r in records]
    assert len(by_id) == len(set(by_id))
    assert sorted(by_id) == sorted(served), (
        f"{len(set(served) - set(by_id))} served without a record, "
        f"{len(set(by_id) - set(served))} recorded but not served"
    )
    assert all(r.billed and r.cost > 0 and r.outcome == "ok" for r in records)

    verify = gw.cli("ledger", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["holds_checked"] > 0, report

    statement = gw.cli("accounts", "statement", account, "--json")
    assert statement.returncode == 0, statement.stderr
    totals = json.loads(statement.stdout)["totals"]
    assert -int(totals["lease_net_nanos"]) == int(totals["usage_cost_nanos"]) > 0
    assert int(totals["opening_balance_nanos"]) + int(totals["net_nanos"]) == int(
        totals["closing_balance_nanos"]
    )

    # one line per process when the outage began (and one when it ended), not one per request
    assert "Traceback" not in log and "unhandled error" not in log
    began = log.count("database unreachable")
    assert 1 <= began <= 2, began
    assert log.count("database reachable again") == began
