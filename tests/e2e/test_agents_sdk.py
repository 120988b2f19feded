"""The OpenAI Agents SDK (``openai-agents``) runs an agent through a real ``gridgate serve``.

The SDK's default model is ``OpenAIResponsesModel``: with a model given by name, every turn is a
``POST /v1/responses`` (streamed or not) through the client set with
``set_default_openai_client``. The agent has a function tool and a Pydantic ``output_type``: turn
1 asks for the tool (the simulator calls a tool the user message names), the SDK runs it and
sends its output back, turn 2 answers under ``text.format`` ``json_schema`` (the simulator
answers an instance of the schema), which the SDK parses into the output type. The suppliers are on each of the three wires (on the
Anthropic wire the structured answer is a forced call of an answer tool the gateway adds).
"""

from __future__ import annotations

import pytest
from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.harness import GatewayProcess, wait_until

# Every supplier wire behind the Responses surface: the same catalog called over each.
WIRES = {"anthropic-wire": "anthropic_wire_gateway", "responses-wire": "responses_wire_gateway"}


@pytest.fixture(scope="module", params=["openai-wire", *WIRES])
def gateway(request: pytest.FixtureRequest, gateway: GatewayProcess) -> GatewayProcess:
    if request.param == "openai-wire":
        return gateway
    served: GatewayProcess = request.getfixturevalue(WIRES[request.param])
    return served


class Forecast(BaseModel):
    city: str
    temperature_c: int
    summary: str


@pytest.fixture
def agents_client(gateway: GatewayProcess) -> tuple[str, AsyncOpenAI]:
    """A fresh account; the SDK's default client pointed at the gateway with its key."""
    account, secret = gateway.new_account("5")
    client = AsyncOpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("responses")  # the SDK's default, said out loud
    set_tracing_disabled(True)
    return account, client


def make_agent(seen: list[str]) -> Agent[None]:
    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        seen.append(city)
        return "21 C and sunny"

    return Agent(
        name="forecaster",
        instructions="Answer with the forecast, using get_weather.",
        model="text-prime",
        tools=[get_weather],
        output_type=Forecast,
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_agent_with_a_tool_and_an_output_type(
    agents_client: tuple[str, AsyncOpenAI], gateway: GatewayProcess, streamed: bool
) -> None:
    account, client = agents_client
    seen: list[str] = []
    agent = make_agent(seen)
    prompt = "What is the weather in Paris? Call get_weather."
    if streamed:
        run = Runner.run_streamed(agent, prompt)
        events = [event.type async for event in run.stream_events()]
        assert "raw_response_event" in events
        result = run
    else:
        result = await Runner.run(agent, prompt)  # type: ignore[assignment]
    await client.close()

    assert isinstance(result.final_output, Forecast)
    assert len(seen) == 1  # the SDK ran the tool once, with arguments the model gave
    kinds = [type(item) for item in result.new_items]
    assert ToolCallItem in kinds and ToolCallOutputItem in kinds
    responses = result.raw_responses
    assert len(responses) == 2
    assert all(r.response_id and r.response_id.startswith("resp_") for r in responses)
    assert responses[0].usage.input_tokens > 0 and responses[1].usage.output_tokens > 0

    # Both turns went through the exchange: two usage records, billed, on text-prime.
    records = wait_until(lambda: (r := gateway.usage(account)) and len(r) >= 2 and r)
    assert len(records) == 2
    assert {r.instrument for r in records} == {"text-prime"}
    assert all(r.outcome == "ok" and r.status == 200 and r.cost > 0 for r in records)
    assert {r.stream for r in records} == {streamed}
