"""Every path carries the same facts: {OpenAI chat surface, Anthropic surface, Responses
surface} × {OpenAI-format supplier, Anthropic-format supplier, Responses-API supplier} ×
{plain, streamed}.

One simulator stands behind three suppliers — called over the OpenAI chat wire, the Anthropic
wire and the OpenAI Responses wire — with the same model, so for the same conversation it plans
the same answer. ``text-standard`` is served only by the OpenAI-format supplier, ``text-prime``
only by the Anthropic-format one and ``text-next`` only by the Responses-API one, at the same
price. Each case sends the same conversation on every path with the official SDKs (``openai``
on the OpenAI surface, ``anthropic``'s ``create`` and ``stream`` helpers on the Messages
surface, ``responses.create`` and ``responses.stream`` on the Responses surface) and compares
what arrives: text, reasoning, tool calls with complete arguments, the
stop reason and sequence, token counts and the charged cost.

A surface is a row of ``SURFACES`` (its name → how a conversation is asked on it) and a field of
``Conversation`` (the conversation in its dialect): a third surface is one more of each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from gridgate.money import Price, format_usd_fixed
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

SIM_KEY = "sk-sim-matrix-0123456789abcdef"
INSTRUMENT_BY_WIRE = {
    "openai": "text-standard",
    "anthropic": "text-prime",
    "openai-responses": "text-next",
}
WIRES = tuple(INSTRUMENT_BY_WIRE)
SUPPLIER_BY_WIRE = {
    "openai": "wire-openai",
    "anthropic": "wire-anthropic",
    "openai-responses": "wire-responses",
}
CAPS = ("tools", "json_schema", "vision")
OFFERS = [
    Offer("wire-openai", "text-standard", "sim/m", "1.00", "4.00", 40, 200_000, 64_000, CAPS),
    Offer("wire-anthropic", "text-prime", "sim/m", "1.00", "4.00", 40, 200_000, 64_000, CAPS),
    Offer("wire-responses", "text-next", "sim/m", "1.00", "4.00", 40, 200_000, 64_000, CAPS),
    # text-max: the Anthropic-format offer is cheaper; the OpenAI-format one serves what the
    # Anthropic wire cannot carry
    Offer("wire-anthropic", "text-max", "sim/m", "1.00", "4.00", 60, 1_000_000, 128_000, CAPS),
    Offer("wire-openai", "text-max", "sim/m", "2.00", "8.00", 60, 1_000_000, 128_000, CAPS),
]
PRICE = Price(nanos("1.00"), nanos("4.00"))
# text-next: text-prime's limits, for the Responses-API supplier alone
TEXT_NEXT = """
[[instruments]]
id = "text-next"
quality_floor = 38
context_floor = 128000
max_output_floor = 30000
context_length = 196608
max_input_tokens = 120000
max_completion_tokens = 131072
reasoning_efforts = ["low", "medium", "high"]
"""

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
SYSTEM = "You are terse."
QUESTION = "Tell me about the weather in Lisbon."
TOOL_RESULT = "22 degrees and sunny"


@pytest.fixture(scope="module")
def gw(bg: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with simulators(bg, ["sim-matrix"], api_key=SIM_KEY) as sims:
        url = sims["sim-matrix"].base_url
        gateway = start_gateway(
            tmp_path_factory.mktemp("matrix"),
            bg,
            dict.fromkeys(SUPPLIER_BY_WIRE.values(), url),
            OFFERS,
            extra_config=TEXT_NEXT,
            env={"SIM_MATRIX_KEY": SIM_KEY},
            key_envs=dict.fromkeys(SUPPLIER_BY_WIRE.values(), "SIM_MATRIX_KEY"),
            wires={supplier: wire for wire, supplier in SUPPLIER_BY_WIRE.items()},
        )
        gateway.sims = sims
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


# -- what arrives, surface-neutral --------------------------------------------------------------


@dataclass
class Facts:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    stop: str = ""  # in the Messages API's words: end_turn, stop_sequence, max_tokens, tool_use
    stop_sequence: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: int = 0
    inline_cost: str | None = None  # usage.cost, as the answer says it (checked in ``ask``)
    tool_ids: list[str] = field(default_factory=list)  # not compared: ids differ per supplier
    signatures: list[str] = field(default_factory=list)  # not compared
    items: list[dict[str, Any]] = field(default_factory=list)  # Responses output, not compared


_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _openai_stop(finish: str | None, stop_reason: Any) -> tuple[str, str | None]:
    if finish == "stop" and isinstance(stop_reason, str):
        return "stop_sequence", stop_reason
    return _FINISH.get(finish or "", finish or ""), None


def compact(value: Any) -> str:
    """JSON as models write tool arguments (the Anthropic wire carries them as an object, so
    their whitespace is the only thing that does not survive it)."""
    return json.dumps(value, separators=(",", ":"))


def _args(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a cut argument stays as text


@dataclass(frozen=True)
class Path:
    surface: str
    wire: str
    stream: bool

    @property
    def instrument(self) -> str:
        return INSTRUMENT_BY_WIRE[self.wire]

    def __str__(self) -> str:
        mode = "stream" if self.stream else "plain"
        return f"{self.surface}-surface/{self.wire}-supplier/{mode}"


@dataclass
class Conversation:
    """One conversation, said in each surface's dialect."""

    openai: dict[str, Any]  # chat.completions.create kwargs, without model/stream
    anthropic: dict[str, Any]  # messages.create kwargs, without model/stream
    responses: dict[str, Any]  # responses.create kwargs, without model/stream


def _on_openai(gw: GatewayProcess, key: str, path: Path, conversation: Conversation) -> Facts:
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        return _ask_openai(client, path, conversation.openai)


def _on_anthropic(gw: GatewayProcess, key: str, path: Path, conversation: Conversation) -> Facts:
    root = gw.base_url.removesuffix("/v1")
    with anthropic.Anthropic(base_url=root, api_key=key, max_retries=0) as sdk:
        return _ask_anthropic(sdk, path, conversation.anthropic)


def _on_responses(gw: GatewayProcess, key: str, path: Path, conversation: Conversation) -> Facts:
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        return _ask_responses(client, path, conversation.responses)


# surface → how a conversation is asked on it
SURFACES: dict[str, Callable[[GatewayProcess, str, Path, Conversation], Facts]] = {
    "openai": _on_openai,
    "anthropic": _on_anthropic,
    "responses": _on_responses,
}
PATHS = [
    Path(surface, wire, stream)
    for surface in SURFACES
    for wire in WIRES
    for stream in (False, True)
]


def ask(gw: GatewayProcess, path: Path, conversation: Conversation) -> Facts:
    account, key = gw.new_account("5")
    facts = SURFACES[path.surface](gw, key, path, conversation)
    records = wait_until(lambda: [r for r in gw.usage(account) if r.outcome != "in_progress"])
    assert len(records) == 1, records
    assert records[0].outcome == "ok"
    facts.cost = records[0].cost
    assert facts.inline_cost == format_usd_fixed(facts.cost), (path, facts.inline_cost)
    return facts


def _ask_openai(client: openai.OpenAI, path: Path, kwargs: dict[str, Any]) -> Facts:
    facts = Facts()
    if not path.stream:
        completion = client.chat.completions.create(model=path.instrument, **kwargs)
        choice = completion.choices[0]
        message = choice.message
        extra = message.model_extra or {}
        facts.text = message.content or ""
        facts.reasoning = extra.get("reasoning_content") or ""
        for call in message.tool_calls or []:
            assert call.type == "function"
            facts.tool_calls.append((call.function.name, _args(call.function.arguments)))
            facts.tool_ids.append(call.id)
        facts.signatures = [
            b["signature"] for b in extra.get("thinking_blocks") or [] if b.get("signature")
        ]
        facts.stop, facts.stop_sequence = _openai_stop(
            choice.finish_reason, (choice.model_extra or {}).get("stop_reason")
        )
        assert completion.usage is not None
        facts.prompt_tokens = completion.usage.prompt_tokens
        facts.completion_tokens = completion.usage.completion_tokens
        facts.inline_cost = (completion.usage.model_extra or {}).get("cost")
        return facts
    stream = client.chat.completions.create(
        model=path.instrument, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    stop_reason: Any = None
    for chunk in stream:
        if chunk.usage is not None:
            facts.prompt_tokens = chunk.usage.prompt_tokens
            facts.completion_tokens = chunk.usage.completion_tokens
            facts.inline_cost = (chunk.usage.model_extra or {}).get("cost")
        for choice in chunk.choices:
            delta = choice.delta
            extra = delta.model_extra or {}
            text.append(delta.content or "")
            reasoning.append(extra.get("reasoning_content") or "")
            facts.signatures += [
                b["signature"] for b in extra.get("thinking_blocks") or [] if b.get("signature")
            ]
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
            if choice.finish_reason is not None:
                finish = choice.finish_reason
                stop_reason = (choice.model_extra or {}).get("stop_reason")
    facts.text = "".join(text)
    facts.reasoning = "".join(reasoning)
    for index in sorted(calls):
        facts.tool_calls.append((calls[index]["name"], _args(calls[index]["arguments"])))
        facts.tool_ids.append(calls[index]["id"])
    facts.stop, facts.stop_sequence = _openai_stop(finish, stop_reason)
    return facts


def _ask_anthropic(client: anthropic.Anthropic, path: Path, kwargs: dict[str, Any]) -> Facts:
    facts = Facts()
    if path.stream:
        with client.messages.stream(model=path.instrument, **kwargs) as stream:
            for event in stream:
                if event.type == "message_delta":
                    facts.inline_cost = (event.usage.model_extra or {}).get("cost")
            message = stream.get_final_message()
    else:
        message = client.messages.create(model=path.instrument, **kwargs)
        facts.inline_cost = (message.usage.model_extra or {}).get("cost")
    for block in message.content:
        if block.type == "text":
            facts.text += block.text
        elif block.type == "thinking":
            facts.reasoning += block.thinking
            facts.signatures.append(block.signature)
        elif block.type == "tool_use":
            facts.tool_calls.append((block.name, block.input))
            facts.tool_ids.append(block.id)
        else:
            raise AssertionError(f"unexpected block {block.type}")
    facts.stop = message.stop_reason or ""
    facts.stop_sequence = message.stop_sequence
    usage = message.usage
    facts.prompt_tokens = (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )
    facts.completion_tokens = usage.output_tokens
    return facts


def _ask_responses(client: openai.OpenAI, path: Path, kwargs: dict[str, Any]) -> Facts:
    if path.stream:
        deltas: list[str] = []
        ends = []  # the SDK's get_final_response knows only response.completed
        with client.responses.stream(model=path.instrument, **kwargs) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                elif event.type in ("response.completed", "response.incomplete"):
                    ends.append(event.response)
        [response] = ends
        assert "".join(deltas) == response.output_text  # relayed as it came
    else:
        response = client.responses.create(model=path.instrument, **kwargs)
    facts = Facts(text=response.output_text)
    for item in response.output:
        facts.items.append(item.model_dump(exclude_none=True))
        if item.type == "reasoning":
            facts.reasoning += "\n\n".join(part.text for part in item.summary)
            if item.encrypted_content:
                facts.signatures.append(item.encrypted_content)
        elif item.type == "function_call":
            facts.tool_calls.append((item.name, _args(item.arguments)))
            facts.tool_ids.append(item.call_id)
        else:
            assert item.type == "message", item
    if response.status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
        facts.stop = "max_tokens"
    else:
        assert response.status == "completed", response
        facts.stop = "tool_use" if facts.tool_calls else "end_turn"
    assert response.usage is not None
    facts.prompt_tokens = response.usage.input_tokens
    facts.completion_tokens = response.usage.output_tokens
    facts.inline_cost = (response.usage.model_extra or {}).get("cost")
    return facts


def comparable(facts: Facts) -> tuple[Any, ...]:
    return (
        facts.text,
        facts.reasoning,
        facts.tool_calls,
        facts.stop,
        facts.stop_sequence,
        facts.prompt_tokens,
        facts.completion_tokens,
        facts.cost,
    )


def ask_everywhere(
    gw: GatewayProcess, conversation: Conversation, paths: list[Path] = PATHS
) -> dict[Path, Facts]:
    return {path: ask(gw, path, conversation) for path in paths}


def assert_same(results: dict[Path, Facts]) -> Facts:
    first_path, first = next(iter(results.items()))
    for path, facts in results.items():
        assert comparable(facts) == comparable(first), f"{path} differs from {first_path}"
    assert first.cost == PRICE.cost(first.prompt_tokens, first.completion_tokens)
    return first


# -- the cases ------------------------------------------------------------------------------------


def text_conversation(**extra: Any) -> Conversation:
    openai_extra = {("stop" if k == "stop_sequences" else k): v for k, v in extra.items()}
    # the Responses API has no stop sequences: that surface is not asked for them (below)
    responses_extra = {
        ("max_output_tokens" if k == "max_tokens" else k): v
        for k, v in extra.items()
        if k != "stop_sequences"
    }
    return Conversation(
        openai={
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
            "max_tokens": 1000,
            **openai_extra,
        },
        anthropic={
            "system": SYSTEM,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 1000,
            **extra,
        },
        responses={
            "instructions": SYSTEM,
            "input": QUESTION,
            "max_output_tokens": 1000,
            "store": False,
            **responses_extra,
        },
    )


def test_text(gw: GatewayProcess) -> None:
    facts = assert_same(ask_everywhere(gw, text_conversation()))
    assert facts.text and facts.stop == "end_turn" and not facts.tool_calls
    assert facts.prompt_tokens > 0 and facts.completion_tokens > 0


def test_max_tokens_cut(gw: GatewayProcess) -> None:
    # 16: the least max_output_tokens the Responses API takes
    facts = assert_same(ask_everywhere(gw, text_conversation(max_tokens=16)))
    assert facts.stop == "max_tokens"
    assert facts.completion_tokens == 16


def test_stop_sequence(gw: GatewayProcess) -> None:
    full = ask(gw, PATHS[0], text_conversation())
    words = full.text.split()
    assert len(words) > 4
    stop = " " + words[3]
    # the Responses API has no stop sequences: that wire cannot carry them (below), that
    # surface cannot ask for them
    paths = [p for p in PATHS if p.wire != "openai-responses" and p.surface != "responses"]
    facts = assert_same(ask_everywhere(gw, text_conversation(stop_sequences=[stop]), paths))
    assert facts.stop == "stop_sequence"
    assert facts.stop_sequence == stop
    assert facts.text == full.text[: full.text.index(stop)]


def test_stop_sequences_are_untranslatable_for_a_responses_api_supplier(
    gw: GatewayProcess,
) -> None:
    account, key = gw.new_account("5")
    with (
        openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(openai.UnprocessableEntityError) as caught,
    ):
        client.chat.completions.create(
            model=INSTRUMENT_BY_WIRE["openai-responses"],
            messages=[{"role": "user", "content": QUESTION}],
            stop=["END"],
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("untranslatable", "stop")
    records = wait_until(lambda: [r for r in gw.usage(account) if r.status == 422] or None)
    assert records[0].cost == 0


def weather_turn() -> Conversation:
    tool_openai = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": WEATHER_SCHEMA,
        },
    }
    tool_anthropic = {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER_SCHEMA,
    }
    tool_responses = {"type": "function", **tool_openai["function"]}
    return Conversation(
        openai={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": [tool_openai],
            "tool_choice": "required",
            "max_tokens": 200,
        },
        anthropic={
            "messages": [{"role": "user", "content": QUESTION}],
            "tools": [tool_anthropic],
            "tool_choice": {"type": "any"},
            "max_tokens": 200,
        },
        responses={
            "input": [{"role": "user", "content": QUESTION}],
            "tools": [tool_responses],
            "tool_choice": "required",
            "max_output_tokens": 200,
            "store": False,
        },
    )


def test_tool_call_round_trip(gw: GatewayProcess) -> None:
    first_turn = weather_turn()
    calls = ask_everywhere(gw, first_turn)
    facts = assert_same(calls)
    assert facts.stop == "tool_use"
    [(name, arguments)] = facts.tool_calls
    assert name == "get_weather"
    jsonschema.validate(arguments, WEATHER_SCHEMA)

    # the second turn goes back on the path the first came from, with that path's tool call id
    answers: dict[Path, Facts] = {}
    for path, call in calls.items():
        [call_id] = call.tool_ids
        conversation = weather_turn()
        conversation.openai["messages"] += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": compact(arguments)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
        ]
        conversation.openai["tool_choice"] = "auto"
        conversation.anthropic["messages"] += [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": TOOL_RESULT}
                ],
            },
        ]
        conversation.anthropic["tool_choice"] = {"type": "auto"}
        conversation.responses["input"] += [
            {
                "type": "function_call",
                "call_id": call_id,
                "name": name,
                "arguments": compact(arguments),
            },
            {"type": "function_call_output", "call_id": call_id, "output": TOOL_RESULT},
        ]
        conversation.responses["tool_choice"] = "auto"
        answers[path] = ask(gw, path, conversation)
    answer = assert_same(answers)
    assert TOOL_RESULT in answer.text
    assert answer.stop == "end_turn" and not answer.tool_calls


def test_reasoning(gw: GatewayProcess) -> None:
    conversation = Conversation(
        openai={
            "messages": [{"role": "user", "content": QUESTION}],
            "reasoning_effort": "medium",
            "max_completion_tokens": 8000,
        },
        anthropic={
            "messages": [{"role": "user", "content": QUESTION}],
            "thinking": {"type": "enabled", "budget_tokens": 4096},
            "max_tokens": 8000,
        },
        responses={
            "input": QUESTION,
            "reasoning": {"effort": "medium"},
            "max_output_tokens": 8000,
            "include": ["reasoning.encrypted_content"],
            "store": False,
        },
    )
    results = ask_everywhere(gw, conversation)
    facts = assert_same(results)
    assert len(facts.reasoning.split()) == 16  # the simulator's "medium" = a 4,096-token budget
    assert facts.text
    # an Anthropic-format supplier signs its reasoning, a Responses-API supplier seals its
    # reasoning item (with its encrypted content): either reaches the caller as a signature,
    # sealed again in the reasoning item's encrypted_content on the Responses surface
    for path, got in results.items():
        if path.surface == "responses" and path.wire != "openai":
            assert [s[:4] for s in got.signatures] == ["gg1."], path
        elif path.wire == "anthropic":
            assert got.signatures, path
        elif path.wire == "openai-responses":
            assert [s[:6] for s in got.signatures] == ["oair1."], path


def test_thinking_is_sent_back_with_its_signature(gw: GatewayProcess) -> None:
    """A second turn carrying the first turn's thinking block is accepted by the supplier (it
    checks the signature; a Responses-API supplier checks the encrypted content of the
    reasoning item sealed in it), on every surface."""
    for surface, wire in itertools.product(SURFACES, ("anthropic", "openai-responses")):
        path = Path(surface, wire, stream=False)
        first = ask(
            gw,
            path,
            Conversation(
                openai={
                    "messages": [{"role": "user", "content": QUESTION}],
                    "reasoning_effort": "low",
                    "max_completion_tokens": 4000,
                },
                anthropic={
                    "messages": [{"role": "user", "content": QUESTION}],
                    "thinking": {"type": "enabled", "budget_tokens": 2048},
                    "max_tokens": 4000,
                },
                responses={
                    "input": QUESTION,
                    "reasoning": {"effort": "low"},
                    "max_output_tokens": 4000,
                    "include": ["reasoning.encrypted_content"],
                    "store": False,
                },
            ),
        )
        [signature] = first.signatures
        follow_up = "And tomorrow?"
        second = ask(
            gw,
            path,
            Conversation(
                openai={
                    "messages": [
                        {"role": "user", "content": QUESTION},
                        {
                            "role": "assistant",
                            "content": first.text,
                            "reasoning_content": first.reasoning,
                            "thinking_blocks": [
                                {
                                    "type": "thinking",
                                    "thinking": first.reasoning,
                                    "signature": signature,
                                }
                            ],
                        },
                        {"role": "user", "content": follow_up},
                    ],
                    "reasoning_effort": "low",
                    "max_completion_tokens": 4000,
                },
                anthropic={
                    "messages": [
                        {"role": "user", "content": QUESTION},
                        {
                            "role": "assistant",
                            "content": [
                                {
                                    "type": "thinking",
                                    "thinking": first.reasoning,
                                    "signature": signature,
                                },
                                {"type": "text", "text": first.text},
                            ],
                        },
                        {"role": "user", "content": follow_up},
                    ],
                    "thinking": {"type": "enabled", "budget_tokens": 2048},
                    "max_tokens": 4000,
                },
                responses={
                    # the reasoning item with its encrypted_content, and the answer, as given
                    "input": [
                        {"role": "user", "content": QUESTION},
                        *first.items,
                        {"role": "user", "content": follow_up},
                    ],
                    "reasoning": {"effort": "low"},
                    "max_output_tokens": 4000,
                    "include": ["reasoning.encrypted_content"],
                    "store": False,
                },
            ),
        )
        assert second.text and second.reasoning


def test_structured_output(gw: GatewayProcess) -> None:
    conversation = Conversation(
        openai={
            "messages": [{"role": "user", "content": "Describe a person."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": PERSON_SCHEMA, "strict": True},
            },
            "max_tokens": 400,
        },
        anthropic={
            "messages": [{"role": "user", "content": "Describe a person."}],
            "extra_body": {"output_format": {"type": "json_schema", "schema": PERSON_SCHEMA}},
            "max_tokens": 400,
        },
        responses={
            "input": "Describe a person.",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "output",
                    "schema": PERSON_SCHEMA,
                    "strict": True,
                }
            },
            "max_output_tokens": 400,
            "store": False,
        },
    )
    results = ask_everywhere(gw, conversation)
    # The document is the supplier's: an OpenAI-format supplier answers in its native JSON
    # mode, an Anthropic-format one through a forced tool — so facts agree per supplier format.
    for wire in WIRES:
        facts = assert_same({p: f for p, f in results.items() if p.wire == wire})
        assert facts.stop == "end_turn" and not facts.tool_calls
        jsonschema.validate(json.loads(facts.text), PERSON_SCHEMA)


def test_a_part_the_anthropic_wire_cannot_carry_goes_to_an_openai_format_offer(
    gw: GatewayProcess,
) -> None:
    account, key = gw.new_account("5")
    messages: Any = [{"role": "user", "content": QUESTION}]
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        served = client.chat.completions.with_raw_response.create(
            model="text-max", messages=messages, max_tokens=5, n=2
        )
        assert served.headers["x-gridgate-supplier"] == "wire-openai"
        assert len(served.parse().choices) == 2

        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(model="text-prime", messages=messages, max_tokens=5, n=2)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "untranslatable"
    assert error["param"] == "n"
    records = wait_until(lambda: [r for r in gw.usage(account) if r.status == 422] or None)
    assert records[0].cost == 0
