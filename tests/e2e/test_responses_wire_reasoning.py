"""The Responses surface in front of a Responses-API supplier: the supplier's reasoning items,
with their ``encrypted_content``, go back to it unchanged on the next turn, whether the caller
continues by ``previous_response_id`` (asking for the encrypted content or not: the stored
answer keeps it) or sends the items back itself (``store: false``, as Codex does).

The caller sees gridgate's ``encrypted_content`` (``gg1.…``, ``protocol/openai_responses/
reasoning.py``), which seals the canonical thinking blocks; the wire seals the supplier's own
reasoning item in a block's signature (``oair1.…``, ``providers/openai_responses/reasoning.py``).
Opened, it is the item as the supplier sent it. The simulator writes ``sim-enc1.…`` (its
reasoning, signed) and refuses an altered one with 400; the test also reads, from the
simulator's last request, the item it was sent back.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gridgate.protocol.openai_responses.reasoning import open_reasoning
from gridgate.providers.openai_responses import open_item
from tests.harness import GatewayProcess

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
QUESTION = "Use get_weather for Paris."


def last_request(gw: GatewayProcess, supplier: str) -> dict[str, Any]:
    root = gw.sims[supplier].base_url.removesuffix("/v1")
    body = httpx.get(f"{root}/sim/stats", timeout=10).json()["last_request_body"]
    assert isinstance(body, dict)
    return body


def supplier_item(encrypted_content: str) -> dict[str, Any]:
    """The supplier's reasoning item sealed in what the caller was given."""
    blocks = open_reasoning(encrypted_content)
    assert blocks is not None and len(blocks) == 1
    signature = getattr(blocks[0], "signature", None)
    assert isinstance(signature, str)
    item = open_item(signature)
    assert item is not None
    return item


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("carried", ["previous_response_id", "input_items", "stored_only"])
def test_the_suppliers_encrypted_reasoning_goes_back_to_it_unchanged(
    responses_wire_gateway: GatewayProcess, carried: str, stream: bool
) -> None:
    gw = responses_wire_gateway
    _, key = gw.new_account("5")
    # stored_only: previous_response_id, the caller never asking for the encrypted content
    include = [] if carried == "stored_only" else ["reasoning.encrypted_content"]
    given: dict[str, Any] = {
        "model": "text-prime",
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
        "include": include,
    }
    with OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        ask: dict[str, Any] = {**given, "input": QUESTION, "tool_choice": "required"}
        ask["store"] = carried != "input_items"
        if stream:
            with client.responses.stream(**ask) as events:
                first = events.get_final_response()
        else:
            first = client.responses.create(**ask)
        assert [item.type for item in first.output] == ["reasoning", "function_call"]
        reasoning, call = first.output
        assert reasoning.type == "reasoning" and call.type == "function_call"
        produced: dict[str, Any] | None = None
        if carried == "stored_only":
            assert reasoning.encrypted_content is None
        else:
            assert reasoning.encrypted_content is not None
            assert reasoning.encrypted_content.startswith("gg1.")
            produced = supplier_item(reasoning.encrypted_content)

        result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        if carried != "input_items":
            served = client.responses.with_raw_response.create(
                **given, previous_response_id=first.id, input=[result]
            )
        else:
            history = [item.model_dump(exclude_none=True) for item in first.output]
            served = client.responses.with_raw_response.create(
                **given,
                store=False,
                input=[{"role": "user", "content": QUESTION}, *history, result],
            )
        second = served.parse()
    assert second.status == "completed" and second.output_text
    sent = last_request(gw, served.headers["x-gridgate-supplier"])
    assert sent["store"] is False and "previous_response_id" not in sent
    kinds = [item.get("type", "message") for item in sent["input"]]
    assert kinds == ["message", "reasoning", "function_call", "function_call_output"]
    given_back = sent["input"][1]
    # the simulator's own (it checked the signature): its reasoning under the item's id
    sealed = given_back["encrypted_content"]
    assert sealed.startswith("sim-enc1.")
    payload = json.loads(base64.urlsafe_b64decode(sealed.split(".")[1]))
    assert payload["id"] == given_back["id"]
    assert payload["text"] and [s.text for s in reasoning.summary] == [payload["text"]]
    if produced is not None:  # the very item the caller was given
        assert given_back == {**produced, "type": "reasoning"}
