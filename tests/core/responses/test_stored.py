"""``StoredResponses`` over a real store (SQLite and PostgreSQL): a conversation's items across
turns, expiry, another account's response as absent, ids given to input items, the sweep, and
retention 0 storing nothing."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gridgate.core.responses.stored import DAY_US, StoredResponses
from gridgate.errors import BadRequest, ResponseNotFound
from gridgate.storage.records import KeyRecord
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql


class ManualClock:
    def __init__(self) -> None:
        self.us = 1_700_000_000_000_000

    def now_us(self) -> int:
        return self.us

    def monotonic(self) -> float:
        return self.us / 1e6


def _key(account_id: str) -> KeyRecord:
    return KeyRecord(
        id=f"key_{account_id}",
        name="k",
        prefix="gg_x",
        secret_hash=f"h_{account_id}",
        created_us=0,
        account_id=account_id,
    )


def _j(obj: dict[str, Any]) -> bytes:
    return msgspec.json.encode(obj)


def _user(text: str) -> bytes:
    return _j({"type": "message", "role": "user", "content": text})


def _answer(item_id: str, text: str) -> bytes:
    return _j(
        {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def service(store: SqlStore, clock: ManualClock) -> StoredResponses:
    return StoredResponses(store, clock, retention_days=30, sweep_batch=4)


async def _turn(
    service: StoredResponses, n: int, previous: str | None, account: str = "acct_a"
) -> str:
    response_id = f"resp_{n}"
    await service.save(
        caller=_key(account),
        response_id=response_id,
        previous_response_id=previous,
        input_items=[_user(f"question {n}")],
        output_items=[_answer(f"msg_out{n}", f"answer {n}")],
        response=_j({"id": response_id, "object": "response", "output_text": f"answer {n}"}),
    )
    return response_id


def _texts(items: list[bytes]) -> list[str]:
    out = []
    for raw in items:
        item = json.loads(raw)
        content = item["content"]
        out.append(content if isinstance(content, str) else content[0]["text"])
    return out


async def test_a_conversation_over_three_turns_in_order(service: StoredResponses) -> None:
    first = await _turn(service, 1, None)
    second = await _turn(service, 2, first)
    assert _texts(await service.conversation("acct_a", second)) == [
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
    ]
    third = await _turn(service, 3, second)
    history = await service.conversation("acct_a", third)
    assert _texts(history) == [
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
        "question 3",
        "answer 3",
    ]
    # the items come back as they were given (no id added to what the model is sent)
    assert json.loads(history[0]) == {"type": "message", "role": "user", "content": "question 1"}
    body = await service.get("acct_a", third)
    assert json.loads(body or b"") == {"id": third, "object": "response", "output_text": "answer 3"}


async def test_another_account_sees_nothing(service: StoredResponses) -> None:
    first = await _turn(service, 1, None)
    assert await service.get("acct_b", first) is None
    assert await service.input_items("acct_b", first, after=None, limit=20, order="asc") is None
    assert not await service.delete("acct_b", first)
    with pytest.raises(ResponseNotFound) as info:
        await service.conversation("acct_b", first)
    error = info.value
    assert (error.status, error.openai_type, error.param) == (
        404,
        "invalid_request_error",
        "previous_response_id",
    )
    assert error.message == "Previous response with id 'resp_1' not found."
    assert await service.get("acct_a", first) is not None  # still there for its owner


async def test_expired_is_absent_and_swept(
    service: StoredResponses, clock: ManualClock, store: SqlStore, db_url: str
) -> None:
    for n in range(1, 10):
        await _turn(service, n, None)
    clock.us += 29 * DAY_US
    await _turn(service, 99, None)
    assert await service.get("acct_a", "resp_1") is not None
    assert await service.sweep() == 0
    clock.us += DAY_US
    assert await service.get("acct_a", "resp_1") is None
    assert await service.input_items("acct_a", "resp_1", after=None, limit=5, order="asc") is None
    with pytest.raises(ResponseNotFound):
        await service.conversation("acct_a", "resp_1")
    assert await service.sweep() == 9  # in batches of 4
    assert await raw_sql(db_url, "SELECT id FROM responses") == [("resp_99",)]
    assert await raw_sql(db_url, "SELECT count(*) FROM response_items") == [(2,)]
    assert await service.sweep() == 0


async def test_input_items_get_ids_and_page(service: StoredResponses) -> None:
    inputs = [_user(f"q{i}") for i in range(5)]
    inputs.append(_j({"type": "function_call_output", "call_id": "call_1", "output": "42"}))
    inputs.append(_j({"id": "msg_given", "type": "message", "role": "user", "content": "x"}))
    await service.save(
        caller=_key("acct_a"),
        response_id="resp_p",
        previous_response_id=None,
        input_items=inputs,
        output_items=[_answer("msg_out", "a")],
        response=_j({"id": "resp_p"}),
    )
    page = await service.input_items("acct_a", "resp_p", after=None, limit=20, order="desc")
    assert page is not None
    items = [json.loads(i) for i in page.items]
    ids = [i["id"] for i in items]
    assert ids[0] == "msg_given"
    assert ids[1].startswith("item_") and items[1]["call_id"] == "call_1"
    assert all(i.startswith("msg_") for i in ids[2:])
    assert len(set(ids)) == 7
    assert (page.first_id, page.last_id, page.has_more) == (ids[0], ids[-1], False)
    # the same ids every time, and pages in both orders
    again = await service.input_items("acct_a", "resp_p", after=ids[1], limit=2, order="desc")
    assert again is not None
    assert [json.loads(i)["id"] for i in again.items] == ids[2:4]
    assert again.has_more
    asc = await service.input_items("acct_a", "resp_p", after=ids[2], limit=100, order="asc")
    assert asc is not None
    assert [json.loads(i)["id"] for i in asc.items] == [ids[1], ids[0]]
    for bad in (0, 101):
        with pytest.raises(BadRequest) as info:
            await service.input_items("acct_a", "resp_p", after=None, limit=bad, order="asc")
        assert info.value.param == "limit"


async def test_delete_removes_the_content(service: StoredResponses, db_url: str) -> None:
    first = await _turn(service, 1, None)
    second = await _turn(service, 2, first)
    assert await service.delete("acct_a", first)
    assert not await service.delete("acct_a", first)
    assert await raw_sql(db_url, "SELECT id FROM responses") == [(second,)]
    rows = await raw_sql(db_url, "SELECT response_id FROM response_items")
    assert {r[0] for r in rows} == {second}
    # the conversation continues from what is left
    assert _texts(await service.conversation("acct_a", second)) == ["question 2", "answer 2"]


async def test_retention_zero_stores_nothing(
    store: SqlStore, clock: ManualClock, db_url: str
) -> None:
    off = StoredResponses(store, clock, retention_days=0)
    assert not off.enabled
    await _turn(off, 1, None)
    assert await raw_sql(db_url, "SELECT count(*) FROM responses") == [(0,)]
    with pytest.raises(ResponseNotFound):
        await off.conversation("acct_a", "resp_1")
