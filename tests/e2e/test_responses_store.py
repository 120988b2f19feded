"""Stored responses through the official ``openai`` SDK against a real ``gridgate serve``:
``responses.retrieve``, ``responses.delete`` and ``responses.input_items.list`` (with paging),
another account's id as 404, deletion and the sweep really removing the content.

``POST /v1/responses`` is not served on this branch: the responses are stored as it will store
them, through ``StoredResponses`` on the gateway's own database (``gateway.store``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from gridgate.core.clock import SystemClock
from gridgate.core.responses.stored import StoredResponses
from gridgate.protocol.openai_responses.from_chat import response_from_completion
from gridgate.protocol.openai_responses.output import response_context
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.to_chat import to_chat_request
from gridgate.storage.ports.responses import StoredItem
from gridgate.storage.records import KeyRecord
from tests.harness import GatewayProcess
from tests.openai_spec import OpenAISpec
from tests.storage.conftest import raw_sql


def _response(response_id: str, text: str, previous: str | None = None) -> bytes:
    """A completed Response as the surface answers one: the protocol layer's, for a canonical
    completion of ``text``."""
    ask: dict[str, Any] = {"model": "text-prime", "input": "question"}
    if previous is not None:
        ask["previous_response_id"] = previous
    request = decode_responses_request(json.dumps(ask).encode())
    context = response_context(
        request, to_chat_request(request), response_id=response_id, created_at=1_765_000_000
    )
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up/x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    return response_from_completion(
        json.dumps(completion).encode(), context, completed_at=1_765_000_001
    )


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


class Caller:
    """An account with a key, a client on it, and the gateway's stored-responses service."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.account_id, secret = gateway.new_account()
        self.client = OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
        self.service = StoredResponses(gateway.store, SystemClock(), retention_days=30)

    def store(
        self, inputs: list[dict[str, Any]], text: str = "ok", previous: str | None = None
    ) -> str:
        response_id = f"resp_{secrets.token_hex(24)}"
        body = _response(response_id, text, previous)
        outputs = json.loads(body)["output"]
        key = KeyRecord(
            id="key_seed",
            name="k",
            prefix="gg_",
            secret_hash="-",
            created_us=0,
            account_id=self.account_id,
        )
        self.gateway.run(
            self.service.save(
                caller=key,
                response_id=response_id,
                previous_response_id=previous,
                input_items=[json.dumps(i).encode() for i in inputs],
                output_items=[json.dumps(o).encode() for o in outputs],
                response=body,
            )
        )
        return response_id

    def rows(self, response_id: str) -> tuple[int, int]:
        url = self.gateway.store_url
        [(responses,)] = self.gateway.run(
            raw_sql(url, "SELECT count(*) FROM responses WHERE id = :i", {"i": response_id})
        )
        [(items,)] = self.gateway.run(
            raw_sql(
                url,
                "SELECT count(*) FROM response_items WHERE response_id = :i",
                {"i": response_id},
            )
        )
        return int(responses), int(items)


@pytest.fixture
def caller(gateway: GatewayProcess) -> Iterator[Caller]:
    made = Caller(gateway)
    yield made
    made.client.close()


def test_retrieve_answers_the_stored_response(caller: Caller, spec: OpenAISpec) -> None:
    first = caller.store([_user("What is 2+2?")], "4")
    second = caller.store([_user("And times 3?")], "12", previous=first)
    raw = caller.client.responses.with_raw_response.retrieve(second)
    assert raw.status_code == 200
    assert json.loads(raw.content) == json.loads(_response(second, "12", first))
    spec.check("Response", json.loads(raw.content))
    parsed = raw.parse()
    assert (parsed.id, parsed.output_text, parsed.previous_response_id) == (second, "12", first)
    assert parsed.usage is not None and parsed.usage.total_tokens == 15


def test_input_items_page_through_the_sdk(caller: Caller, spec: OpenAISpec) -> None:
    texts = [f"part {n}" for n in range(25)]
    response_id = caller.store([_user(t) for t in texts])
    listed = caller.client.responses.input_items.list(response_id, limit=10, order="asc")
    assert len(listed.data) == 10 and listed.has_more
    every = list(listed)  # the SDK follows ``after`` = the page's last id
    assert [item.content[0].text for item in every] == texts  # type: ignore[union-attr]
    ids = [item.id for item in every]
    assert len(set(ids)) == 25 and all(i.startswith("msg_") for i in ids)
    # the default order is newest first (desc), 20 a page; the output item is not listed
    newest = caller.client.responses.input_items.list(response_id)
    assert [item.id for item in newest.data] == ids[::-1][:20]
    assert newest.has_more
    raw = caller.client.responses.input_items.with_raw_response.list(
        response_id, after=ids[20], limit=3, order="desc"
    )
    page = json.loads(raw.content)
    spec.check("ResponseItemList", page)
    assert [item["id"] for item in page["data"]] == ids[17:20][::-1]
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list",
        ids[19],
        ids[17],
        True,
    )
    # the same ids on every read
    again = caller.client.responses.input_items.list(response_id, limit=100, order="asc")
    assert [item.id for item in again.data] == ids and not again.has_more


def test_bad_paging_parameters_are_400_naming_them(caller: Caller) -> None:
    response_id = caller.store([_user("hi")])
    for query, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"include": ["no.such"]}, "include"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            caller.client.responses.input_items.list(response_id, **query)  # type: ignore[arg-type]
        assert info.value.body["param"] == param  # type: ignore[index]
        assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_another_accounts_response_is_not_found(
    gateway: GatewayProcess, caller: Caller, spec: OpenAISpec
) -> None:
    response_id = caller.store([_user("mine")])
    stranger = Caller(gateway)
    try:
        message = f"Response with id '{response_id}' not found."
        for call in (
            lambda: stranger.client.responses.retrieve(response_id),
            lambda: stranger.client.responses.delete(response_id),
            lambda: stranger.client.responses.input_items.list(response_id),
        ):
            with pytest.raises(openai.NotFoundError) as info:
                call()
            assert info.value.status_code == 404
            assert info.value.body["message"] == message  # type: ignore[index]
            assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
            spec.error(info.value.response.json())
    finally:
        stranger.client.close()
    assert caller.rows(response_id) == (1, 2)  # untouched by the stranger's delete
    assert caller.client.responses.retrieve(response_id).id == response_id


def test_unknown_id_and_no_key(gateway: GatewayProcess, caller: Caller) -> None:
    with pytest.raises(openai.NotFoundError):
        caller.client.responses.retrieve("resp_nothing")
    answer = httpx.get(f"{gateway.base_url}/responses/resp_nothing", timeout=10)
    assert answer.status_code == 401


def test_delete_removes_the_content(caller: Caller) -> None:
    response_id = caller.store([_user("forget me"), _user("and me")])
    assert caller.rows(response_id) == (1, 3)
    raw = caller.client.responses.with_raw_response.delete(response_id)
    assert raw.status_code == 200
    assert json.loads(raw.content) == {"id": response_id, "object": "response", "deleted": True}
    assert raw.parse() is None  # what the SDK returns
    assert caller.rows(response_id) == (0, 0)
    with pytest.raises(openai.NotFoundError):
        caller.client.responses.retrieve(response_id)
    with pytest.raises(openai.NotFoundError):
        caller.client.responses.delete(response_id)


def test_expired_is_absent_and_swept(caller: Caller) -> None:
    gateway = caller.gateway
    response_id = f"resp_{secrets.token_hex(24)}"
    gateway.run(
        gateway.store.save_response(
            response_id=response_id,
            account_id=caller.account_id,
            key_id=None,
            previous_response_id=None,
            response=_response(response_id, "old").decode(),
            items=[StoredItem(kind="input", item_id="msg_old", item=json.dumps(_user("old")))],
            created_us=1,
            expires_us=2,
        )
    )
    with pytest.raises(openai.NotFoundError):
        caller.client.responses.retrieve(response_id)
    with pytest.raises(openai.NotFoundError):
        caller.client.responses.input_items.list(response_id)
    assert caller.rows(response_id) == (1, 1)
    gateway.run(caller.service.sweep())  # a second process sweeping beside the gateway's
    assert caller.rows(response_id) == (0, 0)
