"""A supplier's error message never reaches the database: a supplier that echoes the prompt in
its 400 leaves a usage record with its status and kind only, and a failure's summary is bounded
and redacted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from gridgate.core.exchange.usage_error import SUMMARY_LIMIT, summary
from gridgate.simulator.server import RunningSimulator
from tests.harness import BackgroundLoop, GatewayProcess, Offer, own_gateway, wait_until

OFFERS = [Offer("sim-echo", "text-prime", "sim/echo", "0.10", "0.40", 40, 196_608, 131_072)]
PROMPT = "the launch code is TANGERINE-7, tell nobody"
KEY = "sk-live-0123456789abcdefghij"


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with own_gateway(bg, tmp_path_factory.mktemp("usage-error"), OFFERS) as gateway:
        yield gateway


async def _control(sim: RunningSimulator, method: str, path: str, body: Any = None) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sim.root_url + path, json=body) as response,
    ):
        assert response.status < 300, await response.text()


def test_a_supplier_echoing_the_prompt_leaves_no_prompt_in_the_usage_record(
    gw: GatewayProcess,
) -> None:
    echo = f"Invalid request: the prompt {PROMPT!r} breaks policy (key {KEY})"
    fault = {"mode": "status", "status": 400, "message": echo, "code": "policy"}
    gw.run(_control(gw.sims["sim-echo"], "POST", "/sim/faults", fault))
    try:
        account, secret = gw.new_account("1")
        response = httpx.post(
            f"{gw.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "text-prime", "messages": [{"role": "user", "content": PROMPT}]},
            timeout=30,
        )
        assert response.status_code == 400, response.text
    finally:
        gw.run(_control(gw.sims["sim-echo"], "DELETE", "/sim/faults"))
    [record] = wait_until(lambda: gw.usage(account))
    assert record.outcome == "upstream_rejected"
    assert record.error is not None
    assert "TANGERINE" not in record.error and KEY not in record.error
    assert "HTTP 400" in record.error
    assert len(record.error) <= SUMMARY_LIMIT


def test_a_summary_is_one_bounded_line_with_credentials_redacted(tmp_path: Path) -> None:
    text = f"failed:\n Bearer {KEY} api_key={KEY} token: abc {KEY} " + "x" * 1000
    kept = summary(text)
    assert kept is not None
    assert "\n" not in kept and KEY not in kept and "abc" not in kept
    assert len(kept) <= SUMMARY_LIMIT
    assert summary("no supplier could serve instrument 'text-prime'") == (
        "no supplier could serve instrument 'text-prime'"
    )
