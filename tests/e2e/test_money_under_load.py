"""The money guarantees on the optimised path (balance leases), with two worker processes on
SQLite and on PostgreSQL:
concurrent requests against a small balance never overspend (on the chat and the Responses
surface), and a graceful shutdown drains
in-flight streams and writes every usage record and lease."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import aiohttp
import pytest

from gridgate.core.billing import cap_windows
from gridgate.core.clock import SystemClock
from gridgate.money import Price, format_usd
from gridgate.protocol.openai_chat import ChatRequest, decode_chat_request
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.to_chat import to_chat_request
from gridgate.protocol.tokens import measure_prompt
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    wait_until,
)
from tests.postgres import create_database, drop_database, require_postgres

# input is free, so an answer of exactly max_tokens costs exactly its worst case
OFFERS = [Offer("sim-one", "text-prime", "sim/one", "0", "0.40", 40, 196_608, 131_072)]
PRICE = Price(0, 400_000_000)
BODY = {
    "model": "text-prime",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Tell me something."}],
}
# the same request on each surface: its path, its body, and its canonical form
SURFACES: dict[str, tuple[str, dict[str, object]]] = {
    "chat": ("/chat/completions", BODY),
    "responses": (
        "/responses",
        {"model": "text-prime", "max_output_tokens": 64, "input": "Tell me something."},
    ),
}


def canonical(surface: str, body: dict[str, object]) -> ChatRequest:
    raw = json.dumps(body).encode()
    if surface == "responses":
        return to_chat_request(decode_responses_request(raw)).request
    return decode_chat_request(raw)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_workers(
    request: pytest.FixtureRequest, bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """Two gateway processes sharing one database: the embedded SQLite, or PostgreSQL."""
    database_url = None
    if request.param == "postgresql":
        require_postgres()
        database_url = bg.run(create_database())
    with simulators(bg, ["sim-one"]) as sims:
        gw = start_gateway(
            tmp_path_factory.mktemp("two"),
            bg,
            {"sim-one": sims["sim-one"].base_url},
            OFFERS,
            workers=2,
            database_url=database_url,
        )
        gw.sims = sims
        try:
            yield gw
        finally:
            gw.run(gw.store.close())
            if gw.process.poll() is None:
                gw.process.terminate()
                gw.process.wait(30)
            if gw.process.stdout is not None:
                gw.process.stdout.close()
            if database_url is not None:
                bg.run(drop_database(database_url))


def stream_ended(surface: str, text: bytes) -> bool:
    """The stream ends as its surface ends a whole answer."""
    if surface == "chat":
        return text.rstrip().endswith(b"data: [DONE]")
    last = text.rstrip().rsplit(b"\n", 1)[-1].removeprefix(b"data: ")
    event: dict[str, object] = json.loads(last)
    return event["type"] == "response.completed"


async def fire(
    base_url: str,
    key: str,
    count: int,
    body: dict[str, object],
    concurrency: int = 64,
    path: str = "/chat/completions",
) -> list[tuple[int, bytes]]:
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}

    async def one(session: aiohttp.ClientSession) -> tuple[int, bytes]:
        async with (
            limit,
            session.post(f"{base_url}{path}", json=body, headers=headers) as response,
        ):
            return response.status, await response.read()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        return await asyncio.gather(*(one(session) for _ in range(count)))


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_concurrent_requests_on_a_small_balance_never_overspend(
    two_workers: GatewayProcess, stream: bool, surface: str
) -> None:
    gw = two_workers
    path, given = SURFACES[surface]
    body: dict[str, object] = dict(given)
    if stream:
        body.update(stream=True)
        if surface == "chat":
            body.update(stream_options={"include_usage": True})
    bound = measure_prompt(canonical(surface, body)).upper_bound
    worst = PRICE.cost(bound, 64)
    k = 10
    account_id, key = gw.new_account(f"{worst * k / 1e9:.9f}")
    funded = gw.balance(account_id)
    assert funded == worst * k

    async def burst_watching_the_balance() -> tuple[list[tuple[int, bytes]], list[int]]:
        samples: list[int] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                balance = await gw.store.account_balance(account_id)
                assert balance is not None
                samples.append(balance.ledger)
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        try:
            return await fire(gw.base_url, key, 20 * k, body, path=path), samples
        finally:
            done.set()
            await watcher

    results, samples = gw.run(burst_watching_the_balance())
    assert samples and min(samples) >= 0  # never below zero at any instant observed
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 402}, statuses
    if stream:
        assert all(stream_ended(surface, text) for s, text in results if s == 200)
    served = statuses.count(200)
    # each answer is max_tokens long (the simulator's natural length is 64): each costs exactly
    # its worst case, so exactly k are served, across two processes, and not one more
    assert served == k

    wait_until(lambda: len(gw.usage(account_id)) == len(results), timeout=15)
    charged = sum(r.cost for r in gw.usage(account_id))
    assert charged == funded == served * worst
    gw.assert_balance(account_id, funded - charged)
    assert gw.balance(account_id) >= 0
    assert gw.run(gw.store.verify_ledger()).ok


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_concurrent_requests_never_pass_a_spend_cap(
    two_workers: GatewayProcess, stream: bool
) -> None:
    """20×K concurrent requests through two processes against a key's daily cap of exactly K
    worst cases, on an account that could pay for a hundred: exactly K are served, the rest
    are 402 ``spend_cap_reached``, and the cap's window never holds more than its limit."""
    gw = two_workers
    body: dict[str, object] = dict(BODY)
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    worst = PRICE.cost(measure_prompt(canonical("chat", body)).upper_bound, 64)
    k = 10
    account_id, key = gw.new_account(format_usd(100 * worst))
    (key_record,) = gw.run(gw.store.list_keys(account_id))
    cli = gw.cli(
        "caps", "set", "--key", key_record.id, "--period", "daily", "--usd", format_usd(k * worst)
    )
    assert cli.returncode == 0, cli.stderr

    def spent() -> int:
        (use,) = gw.run(gw.store.caps_of(account_id, cap_windows.windows(SystemClock().now_us())))
        return use.spent

    async def burst_watching_the_cap() -> tuple[list[tuple[int, bytes]], list[int]]:
        samples: list[int] = []
        done = asyncio.Event()
        windows = cap_windows.windows(SystemClock().now_us())

        async def watch() -> None:
            while not done.is_set():
                (use,) = await gw.store.caps_of(account_id, windows)
                samples.append(use.spent)
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        try:
            return await fire(gw.base_url, key, 20 * k, body), samples
        finally:
            done.set()
            await watcher

    results, samples = gw.run(burst_watching_the_cap())
    assert samples and max(samples) <= k * worst
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 402}, statuses
    assert statuses.count(200) == k
    refusals = [json.loads(text)["error"] for status, text in results if status == 402]
    assert {error["code"] for error in refusals} == {"spend_cap_reached"}
    assert all("resets at" in error["message"] for error in refusals)
    wait_until(lambda: len(gw.usage(account_id)) == len(results), timeout=15)
    charged = sum(r.cost for r in gw.usage(account_id))
    assert charged == k * worst
    wait_until(lambda: spent() == charged, timeout=15)  # every hold closed: charges only
    assert gw.run(gw.store.verify_ledger()).ok


def test_a_graceful_shutdown_drains_streams_and_writes_every_record(
    two_workers: GatewayProcess,
) -> None:
    gw = two_workers
    account_id, key = gw.new_account("5")
    body = {
        **BODY,
        "stream": True,
        "max_tokens": 30,
        "messages": [{"role": "user", "content": "slow [[sim:mode=slow,tokens_per_second=60]]"}],
    }

    async def streams_across_a_shutdown() -> list[tuple[int, str]]:
        headers = {"Authorization": f"Bearer {key}"}
        started = asyncio.Event()
        begun = 0

        async def one(session: aiohttp.ClientSession) -> tuple[int, str]:
            nonlocal begun
            async with session.post(
                f"{gw.base_url}/chat/completions", json=body, headers=headers
            ) as response:
                first = await response.content.readline()
                begun += 1
                if begun == 12:
                    started.set()
                rest = await response.read()
                return response.status, (first + rest).decode()

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            tasks = [asyncio.ensure_future(one(session)) for _ in range(12)]
            await started.wait()  # every stream has its first bytes …
            gw.process.send_signal(signal.SIGTERM)  # … when the gateway is told to stop
            return await asyncio.gather(*tasks)

    answers = gw.run(streams_across_a_shutdown())
    assert gw.process.wait(60) == 0
    assert all(status == 200 and text.rstrip().endswith("data: [DONE]") for status, text in answers)
    records = gw.usage(account_id)
    assert len(records) == 12 and all(r.outcome == "ok" and r.cost > 0 for r in records)
    balance = gw.run(gw.store.account_balance(account_id))
    assert balance is not None and balance.held == 0  # every lease closed at shutdown
    assert balance.ledger == 5_000_000_000 - sum(r.cost for r in records)
    assert gw.run(gw.store.verify_ledger()).ok
