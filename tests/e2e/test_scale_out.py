"""Scale-out: several gateway processes on one PostgreSQL and one Redis, limits exact across them.

Two ``gridgate serve`` processes (as on two hosts behind a load balancer) share a fresh
PostgreSQL database and a Redis namespace of their own. Requests alternate between them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
from tests.redis_server import gridgate_namespace, require_redis

OFFERS = [
    Offer("sim-a", "text-prime", "sim/a", "0.10", "0.40", 40, 196_608, 131_072),
    Offer("sim-b", "text-prime", "sim/b", "0.20", "0.80", 40, 196_608, 131_072),
]
FAST = "hi [[sim:mode=slow,tokens_per_second=100000]]"  # the whole answer at once
SHORT = {"model": "text-prime", "max_tokens": 4, "messages": [{"role": "user", "content": FAST}]}
# ~1.2 s each at the simulators' 60 tokens/s
LONG = {
    "model": "text-prime",
    "max_tokens": 72,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


class Fleet:
    def __init__(
        self, gateways: list[GatewayProcess], bg: BackgroundLoop, config: str, database_url: str
    ) -> None:
        self.gateways = gateways
        self.bg = bg
        self.config = config  # what each process's config adds (Redis, caches)
        self.database_url = database_url

    @property
    def first(self) -> GatewayProcess:
        return self.gateways[0]

    def burst(
        self, key: str, count: int, body: dict[str, Any] = SHORT
    ) -> list[tuple[int, dict[str, str], bytes]]:
        """``count`` requests at once, alternating between the processes."""

        async def run() -> list[tuple[int, dict[str, str], bytes]]:
            async with aiohttp.ClientSession() as http:

                async def one(i: int) -> tuple[int, dict[str, str], bytes]:
                    gateway = self.gateways[i % len(self.gateways)]
                    async with http.post(
                        f"{gateway.base_url}/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {key}"},
                    ) as response:
                        return response.status, dict(response.headers), await response.read()

                return await asyncio.gather(*(one(i) for i in range(count)))

        return self.bg.run(run())

    def status(
        self, gateway: GatewayProcess, key: str, body: dict[str, Any] = SHORT
    ) -> tuple[int, dict[str, str]]:
        async def run() -> tuple[int, dict[str, str]]:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{gateway.base_url}/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                ) as response,
            ):
                await response.read()
                return response.status, dict(response.headers)

        return self.bg.run(run())

    def cli_json(self, *args: str) -> dict[str, Any]:
        done = self.first.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def key_id(self, account_id: str) -> str:
        [key] = self.first.run(self.first.store.list_keys(account_id))
        return key.id


@pytest.fixture(scope="module")
def fleet(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_postgres()
    redis_url = require_redis()
    database_url = bg.run(create_database())
    config = (
        f'[redis]\nurl = "{redis_url}"\nnamespace = "{gridgate_namespace()}"\n'
        "[auth]\ncache_seconds = 30\n"  # cached keys: only the change feed can revoke in time
        "[changes]\npoll_seconds = 0.25\n"
        # routing by price alone here: measured health would eject an offer on the slow streams
        "[health]\nenabled = false\n"
    )
    gateways: list[GatewayProcess] = []
    with simulators(bg, ["sim-a", "sim-b"], tokens_per_second=60.0) as sims:
        try:
            for name in ("one", "two"):
                gateway = start_gateway(
                    tmp_path_factory.mktemp(name),
                    bg,
                    {n: s.base_url for n, s in sims.items()},
                    OFFERS,
                    extra_config=config,
                    database_url=database_url,
                    billing="lease_usd = 0.05",
                )
                gateway.sims = sims
                gateways.append(gateway)
            yield Fleet(gateways, bg, config, database_url)
        finally:
            for gateway in gateways:
                stop_gateway(gateway)
            bg.run(drop_database(database_url))


def _within_one_second(check: Any) -> float:
    """Seconds until ``check()`` holds, failing past 1 s."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"not visible after {elapsed:.2f} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_key_limited_to_r_per_minute_gets_exactly_r_of_a_burst_of_5r(fleet: Fleet) -> None:
    account, key = fleet.first.new_account("5")
    key_id = fleet.key_id(account)
    shown = fleet.cli_json("keys", "limits", key_id, "--rpm", "10")
    assert shown["effective"]["requests_per_minute"] == 10
    probes: list[dict[str, str]] = []  # until both processes apply the limit

    def limited_everywhere() -> bool:
        seen = [fleet.status(gateway, key)[1] for gateway in fleet.gateways]
        probes.extend(seen)
        return all(h.get("X-RateLimit-Limit") == "10" for h in seen)

    _within_one_second(limited_everywhere)
    counted = sum(1 for h in probes if h.get("X-RateLimit-Limit") == "10")
    results = fleet.burst(key, 50)
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(ok) == 10 - counted and len(refused) == 40 + counted, sorted(r[0] for r in results)
    for _, headers, body in refused:
        assert int(headers["Retry-After"]) >= 1
        assert headers["X-RateLimit-Limit"] == "10"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
        error = json.loads(body)["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
        assert "10 requests per minute" in error["message"]
    for _, headers, _ in ok:
        assert headers["X-RateLimit-Limit"] == "10"
        assert 0 <= int(headers["X-RateLimit-Remaining"]) < 10
    # every process counts the refusals it made; together, all of them
    refusals = sum(
        _scrape(g, "gridgate_rate_limited_total", scope="key", kind="requests")
        for g in fleet.gateways
    )
    assert refusals >= len(refused)  # earlier tests' keys may add theirs
    # a refused request is not charged, holds nothing and leaves no record
    served = len(probes) + len(ok)
    records = wait_until(lambda: (r := fleet.first.usage(account)) and len(r) >= served and r)
    assert len(records) == served and all(r.status == 200 for r in records)
    charged = sum(r.cost for r in records)
    fleet.first.assert_balance(account, 5_000_000_000 - charged)


def test_a_concurrency_limit_is_never_exceeded_across_processes(fleet: Fleet) -> None:
    account, key = fleet.first.new_account("5")
    fleet.cli_json("accounts", "limits", account, "--concurrent", "3")
    sim = fleet.first.sims["sim-a"]
    _within_one_second(
        lambda: all("X-RateLimit-Limit" in fleet.status(g, key)[1] for g in fleet.gateways)
    )
    for _ in range(2):  # twice: the slots of finished streams come back
        fleet.bg.run(_sim(sim.root_url, "POST", "/sim/reset"))
        results = fleet.burst(key, 12, LONG)
        assert sorted(r[0] for r in results) == [200] * 3 + [429] * 9
        assert all(b.rstrip().endswith(b"data: [DONE]") for s, _, b in results if s == 200)
        stats = fleet.bg.run(_sim(sim.root_url, "GET", "/sim/stats"))
        assert stats["max_in_flight"] == 3


def test_a_finished_requests_slot_is_free_for_its_clients_next_request_in_either_process(
    fleet: Fleet,
) -> None:
    """One request at a time, alternating between the processes, under a concurrency limit of
    one: each finds the slot its predecessor held free (the release reaches Redis before the
    end of the answer does), plain and streamed."""
    account, key = fleet.first.new_account("5")
    fleet.cli_json("keys", "limits", fleet.key_id(account), "--concurrent", "1")
    _within_one_second(
        lambda: all("X-RateLimit-Limit" in fleet.status(g, key)[1] for g in fleet.gateways)
    )
    streamed = {**SHORT, "stream": True}
    statuses = [
        fleet.status(fleet.gateways[i % 2], key, streamed if i % 4 < 2 else SHORT)[0]
        for i in range(40)
    ]
    assert statuses == [200] * 40


def _scrape(gateway: GatewayProcess, name: str, **labels: str) -> float:
    text = httpx.get(gateway.base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def _sim(base_url: str, method: str, path: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{base_url}{path}") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


def test_tokens_per_minute_hold_within_one_request(fleet: Fleet) -> None:
    account, key = fleet.first.new_account("5")
    key_id = fleet.key_id(account)
    fleet.cli_json("keys", "limits", key_id, "--tpm", "3000")
    body = {**SHORT, "max_tokens": 300}
    _within_one_second(
        lambda: all(
            fleet.status(g, key, {**SHORT, "max_tokens": 1})[1].get("x-ratelimit-limit-tokens")
            == "3000"
            for g in fleet.gateways
        )
    )
    served = 0
    for i in range(60):
        status, _ = fleet.status(fleet.gateways[i % 2], key, body)
        if status == 429:
            break
        assert status == 200
        served += 1
    else:
        pytest.fail("the token limit never refused")
    records = wait_until(lambda: (r := fleet.first.usage(account)) and len(r) >= served and r)
    used = sum(r.input_tokens + r.output_tokens for r in records)
    worst = 300 + 250  # max output + a bound of this short prompt
    # never over the limit; refused no earlier than the worst cases of this request and of
    # the one before it (whose correction to what it used may still be on its way to Redis)
    assert 3000 - 2 * worst <= used <= 3000, (served, used)


def test_a_key_revoked_through_one_process_is_rejected_by_the_other_within_a_second(
    fleet: Fleet,
) -> None:
    account, key = fleet.first.new_account("5")
    for gateway in fleet.gateways:  # both have the key in their caches now
        assert fleet.status(gateway, key)[0] == 200
    fleet.cli_json("keys", "revoke", fleet.key_id(account))
    for gateway in fleet.gateways:
        _within_one_second(lambda g=gateway: fleet.status(g, key)[0] == 401)


def test_a_changed_limit_a_disabled_offer_and_a_credit_reach_every_process(fleet: Fleet) -> None:
    account, key = fleet.first.new_account("0")
    for gateway in fleet.gateways:
        assert fleet.status(gateway, key)[0] == 402
    fleet.first.cli("accounts", "credit", account, "2")
    for gateway in fleet.gateways:
        _within_one_second(lambda g=gateway: fleet.status(g, key)[0] == 200)

    for gateway in fleet.gateways:
        assert fleet.status(gateway, key)[1]["x-gridgate-supplier"] == "sim-a"
    fleet.cli_json("offers", "disable", "sim-a/text-prime/sim/a")
    try:
        for gateway in fleet.gateways:
            _within_one_second(
                lambda g=gateway: fleet.status(g, key)[1].get("x-gridgate-supplier") == "sim-b"
            )
    finally:
        fleet.cli_json("offers", "enable", "sim-a/text-prime/sim/a")
    for gateway in fleet.gateways:
        _within_one_second(
            lambda g=gateway: fleet.status(g, key)[1].get("x-gridgate-supplier") == "sim-a"
        )

    fleet.cli_json("keys", "limits", fleet.key_id(account), "--rpm", "0")
    for gateway in fleet.gateways:
        _within_one_second(lambda g=gateway: fleet.status(g, key)[0] == 429)


def test_a_process_stopped_mid_stream_finishes_it_and_gives_its_slot_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A third process joins the fleet, serves a stream under a concurrency limit of 1, and is
    told to stop (SIGTERM) while the stream runs: the stream ends whole, its record is final,
    and the slot it held in Redis is free for the other processes at once."""
    one = fleet.first
    third = start_gateway(
        tmp_path,
        fleet.bg,
        {n: s.base_url for n, s in one.sims.items()},
        OFFERS,
        extra_config=fleet.config,
        database_url=fleet.database_url,
    )
    try:
        account, key = one.new_account("5")
        fleet.cli_json("keys", "limits", fleet.key_id(account), "--concurrent", "1")
        _within_one_second(
            lambda: all("X-RateLimit-Limit" in fleet.status(g, key)[1] for g in (third, one))
        )

        async def stream_across_a_stop() -> tuple[int, bytes, int]:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{third.base_url}/chat/completions",
                    json=LONG,
                    headers={"Authorization": f"Bearer {key}"},
                ) as response,
            ):
                first = await response.content.readline()
                async with http.post(  # the one slot is taken, across processes
                    f"{one.base_url}/chat/completions",
                    json=SHORT,
                    headers={"Authorization": f"Bearer {key}"},
                ) as other:
                    busy = other.status
                third.process.send_signal(signal.SIGTERM)
                return response.status, first + await response.read(), busy

        status, body, busy = fleet.bg.run(stream_across_a_stop())
        assert busy == 429
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
        assert third.process.wait(60) == 0
        assert fleet.status(one, key)[0] == 200  # the slot came back with the stop
        # the stream's record is final (not a checkpoint), and no refusal left one
        streams = wait_until(lambda: [r for r in one.usage(account) if r.stream])
        assert [(r.status, r.outcome) for r in streams] == [(200, "ok")]
        assert streams[0].cost > 0
        assert all(r.status == 200 for r in one.usage(account))
    finally:
        stop_gateway(third)
