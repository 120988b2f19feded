"""``Idempotency-Key`` across two ``gridgate serve`` processes on one PostgreSQL database: a
duplicate sent to the other process while the first still streams waits for it and replays the
whole answer, and duplicates spread over both processes reach the supplier once, charged
once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from tests.e2e.test_idempotency import KEY, LONG_STREAM, REPLAYED, as_bytes, new_key
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

OFFERS = [Offer("sim-a", "text-prime", "sim/prime-a", "0.10", "0.40", 40, 196_608, 65_536)]


@pytest.fixture(scope="module")
def pair(
    bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    require_postgres()
    database_url = bg.run(create_database())
    gateways: list[GatewayProcess] = []
    with simulators(bg, ["sim-a"]) as sims:
        try:
            for name in ("one", "two"):
                gateway = start_gateway(
                    tmp_path_factory.mktemp(name),
                    bg,
                    {n: s.base_url for n, s in sims.items()},
                    OFFERS,
                    database_url=database_url,
                )
                gateway.sims = sims
                gateways.append(gateway)
            yield gateways
        finally:
            for gateway in gateways:
                assert stop_gateway(gateway) == 0, gateway.log_path.read_text()
            bg.run(drop_database(database_url))


def _stats(gateway: GatewayProcess) -> dict[str, Any]:
    root = gateway.sims["sim-a"].base_url.removesuffix("/v1")
    return httpx.get(f"{root}/sim/stats", timeout=10).json()  # type: ignore[no-any-return]


async def _post(
    session: aiohttp.ClientSession, gateway: GatewayProcess, secret: str, key: str, body: bytes
) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    async with session.post(
        f"{gateway.base_url}/chat/completions", data=body, headers=headers
    ) as r:
        return r.status, await r.read(), r.headers.get(REPLAYED, "")


async def _first_then_elsewhere(
    pair: list[GatewayProcess], secret: str, key: str
) -> list[tuple[int, bytes, str]]:
    """The first request to one process; once its first bytes have come (it streams), the
    same to the other process."""
    body = as_bytes(LONG_STREAM)
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        url = f"{pair[0].base_url}/chat/completions"
        async with session.post(url, data=body, headers=headers) as r:
            seen = await r.content.readany()
            assert seen.startswith(b"data: ") and b"[DONE]" not in seen
            second = await _post(session, pair[1], secret, key, body)
            first = (r.status, seen + await r.read(), r.headers.get(REPLAYED, ""))
        return [first, second]


def _one_record(gateway: GatewayProcess, account_id: str) -> Any:
    [record] = wait_until(lambda: gateway.usage(account_id))
    gateway.assert_balance(account_id, gateway.balance(account_id))
    return record


def test_a_duplicate_in_the_other_process_waits_and_replays_the_whole_stream(
    pair: list[GatewayProcess],
) -> None:
    one = pair[0]
    account_id, secret = one.new_account()
    start = one.balance(account_id)
    calls = _stats(one)["requests_total"]
    first, second = one.run(_first_then_elsewhere(pair, secret, new_key()))
    assert first[0] == second[0] == 200
    assert first[1].endswith(b"data: [DONE]\n\n")
    assert second[1] == first[1]
    assert (first[2], second[2]) == ("", "true")
    assert _stats(one)["requests_total"] == calls + 1
    record = _one_record(one, account_id)
    assert record.outcome == "ok"
    one.assert_balance(account_id, start - record.cost)


async def _spread(
    pair: list[GatewayProcess], secret: str, key: str, n: int
) -> list[tuple[int, bytes, str]]:
    body = as_bytes({**LONG_STREAM, "stream": False})
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(
            *(_post(session, pair[i % 2], secret, key, body) for i in range(n))
        )


def test_duplicates_spread_over_both_processes_reach_the_supplier_once(
    pair: list[GatewayProcess],
) -> None:
    one = pair[0]
    account_id, secret = one.new_account()
    start = one.balance(account_id)
    calls = _stats(one)["requests_total"]
    answers = one.run(_spread(pair, secret, new_key(), 6))
    assert {status for status, _, _ in answers} == {200}
    assert len({body for _, body, _ in answers}) == 1
    assert sorted(replayed for _, _, replayed in answers) == [""] + ["true"] * 5
    assert _stats(one)["requests_total"] == calls + 1
    record = _one_record(one, account_id)
    one.assert_balance(account_id, start - record.cost)
