"""Webhook delivery end to end below the HTTP edge: a real store (SQLite), the real aiohttp
client, and a real HTTP receiver on 127.0.0.1 that is down, then failing, then up. Time is a
manual clock: backoff is checked by moving it, never by sleeping."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gridgate.core.webhooks.delivery import Deliverer, DeliveryPolicy
from gridgate.core.webhooks.signing import verify
from gridgate.storage.ports.webhooks import WebhookEndpoint, WebhookEvent
from gridgate.storage.sql import SqlStore
from gridgate.web.webhook_post import AiohttpWebhookPost
from tests.webhook_receiver import Receiver, free_port

SECRET = "whsec_test_secret"
POLICY = DeliveryPolicy(timeout_s=5.0, max_attempts=4, backoff_s=10.0, max_backoff_s=60.0)


class ManualClock:
    def __init__(self) -> None:
        self.seconds = 1_700_000_000.0

    def now_us(self) -> int:
        return int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(f"sqlite:///{tmp_path / 'g.db'}") as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())  # nothing listens there until start(): connection refused
    yield r
    await r.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _setup(store: SqlStore, clock: ManualClock, port: int) -> WebhookEvent:
    account = await store.create_account("acme")
    await store.create_endpoint(
        WebhookEndpoint(
            id="we_1",
            account_id=account.id,
            url=f"http://127.0.0.1:{port}/hook",
            secret=SECRET,
            events=("*",),
            enabled=True,
            created_us=clock.now_us(),
        )
    )
    event = WebhookEvent(
        id="evt_abc",
        type="key.revoked",
        account_id=account.id,
        payload=json.dumps({"key_id": "key_1"}),
        created_us=clock.now_us(),
    )
    assert await store.add_event(event)
    return event


def _deliverer(store: SqlStore, http: aiohttp.ClientSession, clock: ManualClock) -> Deliverer:
    return Deliverer(store, AiohttpWebhookPost(http), clock, POLICY, rand=random.Random(7))


async def test_a_receiver_down_then_failing_then_up_gets_the_event_once_delivered(
    store: SqlStore, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    await _setup(store, clock, receiver.port)
    deliverer = _deliverer(store, http, clock)

    assert await deliverer.round() == 0  # refused: nothing listens
    [listed] = await store.list_events(None)
    [first] = listed.deliveries
    assert (first.status, first.attempts, first.last_status) == ("pending", 1, None)
    assert first.last_error is not None and "connection failed" in first.last_error
    wait = first.next_attempt_us - clock.now_us()
    assert 8_000_000 <= wait <= 12_000_000  # 10 s ± 20%

    assert await deliverer.round() == 0  # not due yet: nothing is sent
    receiver.statuses = [503]
    await receiver.start()
    clock.advance(wait / 1_000_000)
    assert await deliverer.round() == 0  # 503
    [second] = (await store.list_events(None))[0].deliveries
    assert (second.status, second.attempts, second.last_status) == ("pending", 2, 503)
    assert second.last_error == "HTTP 503"
    wait = second.next_attempt_us - clock.now_us()
    assert 16_000_000 <= wait <= 24_000_000  # doubled

    clock.advance(wait / 1_000_000)
    assert await deliverer.round() == 1
    [done] = (await store.list_events(None))[0].deliveries
    assert (done.status, done.attempts, done.last_status) == ("delivered", 3, 200)
    assert done.delivered_us == clock.now_us()

    assert len(receiver.received) == 2  # the 503 and the 200
    for headers, body in receiver.received:
        assert headers["Gridgate-Webhook-Id"] == "evt_abc"
        timestamp = headers["Gridgate-Webhook-Timestamp"]
        mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        assert headers["Gridgate-Webhook-Signature"] == "v1=" + mac.hexdigest()
        assert verify(SECRET, headers, body, now_s=int(clock.seconds))
        assert not verify("whsec_other", headers, body, now_s=int(clock.seconds))
        sent = json.loads(body)
        assert sent["id"] == "evt_abc"
        assert sent["type"] == "key.revoked"
        assert sent["data"] == {"key_id": "key_1"}
        assert sent["created_at"].endswith("Z")
    assert await deliverer.round() == 0  # delivered: never sent again


async def test_attempts_run_out_then_a_replay_delivers_the_same_event(
    store: SqlStore, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    await _setup(store, clock, receiver.port)
    receiver.statuses = [500] * POLICY.max_attempts
    await receiver.start()
    deliverer = _deliverer(store, http, clock)
    for _ in range(POLICY.max_attempts):
        await deliverer.round()
        clock.advance(POLICY.max_backoff_s * 2)
    [failed] = (await store.list_events(None))[0].deliveries
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed",
        POLICY.max_attempts,
        "HTTP 500",
    )
    assert await deliverer.round() == 0  # failed for good

    assert await store.replay_event("evt_abc", clock.now_us()) == 1
    assert await deliverer.round() == 1
    ids = {h["Gridgate-Webhook-Id"] for h, _ in receiver.received}
    assert ids == {"evt_abc"}
    assert len(receiver.received) == POLICY.max_attempts + 1


class _Killed(Exception):
    pass


class _DiesAfterSending:
    """A process that sends the POST and dies before it can record the answer."""

    def __init__(self, post: AiohttpWebhookPost) -> None:
        self._post = post

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        await self._post.post(url, body, headers, timeout_s)
        raise _Killed


async def test_a_lost_answer_is_sent_again_with_the_same_event_id(
    store: SqlStore, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    await _setup(store, clock, receiver.port)
    await receiver.start()
    dying = Deliverer(store, _DiesAfterSending(AiohttpWebhookPost(http)), clock, POLICY)
    with pytest.raises(_Killed):
        await dying.round()
    other = _deliverer(store, http, clock)
    assert await other.round() == 0  # still claimed by the dead process
    clock.advance(POLICY.timeout_s + 31)  # its claim expires
    assert await other.round() == 1
    assert [h["Gridgate-Webhook-Id"] for h, _ in receiver.received] == ["evt_abc", "evt_abc"]
    [done] = (await store.list_events(None))[0].deliveries
    assert (done.status, done.attempts) == ("delivered", 2)


def test_backoff_is_capped_and_jittered() -> None:
    rand = random.Random(1)
    waits = [POLICY.backoff_us(n, rand) / 1_000_000 for n in range(1, 8)]
    assert 8 <= waits[0] <= 12
    assert 16 <= waits[1] <= 24
    assert all(w <= 72 for w in waits)  # 60 s + 20%
    assert waits[-1] >= 48
