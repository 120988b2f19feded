"""Hedging for the TTFT promise: text-standard promises a first token within 1.32 s. Its cheapest
offer (``laggard``) takes 3 s to its first token; ``sprinter`` is quick. With hedging at half the
ceiling, every stream starts ``sprinter`` too after 0.66 s, and the caller's TTFT stays under the
ceiling; the caller pays once, at the serving offer's price, and ``laggard`` sees its request
cancelled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest

from gridgate.money import Price
from gridgate.simulator.server import RunningSimulator
from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    nanos,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

OFFERS = [
    Offer("laggard", "text-standard", "sim/l", "0.10", "0.40", 40, 200_000, 64_000),
    Offer("sprinter", "text-standard", "sim/s", "0.30", "1.20", 40, 200_000, 64_000),
]
CEILING_S = 1.32
REQUESTS = 8


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with simulators(bg, ["laggard", "sprinter"]) as sims:
        gateway = start_gateway(
            tmp_path_factory.mktemp("hedging"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            OFFERS,
            # the laggard is slow on every delivery; health would eject it after enough of
            # them, so keep it in play: this test is about hedging alone
            extra_config="[health]\nenabled = false\n[hedging]\nfraction = 0.5\n",
        )
        gateway.sims = sims
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


async def _control(sim: RunningSimulator, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sim.root_url + path, json=body) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


def test_a_hedge_keeps_the_ttft_promise_and_is_paid_once(gw: GatewayProcess) -> None:
    gw.run(_control(gw.sims["laggard"], "POST", "/sim/faults", {"mode": "slow", "ttft_ms": 3000}))
    account, key = gw.new_account("5")
    ttfts: list[float] = []
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        for _ in range(REQUESTS):
            started = time.monotonic()
            raw = client.chat.completions.with_streaming_response.create(
                model="text-standard",
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
            with raw as response:
                assert response.headers["x-gridgate-supplier"] == "sprinter"
                first = None
                usage = None
                for chunk in response.parse():
                    if first is None:
                        first = time.monotonic() - started
                    usage = chunk.usage or usage
                assert first is not None and usage is not None
                ttfts.append(first)
    assert max(ttfts) < CEILING_S, ttfts
    assert min(ttfts) >= CEILING_S * 0.5 - 0.05  # the hedge started at half the ceiling

    records = wait_until(
        lambda: (
            [r for r in gw.usage(account) if r.outcome == "ok"]
            if len([r for r in gw.usage(account) if r.outcome == "ok"]) == REQUESTS
            else None
        )
    )
    price = Price(nanos("0.30"), nanos("1.20"))
    for record in records:  # one record, one charge per request, at the serving offer's price
        assert record.supplier == "sprinter"
        assert record.cost == price.cost(record.input_tokens, record.output_tokens)
    assert len({r.request_id for r in records}) == REQUESTS
    assert gw.balance(account) == nanos("5") - sum(r.cost for r in records)
    # every laggard request was abandoned: it saw each one, and each was cancelled
    stats = gw.run(_control(gw.sims["laggard"], "GET", "/sim/stats"))
    assert stats["requests_total"] >= REQUESTS
