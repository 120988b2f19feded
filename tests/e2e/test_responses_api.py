"""The official openai SDK's Responses API (``client.responses``) against a running
``gridgate serve``: plain, streamed (every event checked against the spec's schemas, in order),
structured output, a function-tool round trip, reasoning, hosted tools, and the money of a
streamed answer, each served over the OpenAI wire, the Anthropic wire and the Responses wire."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from gridgate.core.clock import SystemClock
from gridgate.core.responses.stored import StoredResponses
from gridgate.money import Price, format_usd, format_usd_fixed
from gridgate.protocol.openai_responses.items import InputItem
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.to_chat import to_chat_request
from gridgate.protocol.sse import SSEParser
from gridgate.protocol.tokens import measure_prompt
from tests.e2e.test_ops import scrape, value
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
from tests.openai_spec import OpenAISpec

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


WIRE_GATEWAYS = {
    "anthropic-wire": "anthropic_wire_gateway",
    "responses-wire": "responses_wire_gateway",
}


@pytest.fixture(scope="module", params=["openai-wire", "anthropic-wire", "responses-wire"])
def gateway(request: pytest.FixtureRequest, gateway: GatewayProcess) -> GatewayProcess:
    if request.param == "openai-wire":
        return gateway
    served: GatewayProcess = request.getfixturevalue(WIRE_GATEWAYS[request.param])
    return served


@pytest.fixture
def sdk(gateway: GatewayProcess) -> Iterator[Callable[[str], OpenAI]]:
    made: list[OpenAI] = []

    def make(key: str) -> OpenAI:
        made.append(OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def funded(gateway: GatewayProcess) -> tuple[str, str]:
    return gateway.new_account("5")


@pytest.fixture
def client(sdk: Callable[[str], OpenAI], funded: tuple[str, str]) -> OpenAI:
    return sdk(funded[1])


def check_response(spec: OpenAISpec, body: dict[str, Any]) -> Response:
    spec.check("Response", body)
    return Response.model_validate(body)


def stream_events(spec: OpenAISpec, raw: bytes) -> list[dict[str, Any]]:
    """Every event of a Responses stream, checked against the spec and the SDK's types, with
    sequence numbers counting up from 0."""
    events = []
    for event in SSEParser().feed(raw):
        body = json.loads(event.data)
        assert event.event == body["type"]
        spec.check("ResponseStreamEvent", body)
        EVENT.validate_python(body)
        events.append(body)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def post_stream(gateway: GatewayProcess, key: str, body: dict[str, Any]) -> httpx.Response:
    response = httpx.post(
        f"{gateway.base_url}/responses",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response


def test_plain_create_validates_and_gives_output_text(client: OpenAI, spec: OpenAISpec) -> None:
    raw = client.responses.with_raw_response.create(
        model="text-prime", input="Say something about the weather.", max_output_tokens=24
    )
    response = check_response(spec, json.loads(raw.http_response.content))
    assert raw.headers["x-request-id"].startswith("req_")
    assert "x-gridgate-dropped-tools" not in raw.headers
    parsed = raw.parse()
    assert parsed.id.startswith("resp_") and len(parsed.id) > 40
    assert parsed.status in ("completed", "incomplete")
    assert parsed.output_text and parsed.output_text == response.output_text
    assert parsed.model == "text-prime"
    assert parsed.usage is not None and parsed.usage.output_tokens > 0
    assert parsed.usage.total_tokens == parsed.usage.input_tokens + parsed.usage.output_tokens
    again = client.responses.create(model="text-prime", input="Say something.", store=False)
    assert again.id != parsed.id and again.store is False


def test_streamed_create_sends_the_whole_event_sequence(
    gateway: GatewayProcess, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    response = post_stream(
        gateway, funded[1], {"model": "text-prime", "input": "Tell me a story.", "store": False}
    )
    events = stream_events(spec, response.content)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert "response.output_text.delta" in kinds
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = check_response(spec, events[-1]["response"])
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert final.output_text == deltas and deltas
    assert final.usage is not None and final.usage.output_tokens > 0
    assert events[0]["response"]["id"] == final.id


def test_the_sdk_stream_helper_reads_the_stream(client: OpenAI) -> None:
    with client.responses.stream(model="text-prime", input="Hello!", store=False) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(texts)


def test_parse_with_a_pydantic_model(client: OpenAI) -> None:
    parsed = client.responses.parse(
        model="text-prime", input="Invent a person.", text_format=Person, store=False
    )
    person = parsed.output_parsed
    assert isinstance(person, Person)
    assert parsed.text is not None and parsed.text.format is not None
    assert parsed.text.format.type == "json_schema"


def test_reasoning_effort_reaches_the_supplier(
    gateway: GatewayProcess, client: OpenAI, spec: OpenAISpec
) -> None:
    raw = client.responses.with_raw_response.create(
        model="text-prime",
        input="What is the capital of France?",
        reasoning={"effort": "medium"},
        max_output_tokens=8000,
        store=False,
    )
    response = check_response(spec, json.loads(raw.http_response.content))
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert len(reasoning) == 1
    assert len(reasoning[0].summary[0].text.split()) == 16  # the simulator's "medium"
    assert response.reasoning is not None and response.reasoning.effort == "medium"
    assert response.usage is not None
    # Anthropic's usage does not count reasoning apart; the other two wires do
    if gateway.wire("sim-beta") != "anthropic":
        assert response.usage.output_tokens_details.reasoning_tokens > 0
    assert response.output_text


def test_streamed_reasoning_and_a_tool_call_send_their_events(
    gateway: GatewayProcess, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    """Reasoning, then a function call, streamed: every event valid and in order, the summary
    and the arguments streamed as deltas that add up to the final items."""
    body = {
        "model": "text-prime",
        # the choice left to the model: Anthropic takes no thinking with a forced tool
        "input": "Use get_weather for Paris.",
        "tools": [WEATHER],
        "reasoning": {"effort": "low", "summary": "auto"},
        "max_output_tokens": 4000,
        "store": False,
    }
    events = stream_events(spec, post_stream(gateway, funded[1], body).content)
    assert events[-1]["type"] == "response.completed"
    final = check_response(spec, events[-1]["response"])
    assert [item.type for item in final.output] == ["reasoning", "function_call"]
    reasoning, call = final.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    kinds = [e["type"] for e in events]
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index(
        "response.function_call_arguments.delta"
    )
    summary = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(summary) == reasoning.summary[0].text
    arguments = [
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    ]
    assert "".join(arguments) == call.arguments
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == events[-1]["response"]["output"]


def first_turn(client: OpenAI, *, store: bool) -> Response:
    response = client.responses.create(
        model="text-prime",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        store=store,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    arguments = json.loads(calls[0].arguments)
    assert arguments["city"] and arguments["unit"] in ("celsius", "fahrenheit")
    assert calls[0].call_id and calls[0].id and calls[0].id.startswith("fc_")
    return response


def test_function_tool_round_trip_with_the_whole_history(client: OpenAI) -> None:
    first = first_turn(client, store=False)
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model="text-prime",
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
        tools=[WEATHER],
        store=False,
    )
    assert second.status == "completed"
    assert not [item for item in second.output if item.type == "function_call"]
    assert second.output_text


def test_hosted_tools_are_dropped_and_named(
    gateway: GatewayProcess, client: OpenAI, spec: OpenAISpec
) -> None:
    tools: list[Any] = [
        {"type": "web_search"},
        WEATHER,
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.example/sse"},
    ]
    raw = client.responses.with_raw_response.create(
        model="text-prime", input="Hello there.", tools=tools, store=False
    )
    assert raw.headers["x-gridgate-dropped-tools"] == "web_search, mcp:deepwiki"
    response = check_response(spec, json.loads(raw.http_response.content))
    assert response.output_text
    assert [tool.type for tool in response.tools] == ["web_search", "function", "mcp"]
    streamed = post_stream(
        gateway,
        client.api_key,
        {"model": "text-prime", "input": "Hi.", "tools": tools, "store": False},
    )
    assert streamed.headers["x-gridgate-dropped-tools"] == "web_search, mcp:deepwiki"
    assert stream_events(spec, streamed.content)[-1]["type"] == "response.completed"
    # only hosted tools, the choice left to the model: answered without tools
    alone = client.responses.with_raw_response.create(
        model="text-prime",
        input="Use web_search for the news.",
        tools=[{"type": "web_search"}],
        tool_choice="auto",
        store=False,
    )
    assert alone.headers["x-gridgate-dropped-tools"] == "web_search"
    odd = {"type": "mcp", "server_label": "ünï\r\nx-evil: 1", "server_url": "https://m.example"}
    named = client.responses.with_raw_response.create(
        model="text-prime", input="Hi.", tools=[odd], store=False
    )
    assert named.headers["x-gridgate-dropped-tools"] == "mcp:?n???x-evil: 1"
    assert "x-evil" not in named.headers
    assert [item.type for item in alone.parse().output] == ["message"]


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ([{"type": "web_search_preview"}, WEATHER], {"type": "web_search_preview"}),
        ([{"type": "web_search"}], "required"),
    ],
    ids=["hosted-choice", "required-without-functions"],
)
def test_a_tool_choice_requiring_a_dropped_tool_is_refused(
    client: OpenAI, funded: tuple[str, str], gateway: GatewayProcess, tools: Any, choice: Any
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(
            model="text-prime", input="Search the web.", tools=tools, tool_choice=choice
        )
    # a hosted tool named: 400 here; "required" without functions: the request's validation
    assert caught.value.status_code == (400 if isinstance(choice, dict) else 422)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "tool_choice"
    assert gateway.usage(funded[0]) == []  # nothing was served, nothing charged


def test_invalid_requests_get_a_4xx_naming_the_param(client: OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
        ({"input": "hi", "temperature": 7}, "temperature"),
        ({"input": "hi", "max_output_tokens": 3}, "max_output_tokens"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ]
    for fields, param in cases:
        with pytest.raises(openai.APIStatusError) as caught:
            client.responses.create(model="text-prime", **fields)
        assert 400 <= caught.value.status_code < 500, fields
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, (fields, body)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")


def test_the_exchanges_refusals_name_the_responses_fields(client: OpenAI) -> None:
    """What the exchange refuses of the canonical request is named as the caller wrote it."""
    image = {"type": "input_image", "image_url": "https://example.com/cat.png"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": "hi", "reasoning": {"effort": "minimal"}}, "reasoning.effort"),
        ({"input": "hi", "max_output_tokens": 10_000_000}, "max_output_tokens"),
        ({"input": [{"role": "user", "content": [image]}]}, "input"),
    ]
    for fields, param in cases:
        with pytest.raises(openai.APIStatusError) as caught:
            client.responses.create(model="text-prime", store=False, **fields)
        assert 400 <= caught.value.status_code < 500, fields
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == param, (fields, body)
        assert str(body["message"]).startswith(param + ":"), body


def test_an_unknown_previous_response_is_not_found(client: OpenAI) -> None:
    unstored = client.responses.create(model="text-prime", input="Hi.", store=False)
    for previous in (unstored.id, "resp_nothing"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.responses.create(
                model="text-prime", input="Go on.", previous_response_id=previous
            )
        body = caught.value.body
        assert isinstance(body, dict) and body["param"] == "previous_response_id"


def test_metrics_count_the_responses_route_and_the_exchange_request(
    gateway: GatewayProcess, client: OpenAI
) -> None:
    http = {"route": "/v1/responses", "method": "POST", "status": "200"}
    served = {"instrument": "text-prime", "status": "200", "outcome": "ok"}
    before = scrape(gateway)
    client.responses.create(model="text-prime", input="Count me.", store=False)
    after = scrape(gateway)
    assert (
        value(after, "gridgate_http_requests_total", **http)
        == value(before, "gridgate_http_requests_total", **http) + 1
    )
    assert (
        value(after, "gridgate_requests_total", **served)
        == value(before, "gridgate_requests_total", **served) + 1
    )


def test_a_keys_rate_limit_applies_and_is_answered_as_on_chat(gateway: GatewayProcess) -> None:
    account_id, key = gateway.new_account("5")
    [record] = gateway.run(gateway.store.list_keys(account_id))
    done = gateway.cli("keys", "limits", record.id, "--rpm", "4", "--json")
    assert done.returncode == 0, done.stderr
    body = {"model": "text-prime", "input": "Hi.", "max_output_tokens": 16, "store": False}
    answers: list[httpx.Response] = []

    def refused() -> bool:
        answers.append(
            httpx.post(
                f"{gateway.base_url}/responses",
                json={**body, "stream": len(answers) % 2 == 1},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        )
        return answers[-1].status_code == 429

    wait_until(refused, timeout=15)  # once every process has the new limit
    assert {a.status_code for a in answers} <= {200, 429}
    last = answers[-1]
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["X-RateLimit-Limit"] == "4" and last.headers["X-RateLimit-Remaining"] == "0"
    assert last.headers["x-request-id"].startswith("req_")
    error = last.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    for answer in answers[:-1]:  # served before: with the standing when the limit applied
        limit = answer.headers.get("X-RateLimit-Limit")
        assert limit in (None, "4")


def test_a_streamed_answer_running_past_its_hold_is_cut_and_settled(
    gateway: GatewayProcess, spec: OpenAISpec
) -> None:
    """The supplier ignores max_output_tokens=20 and streams 200 tokens: the caller gets 20 and
    ``response.incomplete`` (max_output_tokens), and is charged no more than the hold."""
    account_id, secret = gateway.new_account("1")
    body = {
        "model": "text-prime",
        "input": "go on [[sim:mode=overrun,length=200]]",
        "max_output_tokens": 20,
        "store": False,
    }
    events = stream_events(spec, post_stream(gateway, secret, body).content)
    assert len([e for e in events if e["type"] == "response.output_text.delta"]) == 20
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    check_response(spec, final["response"])
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "cut_at_hold"
    chat = to_chat_request(decode_responses_request(json.dumps(body).encode())).request
    bound = measure_prompt(chat).upper_bound
    assert 0 < record.cost <= Price(nanos("0.08"), nanos("0.30")).cost(bound, 20)
    gateway.assert_balance(account_id, nanos("1") - record.cost)


def test_a_stream_failing_mid_way_ends_with_response_failed_and_is_not_stored(
    gateway: GatewayProcess, spec: OpenAISpec
) -> None:
    account_id, secret = gateway.new_account("1")
    # after counts the supplier's events: a Responses-wire supplier sends four before its first
    # text delta (created, in_progress, output_item.added, content_part.added)
    body = {"model": "text-prime", "input": "go [[sim:mode=drop,after=8]]", "max_output_tokens": 50}
    events = stream_events(spec, post_stream(gateway, secret, body).content)
    assert [e for e in events if e["type"] == "response.output_text.delta"]
    final = events[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["status"] == "failed" and final["response"]["error"]["message"]
    check_response(spec, final["response"])
    record = wait_until(lambda: gateway.usage(account_id))[0]
    assert record.outcome == "stream_error" and 0 < record.output_tokens < 50
    gateway.assert_balance(account_id, nanos("1") - record.cost)
    assert gateway.run(stored(gateway).get(account_id, final["response"]["id"])) is None


def test_provider_preferences_route_as_on_chat(client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model="text-prime",
        input="Hello.",
        store=False,
        extra_body={"provider": {"order": ["sim-alpha"], "allow_fallbacks": False}},
    )
    assert raw.headers["x-gridgate-supplier"] == "sim-alpha"  # the cheapest is sim-beta
    assert raw.parse().output_text
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(
            model="text-prime", input="Hello.", extra_body={"provider": {"order": 3}}
        )
    body = caught.value.body
    assert caught.value.status_code < 500
    assert isinstance(body, dict) and str(body["param"]).startswith("provider")


# -- stored responses -------------------------------------------------------------------------


def stored(gateway: GatewayProcess) -> StoredResponses:
    """The stored-responses service on the gateway's database, as the gateway runs it."""
    return StoredResponses(gateway.store, SystemClock(), retention_days=30)


def test_previous_response_id_continues_a_function_tool_round_trip(client: OpenAI) -> None:
    first = first_turn(client, store=True)
    assert first.store is True
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model="text-prime",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        tools=[WEATHER],
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    assert not [item for item in second.output if item.type == "function_call"]
    assert second.output_text
    # the supplier was sent the first turn too (the call and its question)
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens


def test_usage_cost_is_what_the_request_was_charged_and_is_stored_with_the_answer(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    """``usage.cost`` (gridgate's field; the SDK keeps unknown fields): USD with 9 places,
    equal to the usage record's cost — in a whole response, in ``response.completed``'s
    response, and in what is stored of either (``GET /v1/responses/{id}``)."""
    account = funded[0]
    raw = client.responses.with_raw_response.create(
        model="text-prime", input="Say something about the weather.", max_output_tokens=24
    )
    check_response(spec, json.loads(raw.http_response.content))  # an extra usage field is allowed
    plain = raw.parse()
    assert plain.usage is not None
    [record] = wait_until(lambda: gateway.usage(account))
    assert (plain.usage.model_extra or {})["cost"] == format_usd_fixed(record.cost)
    assert record.cost > 0
    kept = client.responses.retrieve(plain.id)
    assert kept.usage is not None and (kept.usage.model_extra or {})["cost"] == format_usd_fixed(
        record.cost
    )

    with client.responses.stream(model="text-prime", input="Tell me a fact.") as stream:
        [completed] = [e.response for e in stream if e.type == "response.completed"]
    assert completed.usage is not None
    [streamed] = wait_until(
        lambda: [r for r in gateway.usage(account) if r.stream and r.outcome == "ok"] or None
    )
    assert (completed.usage.model_extra or {})["cost"] == format_usd_fixed(streamed.cost)
    kept = client.responses.retrieve(completed.id)
    assert kept.usage is not None and (kept.usage.model_extra or {})["cost"] == format_usd_fixed(
        streamed.cost
    )


def test_what_is_stored_is_the_answer_and_its_items(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str]
) -> None:
    raw = client.responses.with_raw_response.create(
        model="text-prime", input="Remember this.", instructions="Be brief.", metadata={"k": "v"}
    )
    body = raw.http_response.content
    response = raw.parse()
    service = stored(gateway)
    kept = gateway.run(service.get(funded[0], response.id))
    assert kept is not None and json.loads(kept) == json.loads(body)
    page = gateway.run(
        service.input_items(funded[0], response.id, after=None, limit=10, order="asc")
    )
    assert page is not None and not page.has_more
    items = [json.loads(item) for item in page.items]
    assert items == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Remember this."}],
            "id": items[0]["id"],
        }
    ]
    assert items[0]["id"].startswith("msg_")
    history = gateway.run(service.conversation(funded[0], response.id))
    assert [json.loads(item)["type"] for item in history] == ["message", "message"]
    assert json.loads(history[1]) == json.loads(body)["output"][0]
    # another account does not see it
    other, _ = gateway.new_account("1")
    assert gateway.run(service.get(other, response.id)) is None
    unstored = client.responses.create(model="text-prime", input="Forget this.", store=False)
    assert gateway.run(service.get(funded[0], unstored.id)) is None


def test_a_streamed_answer_is_stored_before_its_end_is_sent(
    gateway: GatewayProcess, client: OpenAI, funded: tuple[str, str], spec: OpenAISpec
) -> None:
    streamed = post_stream(gateway, funded[1], {"model": "text-prime", "input": "Tell me a fact."})
    final = stream_events(spec, streamed.content)[-1]
    assert final["type"] == "response.completed"
    # the next turn, sent as soon as the stream has ended, finds it
    second = client.responses.create(
        model="text-prime", previous_response_id=final["response"]["id"], input="And another."
    )
    assert second.status == "completed" and second.output_text
    kept = gateway.run(stored(gateway).get(funded[0], final["response"]["id"]))
    assert kept is not None and json.loads(kept) == final["response"]


def test_another_accounts_response_is_not_found(
    gateway: GatewayProcess, client: OpenAI, sdk: Callable[[str], OpenAI]
) -> None:
    mine = client.responses.create(model="text-prime", input="Mine.")
    _, other_key = gateway.new_account("1")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(other_key).responses.create(
            model="text-prime", input="Theirs?", previous_response_id=mine.id
        )
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "previous_response_id"


def test_the_hold_covers_the_stored_history(
    gateway: GatewayProcess, sdk: Callable[[str], OpenAI]
) -> None:
    """text-max has one offer: a request is held at its price for the canonical prompt's upper
    bound. A turn continuing a long stored response is held for the history too: on a balance
    that covers the turn alone, it is refused (402, naming what it needs, history included)."""
    price = Price(nanos("1.20"), nanos("4.80"))
    long_input = "The quick brown fox jumps over the lazy dog. " * 300
    first_body = {"model": "text-max", "input": long_input, "max_output_tokens": 16}
    second_body = {"model": "text-max", "input": "Go on.", "max_output_tokens": 16}

    def bound(body: dict[str, Any], prior: list[InputItem] | None = None) -> int:
        native = decode_responses_request(json.dumps(body).encode())
        return measure_prompt(to_chat_request(native, prior or []).request).upper_bound

    alone = price.cost(bound(second_body), 16)
    account_id, key = gateway.new_account(
        f"{(price.cost(bound(first_body), 16) + 3 * alone) / 1e9:.9f}"
    )
    client = sdk(key)
    first = client.responses.create(**first_body)
    wait_until(lambda: gateway.usage(account_id))
    prior = [
        msgspec.json.decode(item, type=InputItem)
        for item in gateway.run(stored(gateway).conversation(account_id, first.id))
    ]
    with_history = price.cost(bound(second_body, prior), 16)
    assert with_history > 3 * alone
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(**second_body, previous_response_id=first.id)
    assert caught.value.status_code == 402
    assert f"needs up to ${format_usd(with_history)}" in caught.value.message
    # the same turn without the history is served from the same balance
    assert client.responses.create(**second_body).output_text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("carried", ["stored", "encrypted"])
def test_reasoning_before_a_tool_call_is_given_back_to_an_anthropic_supplier(
    anthropic_wire_gateway: GatewayProcess, carried: str, stream: bool
) -> None:
    """An Anthropic-format supplier with thinking on refuses a tool result whose call is not
    preceded by its signed thinking. The caller gives it back either by previous_response_id
    (the stored answer keeps the signed blocks, though the caller did not ask for them) or by
    sending the reasoning item's encrypted_content (include reasoning.encrypted_content)."""
    gw = anthropic_wire_gateway
    account_id, key = gw.new_account("5")
    question = "Use get_weather for Paris."
    given: dict[str, Any] = {
        "model": "text-prime",
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
    }
    include: list[Any] = ["reasoning.encrypted_content"] if carried == "encrypted" else []
    with OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        ask: dict[str, Any] = {**given, "input": question, "include": include}
        ask["store"] = carried == "stored"
        if stream:
            with client.responses.stream(**ask) as events:
                first = events.get_final_response()
        else:
            first = client.responses.create(**ask)
        assert [item.type for item in first.output] == ["reasoning", "function_call"]
        reasoning = first.output[0]
        assert reasoning.type == "reasoning"
        assert (reasoning.encrypted_content is not None) == (carried == "encrypted")
        call = first.output[1]
        assert call.type == "function_call"
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        if carried == "stored":
            second = client.responses.create(**given, previous_response_id=first.id, input=[result])
            kept = gw.run(stored(gw).get(account_id, first.id))
            assert kept is not None and b"encrypted_content" not in kept  # as answered
        else:
            history = [item.model_dump(exclude_none=True) for item in first.output]
            second = client.responses.create(
                **given,
                store=False,
                input=[{"role": "user", "content": question}, *history, result],
            )
    assert second.status == "completed" and second.output_text


def test_retrieve_input_items_and_delete_after_a_stored_create(
    gateway: GatewayProcess, client: OpenAI, sdk: Callable[[str], OpenAI]
) -> None:
    created = client.responses.create(
        model="text-prime",
        input=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hello!"}]},
        ],
    )
    retrieved = client.responses.retrieve(created.id)
    assert retrieved.model_dump() == created.model_dump()
    assert retrieved.output_text == created.output_text
    items = list(client.responses.input_items.list(created.id, order="asc"))
    assert [(item.type, getattr(item, "role", None)) for item in items] == [
        ("message", "developer"),
        ("message", "user"),
    ]
    assert all(item.id for item in items)
    _, other_key = gateway.new_account("1")
    with pytest.raises(openai.NotFoundError):
        sdk(other_key).responses.retrieve(created.id)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="text-prime", input="Go on.", previous_response_id=created.id)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "previous_response_id"


def test_store_false_keeps_nothing(client: OpenAI) -> None:
    unstored = client.responses.create(model="text-prime", input="Keep nothing.", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_with_retention_off_nothing_is_stored_and_the_answer_says_so(
    bg: BackgroundLoop, tmp_path: Any
) -> None:
    offers = [Offer("sim-one", "text-prime", "sim/one", "0.10", "0.40", 40, 196_608, 65_536)]
    with simulators(bg, ["sim-one"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {"sim-one": sims["sim-one"].base_url},
            offers,
            extra_config="[responses]\nretention_days = 0\n",
        )
        try:
            _, key = gw.new_account("1")
            with OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
                answer = client.responses.create(model="text-prime", input="Hello.")
                assert answer.store is False and answer.output_text
                with pytest.raises(openai.NotFoundError):
                    client.responses.retrieve(answer.id)
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()
