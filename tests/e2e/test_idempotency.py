"""``Idempotency-Key`` on the three inference surfaces, against a real ``gridgate serve`` and a
simulator that counts what reaches it: a retry replays the answer (same bytes, same status,
``Idempotent-Replayed: true``) and charges nothing more (one usage record, one charge), a
stream is replayed or re-attached, a client that leaves mid-stream gets the whole answer on its
retry for one charge, concurrent duplicates reach the supplier once, and a key reused for
another body is 409."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import BackgroundLoop, GatewayProcess, Offer, own_gateway, wait_until

OFFERS = [Offer("sim-idem", "text-prime", "sim/idem", "0.10", "0.40", 40, 196_608, 131_072)]
KEY = "Idempotency-Key"
REPLAYED = "idempotent-replayed"


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with own_gateway(bg, tmp_path_factory.mktemp("idem"), OFFERS) as gateway:
        yield gateway


def sim_calls(gw: GatewayProcess) -> int:
    root = gw.sims["sim-idem"].base_url.removesuffix("/v1")
    return int(httpx.get(f"{root}/sim/stats", timeout=10).json()["requests_total"])


def new_key() -> str:
    return f"idem-{secrets.token_hex(8)}"


CHAT = {"model": "text-prime", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "text-prime",
    "max_tokens": 12,
    "messages": [{"role": "user", "content": "hi"}],
}
RESPONSES = {"model": "text-prime", "max_output_tokens": 16, "input": "hi"}
SURFACES = {"/chat/completions": CHAT, "/messages": MESSAGES, "/responses": RESPONSES}
# ~2 s at the simulator's 60 tokens/s: long enough to leave, or to join, while it runs
LONG_STREAM = {
    "model": "text-prime",
    "max_tokens": 120,
    "stream": True,
    "messages": [{"role": "user", "content": "tell me a long story"}],
}


def post(
    gw: GatewayProcess, secret: str, path: str, body: dict[str, Any], key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"}
    if key is not None:
        headers[KEY] = key
    return httpx.post(f"{gw.base_url}{path}", json=body, headers=headers, timeout=30)


def usage_after_sentinel(gw: GatewayProcess, account_id: str, secret: str) -> list[Any]:
    """The account's usage records, once a sentinel request's (sent after everything under
    test) is written: the writer keeps order, so any record a replay wrote is there too. The
    sentinel's own record is left out."""
    sentinel = post(gw, secret, "/chat/completions", CHAT, None)
    assert sentinel.status_code == 200
    own = sentinel.headers["x-request-id"]
    records = wait_until(
        lambda: (
            (found := gw.usage(account_id)) and any(r.request_id == own for r in found) and found
        )
    )
    return [r for r in records if r.request_id != own]


@pytest.mark.parametrize("path", list(SURFACES))
def test_a_retry_replays_the_whole_answer_and_charges_once(gw: GatewayProcess, path: str) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    key = new_key()
    first = post(gw, secret, path, SURFACES[path], key)
    assert first.status_code == 200, first.text
    assert REPLAYED not in first.headers
    again = post(gw, secret, path, SURFACES[path], key)
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]  # a request of its own
    assert sim_calls(gw) == calls + 1
    assert_charged_once(gw, account_id, secret, start, first.headers["x-request-id"])


def assert_charged_once(
    gw: GatewayProcess, account_id: str, secret: str, start: int, request_id: str
) -> Any:
    """One usage record (``request_id``'s) besides the sentinel's, and the balance charged
    for exactly the records there are."""
    [record] = usage_after_sentinel(gw, account_id, secret)
    assert record.request_id == request_id
    assert record.cost > 0
    assert start - gw.balance(account_id) == sum(r.cost for r in gw.usage(account_id))
    return record
