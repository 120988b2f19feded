"""Offers that fail leave the eligible set and come back after recovering; a delivery out of the
instrument's spec is not billed.

``flaky`` is text-prime's cheapest offer, ``steady`` the next. Health opens an offer's circuit
after 2 failures in a row and lets it probe again after a 1 s cool-down; one good probe
re-admits it. ``text-standard`` (TTFT ceiling 1,320 ms) is served by ``steady`` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
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
    Offer("flaky", "text-prime", "sim/f", "0.10", "0.40", 40, 200_000, 64_000),
    Offer("steady", "text-prime", "sim/s", "0.20", "0.80", 40, 200_000, 64_000),
    Offer("steady", "text-standard", "sim/s", "0.20", "0.80", 40, 200_000, 64_000),
]
HEALTH = """
[health]
breaker_failures = 2
cooldown_seconds = 1
max_cooldown_seconds = 2
probation_successes = 1
min_samples = 5
"""


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with simulators(bg, ["flaky", "steady"]) as sims:
        gateway = start_gateway(
            tmp_path_factory.mktemp("health"),
            bg,
            {name: sim.base_url for name, sim in sims.items()},
            OFFERS,
            extra_config=HEALTH,
            upstream="first_byte_timeout_seconds = 2",
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


def requests_seen(gw: GatewayProcess, name: str) -> int:
    stats = gw.run(_control(gw.sims[name], "GET", "/sim/stats"))
    return int(stats["requests_total"])


def served_by(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="text-prime", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    return str(raw.headers["x-gridgate-supplier"])


def status(gw: GatewayProcess, key: str) -> dict[str, Any]:
    response = httpx.get(f"{gw.base_url}/offers/status", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    return {entry["offer"]: entry for entry in response.json()["data"]}


def test_a_failing_offer_leaves_and_comes_back_after_recovering(gw: GatewayProcess) -> None:
    _, key = gw.new_account("5")
    flaky_offer = "flaky/text-prime/sim/f"
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        assert served_by(client) == "flaky"
        gw.run(_control(gw.sims["flaky"], "POST", "/sim/faults", {"mode": "status", "status": 500}))
        # two failures in a row, each invisible to the caller (steady serves)
        assert served_by(client) == "steady"
        assert served_by(client) == "steady"
        board = status(gw, key)
        assert board[flaky_offer]["state"] == "ejected"
        assert "2 failures in a row" in board[flaky_offer]["reason"]
        # ejected: the next requests do not even try it
        seen = requests_seen(gw, "flaky")
        assert served_by(client) == "steady"
        assert requests_seen(gw, "flaky") == seen

        gw.run(_control(gw.sims["flaky"], "DELETE", "/sim/faults"))
        # after the cool-down a probe goes to flaky, succeeds, and it is healthy again
        wait_until(lambda: served_by(client) == "flaky" or None, timeout=10, interval=0.1)
        assert status(gw, key)[flaky_offer]["state"] == "healthy"
        assert served_by(client) == "flaky"


def test_a_delivery_slower_than_the_spec_is_not_billed(gw: GatewayProcess) -> None:
    account, key = gw.new_account("5")
    before = gw.balance(account)
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="text-standard",  # TTFT ceiling 1,320 ms
            messages=[{"role": "user", "content": "Hi [[sim:mode=slow,ttft_ms=1600]]"}],
            max_tokens=5,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text  # the caller got the answer…
    [record] = wait_until(lambda: [r for r in gw.usage(account) if r.outcome == "ok"] or None)
    assert record.in_spec is False  # …out of spec…
    assert record.spec_note is not None and "first token after" in record.spec_note
    assert record.cost == 0 and not record.billed  # …and free
    assert record.output_tokens == 5
    assert gw.balance(account) == before

    # an answer within the spec is billed as usual
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        list(
            client.chat.completions.create(
                model="text-standard",
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=5,
                stream=True,
            )
        )
    billed = wait_until(lambda: [r for r in gw.usage(account) if r.billed] or None)
    assert billed[0].in_spec is True and billed[0].cost > 0


FAULTS = {
    "500": {"mode": "status", "status": 500},
    "429": {"mode": "status", "status": 429, "retry_after": 1},
    "hang-before-first-byte": {"mode": "hang"},
    "drop-before-first-byte": {"mode": "drop", "after": 0},
    "malformed-json": {"mode": "malformed", "after": 0},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_chaos_the_caller_gets_a_clean_answer_charged_only_for_what_served(
    gw: GatewayProcess, fault: str
) -> None:
    """Whatever ``flaky`` does before its first byte, the caller gets ``steady``'s answer,
    charged at steady's price only; flaky leaves the eligible set, and comes back once it
    behaves again."""
    _, prober = gw.new_account("5")
    with openai.OpenAI(base_url=gw.base_url, api_key=prober, max_retries=0) as client:
        # from any earlier test, flaky is back in play once its cool-down has passed
        wait_until(lambda: served_by(client) == "flaky" or None, timeout=10, interval=0.1)
    account, key = gw.new_account("5")
    gw.run(_control(gw.sims["flaky"], "POST", "/sim/faults", FAULTS[fault]))
    try:
        with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
            for stream in (False, True, False):
                raw = client.chat.completions.with_raw_response.create(
                    model="text-prime",
                    messages=[{"role": "user", "content": "Hi"}],
                    max_tokens=3,
                    stream=stream,
                )
                assert raw.headers["x-gridgate-supplier"] == "steady"
                if stream:
                    text = "".join(
                        c.choices[0].delta.content or "" for c in raw.parse() if c.choices
                    )
                else:
                    text = raw.parse().choices[0].message.content or ""
                assert text
        assert status(gw, key)["flaky/text-prime/sim/f"]["state"] == "ejected"
    finally:
        gw.run(_control(gw.sims["flaky"], "DELETE", "/sim/faults"))
    records = wait_until(lambda: gw.usage(account) if len(gw.usage(account)) == 3 else None)
    assert all(r.outcome == "ok" and r.supplier == "steady" for r in records)
    steady = Price(nanos("0.20"), nanos("0.80"))
    assert all(r.cost == steady.cost(r.input_tokens, r.output_tokens) for r in records)
    assert gw.balance(account) == nanos("5") - sum(r.cost for r in records)
