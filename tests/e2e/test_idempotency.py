"""``Idempotency-Key`` on the three inference surfaces, against a real ``gridgate serve`` and a
simulator that counts what reaches it: a retry replays the answer (same bytes, same status,
``Idempotent-Replayed: true``) and charges nothing more (one usage record, one charge), a
stream is replayed or re-attached, a client that leaves mid-stream gets the whole answer on its
retry for one charge, concurrent duplicates reach the supplier once, and a key reused for
another body is 409."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import anthropic
import httpx
import pytest
from openai import OpenAI

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.clock import SystemClock
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
# ~1 s or more at 60 tokens/s: long enough to leave, or to join, while it runs
LONG_STREAM = {
    "model": "text-prime",
    "max_tokens": 120,
    "stream": True,
    "messages": [
        {"role": "user", "content": "tell me a long story [[sim:mode=slow,tokens_per_second=60]]"}
    ],
}


def post(
    gw: GatewayProcess, secret: str, path: str, body: dict[str, Any], key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if key is not None:
        headers[KEY] = key
    url = f"{gw.base_url}{path}"
    return httpx.post(url, content=as_bytes(body), headers=headers, timeout=30)


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


def test_the_sdks_send_the_key_and_get_the_same_answer(gw: GatewayProcess) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    client = OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)
    key = {KEY: new_key()}
    first = client.chat.completions.with_raw_response.create(
        model="text-prime",
        max_tokens=12,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=key,
    )
    again = client.chat.completions.with_raw_response.create(
        model="text-prime",
        max_tokens=12,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=key,
    )
    assert again.headers[REPLAYED] == "true"
    assert again.parse().model_dump() == first.parse().model_dump()
    assert_charged_once(gw, account_id, secret, start, first.headers["x-request-id"])

    start = gw.balance(account_id)
    claude = anthropic.Anthropic(
        base_url=gw.base_url.removesuffix("/v1"), api_key=secret, max_retries=0
    )
    key = {KEY: new_key()}
    made = claude.messages.with_raw_response.create(
        model="text-prime",
        max_tokens=12,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=key,
    )
    remade = claude.messages.with_raw_response.create(
        model="text-prime",
        max_tokens=12,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=key,
    )
    assert remade.headers[REPLAYED] == "true"
    assert remade.parse().model_dump() == made.parse().model_dump()
    assert remade.headers["request-id"] != made.headers["request-id"]


def as_bytes(body: dict[str, Any]) -> bytes:
    """One encoding of a body, for every client here: a retry repeats the same bytes."""
    return json.dumps(body).encode()


def stream_raw(
    gw: GatewayProcess, secret: str, path: str, body: dict[str, Any], key: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    url = f"{gw.base_url}{path}"
    with httpx.stream("POST", url, content=as_bytes(body), headers=headers, timeout=30) as r:
        r.read()
        return r


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ("/chat/completions", b"data: [DONE]\n\n"),
        ("/messages", b"event: message_stop"),
        ("/responses", b"event: response.incomplete"),  # cut at max_output_tokens
    ],
)
def test_a_retried_stream_replays_every_event(gw: GatewayProcess, path: str, end: bytes) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    key = new_key()
    body = {**SURFACES[path], "stream": True}
    first = stream_raw(gw, secret, path, body, key)
    assert first.status_code == 200
    assert end in first.content
    again = stream_raw(gw, secret, path, body, key)
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again.content == first.content
    assert sim_calls(gw) == calls + 1
    assert_charged_once(gw, account_id, secret, start, first.headers["x-request-id"])


async def _leave_after_first_chunks(gw: GatewayProcess, secret: str, key: str) -> bytes:
    """Read a long stream's first chunks, then close the connection."""
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gw.base_url}/chat/completions", data=as_bytes(LONG_STREAM), headers=headers
        ) as r,
    ):
        assert r.status == 200
        seen = b""
        while seen.count(b"data: ") < 3:
            seen += await r.content.readany()
        r.close()  # the client goes away mid-stream
        return seen


def test_a_client_that_leaves_mid_stream_gets_the_whole_answer_on_retry_for_one_charge(
    gw: GatewayProcess,
) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    key = new_key()
    seen = gw.run(_leave_after_first_chunks(gw, secret, key))
    assert b"[DONE]" not in seen
    again = stream_raw(gw, secret, "/chat/completions", LONG_STREAM, key)
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.content.startswith(seen)
    assert again.content.endswith(b"data: [DONE]\n\n")
    assert sim_calls(gw) == calls + 1
    record = assert_charged_once(gw, account_id, secret, start, _first_request_id(gw, account_id))
    assert record.outcome == "ok" and record.status == 200
    assert b'"finish_reason":"stop"' in again.content  # the whole answer, billed as such


def _first_request_id(gw: GatewayProcess, account_id: str) -> str:
    [record] = wait_until(lambda: gw.usage(account_id))
    return str(record.request_id)


async def _duplicates(
    gw: GatewayProcess, secret: str, key: str, body: dict[str, Any], n: int
) -> list[tuple[int, bytes, str]]:
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def one() -> tuple[int, bytes, str]:
            async with session.post(
                f"{gw.base_url}/chat/completions", data=as_bytes(body), headers=headers
            ) as r:
                return r.status, await r.read(), r.headers.get(REPLAYED, "")

        return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.parametrize("stream", [False, True])
def test_concurrent_duplicates_reach_the_supplier_once(gw: GatewayProcess, stream: bool) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    body = {**LONG_STREAM, "stream": stream, "max_tokens": 60}
    answers = gw.run(_duplicates(gw, secret, new_key(), body, 8))
    assert {status for status, _, _ in answers} == {200}
    assert len({content for _, content, _ in answers}) == 1
    assert sorted(replayed for _, _, replayed in answers) == [""] + ["true"] * 7
    assert sim_calls(gw) == calls + 1
    assert_charged_once(gw, account_id, secret, start, _first_request_id(gw, account_id))


@pytest.mark.parametrize("path", list(SURFACES))
def test_a_key_reused_for_another_body_is_409_in_the_surfaces_envelope(
    gw: GatewayProcess, path: str
) -> None:
    _, secret = gw.new_account()
    key = new_key()
    assert post(gw, secret, path, SURFACES[path], key).status_code == 200
    other = {**SURFACES[path], "temperature": 0.5}
    refused = post(gw, secret, path, other, key)
    assert refused.status_code == 409
    body = refused.json()
    if path == "/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "different request body" in body["error"]["message"]
    else:
        assert body["error"]["code"] == "idempotency_key_reused"
        assert "different request body" in body["error"]["message"]
    # another endpoint with the same key is refused as well, naming the endpoint
    elsewhere = "/chat/completions" if path != "/chat/completions" else "/responses"
    crossed = post(gw, secret, elsewhere, SURFACES[elsewhere], key)
    assert crossed.status_code == 409
    assert "different request endpoint" in crossed.text


@pytest.mark.parametrize("key", ["x" * 256, "tab\there"])
def test_a_malformed_key_is_400(gw: GatewayProcess, key: str) -> None:
    _, secret = gw.new_account()
    calls = sim_calls(gw)
    refused = post(gw, secret, "/chat/completions", CHAT, key)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_idempotency_key"
    assert sim_calls(gw) == calls


def test_another_account_with_the_same_key_is_served_on_its_own(gw: GatewayProcess) -> None:
    key = new_key()
    calls = sim_calls(gw)
    for _ in range(2):
        _, secret = gw.new_account()
        answered = post(gw, secret, "/chat/completions", CHAT, key)
        assert answered.status_code == 200 and REPLAYED not in answered.headers
    assert sim_calls(gw) == calls + 2


def test_a_refused_request_keeps_no_answer_and_its_corrected_retry_runs(gw: GatewayProcess) -> None:
    account_id, secret = gw.new_account(credit_usd="0")
    key = new_key()
    refused = post(gw, secret, "/chat/completions", CHAT, key)
    assert refused.status_code == 402
    gw.run(_credit(gw, account_id))
    served = post(gw, secret, "/chat/completions", CHAT, key)
    assert served.status_code == 200 and REPLAYED not in served.headers
    again = post(gw, secret, "/chat/completions", CHAT, key)
    assert again.headers[REPLAYED] == "true" and again.content == served.content


async def _credit(gw: GatewayProcess, account_id: str) -> None:
    await Accounts(gw.store, SystemClock()).credit(CLI, account_id, "5")


async def _join_mid_stream(gw: GatewayProcess, secret: str, key: str) -> tuple[bytes, bytes, str]:
    """The first request's first chunk, then a duplicate to the same process: the first's whole
    stream, and the duplicate's."""
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    url = f"{gw.base_url}/chat/completions"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=as_bytes(LONG_STREAM), headers=headers) as first,
    ):
        seen = await first.content.readany()
        assert b"[DONE]" not in seen
        async with session.post(url, data=as_bytes(LONG_STREAM), headers=headers) as second:
            joined = await second.read()
            replayed = second.headers.get(REPLAYED, "")
        return seen + await first.read(), joined, replayed


def test_a_duplicate_mid_stream_reattaches_and_gets_every_event(gw: GatewayProcess) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    whole, joined, replayed = gw.run(_join_mid_stream(gw, secret, new_key()))
    assert whole.endswith(b"data: [DONE]\n\n")
    assert joined == whole
    assert replayed == "true"
    assert sim_calls(gw) == calls + 1
    assert_charged_once(gw, account_id, secret, start, _first_request_id(gw, account_id))


async def _leave_before_the_answer(gw: GatewayProcess, secret: str, key: str) -> None:
    """A whole (slow) answer asked for, and the connection closed before it comes."""
    headers = {"Authorization": f"Bearer {secret}", KEY: key, "Content-Type": "application/json"}
    body = as_bytes({**LONG_STREAM, "stream": False})
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            async with session.post(f"{gw.base_url}/chat/completions", data=body, headers=headers):
                pass


def test_a_client_that_leaves_before_a_whole_answer_gets_it_on_retry_for_one_charge(
    gw: GatewayProcess,
) -> None:
    account_id, secret = gw.new_account()
    start = gw.balance(account_id)
    calls = sim_calls(gw)
    key = new_key()
    gw.run(_leave_before_the_answer(gw, secret, key))
    again = post(gw, secret, "/chat/completions", {**LONG_STREAM, "stream": False}, key)
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.json()["choices"][0]["finish_reason"] == "stop"
    assert sim_calls(gw) == calls + 1
    record = assert_charged_once(gw, account_id, secret, start, _first_request_id(gw, account_id))
    assert record.outcome == "ok"


def test_the_sdks_read_a_replayed_stream(gw: GatewayProcess) -> None:
    _, secret = gw.new_account()
    calls = sim_calls(gw)
    client = OpenAI(base_url=gw.base_url, api_key=secret, max_retries=0)
    key = {KEY: new_key()}
    texts = []
    for _ in range(2):
        stream = client.chat.completions.create(
            model="text-prime",
            max_tokens=12,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=key,
        )
        texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    assert texts[0] and texts[1] == texts[0]
    assert sim_calls(gw) == calls + 1  # the second was a replay

    claude = anthropic.Anthropic(
        base_url=gw.base_url.removesuffix("/v1"), api_key=secret, max_retries=0
    )
    key = {KEY: new_key()}
    messages = []
    for _ in range(2):
        with claude.messages.stream(
            model="text-prime",
            max_tokens=12,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=key,
        ) as events:
            messages.append(events.get_final_message())
    assert messages[0].content and messages[1].model_dump() == messages[0].model_dump()
    assert sim_calls(gw) == calls + 2
