"""Planning an answer (pure): prompt counting, text, stop/max cuts, tool choice, budgets."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgate.simulator.completion import Completion, plan_completion, reasoning_tokens
from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.prompt import read_prompt
from gridgate.simulator.request import read_request
from gridgate.simulator.text import tokenize, words


def plan(default_length: int = 64, **body: Any) -> Completion:
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    request = read_request(body)
    return plan_completion(
        request,
        read_prompt(request.messages),
        salt="",
        default_length=default_length,
        reasoning_length=reasoning_tokens(request.reasoning_effort),
    )


def tool(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def test_words_prefix_property() -> None:
    full = words(random.Random(3), 40)
    assert words(random.Random(3), 13, 40) == full[:13]
    assert full[-1].endswith(".")
    assert full[0][0].isupper()
    assert full[12].startswith(" ") and full[12][1].isupper()
    assert "".join(tokenize("".join(full))) == "".join(full)


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(1, 80),
    stop_word=st.integers(0, 70),
    length=st.integers(1, 70),
)
def test_cuts_are_prefixes(budget: int, stop_word: int, length: int) -> None:
    full = plan(length).choices[0].text
    assert full is not None
    cut = plan(length, max_tokens=budget).choices[0]
    assert cut.text is not None
    assert full.startswith(cut.text)
    assert cut.completion_tokens == min(budget, length)
    assert cut.finish_reason == ("length" if budget < length else "stop")
    parts = full.split(" ")
    stop = " " + parts[stop_word % len(parts)] if stop_word % len(parts) else parts[0]
    stopped = plan(length, stop=stop).choices[0]
    assert stopped.text == full[: full.index(stop)]
    assert stopped.finish_reason == "stop"


def test_stop_spanning_tokens() -> None:
    full = plan(20).choices[0]
    assert full.content is not None
    stop = full.content[3][-2:] + full.content[4][:3]  # the end of one word, start of the next
    cut = plan(20, stop=[stop]).choices[0]
    text = "".join(full.content)
    assert cut.text == text[: text.index(stop)]
    assert cut.completion_tokens == 5


def test_prompt_tokens() -> None:
    assert read_prompt([{"role": "user", "content": "a" * 9}]).tokens == 3 + 4
    assert read_prompt([{"role": "user", "content": ""}, {"role": "user"}]).tokens == 8
    with pytest.raises(SimulatorError):
        read_prompt([])
    with pytest.raises(SimulatorError):
        read_prompt(["not a message"])


def test_tool_choice_rules() -> None:
    tools = [tool("alpha"), tool("beta")]
    user = [{"role": "user", "content": "hello"}]

    def called(**body: Any) -> list[str]:
        choice = plan(**{"messages": user, "tools": tools, **body}).choices[0]
        return [call.name for call in choice.tool_calls]

    assert called() == []
    assert called(tool_choice="required") == ["alpha"]
    assert called(tool_choice={"type": "function", "function": {"name": "beta"}}) == ["beta"]
    assert called(messages=[{"role": "user", "content": "use a tool"}]) == ["alpha"]
    assert called(messages=[{"role": "user", "content": "beta then alpha"}]) == ["alpha", "beta"]
    assert called(messages=[{"role": "user", "content": "alphabet"}]) == []
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "beta"}}],
        },
    }
    assert called(tool_choice=allowed) == ["beta"]
    after_result = [*user, {"role": "tool", "tool_call_id": "x", "content": "42 degrees"}]
    answer = plan(messages=after_result, tools=tools).choices[0]
    assert answer.tool_calls == ()
    assert answer.text is not None
    assert "42 degrees" in answer.text
    # a call is required after a tool result: the last tool (the next step), not the first again
    assert called(messages=after_result, tool_choice="required") == ["beta"]
    with pytest.raises(SimulatorError):
        called(tool_choice={"type": "function", "function": {"name": "gamma"}})


def test_tool_call_budget_cut() -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 60}},
        "required": ["text"],
    }
    full = plan(tools=[tool("f", schema)], tool_choice="required").choices[0]
    assert full.finish_reason == "tool_calls"
    (call,) = full.tool_calls
    assert full.completion_tokens == 1 + len(call.fragments)
    cut = plan(tools=[tool("f", schema)], tool_choice="required", max_tokens=5).choices[0]
    assert cut.finish_reason == "length"
    assert cut.completion_tokens == 5
    assert call.arguments.startswith(cut.tool_calls[0].arguments)
    # A tool without parameters gets an object.
    bare = plan(tools=[tool("g")], tool_choice="required").choices[0]
    assert bare.tool_calls[0].arguments.startswith("{")


def test_tool_arguments_written_in_the_prompt() -> None:
    """``NAME({...})`` in the last user message gives that call's arguments verbatim (how the
    Codex CLI test makes the agent run a harmless command); otherwise they come from the schema."""
    schema = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}
    tools = [tool("exec_command", schema), tool("other", schema)]

    def calls(text: str) -> list[tuple[str, str]]:
        choice = plan(messages=[{"role": "user", "content": text}], tools=tools).choices[0]
        return [(call.name, call.arguments) for call in choice.tool_calls]

    assert calls('Call exec_command({"cmd": "echo hi"}) now.') == [
        ("exec_command", '{"cmd":"echo hi"}')
    ]
    # not a JSON object after the name: the schema's instance, as before
    ((name, arguments),) = calls("Call exec_command(cmd) now.")
    assert name == "exec_command" and arguments != '{"cmd":"cmd"}'
    assert arguments.startswith('{"cmd":')
    # each named tool reads its own; one without gets the schema's instance
    both = calls('Use exec_command({"cmd": "ls"}) and other')
    assert both[0] == ("exec_command", '{"cmd":"ls"}')
    assert both[1][0] == "other" and both[1][1] != '{"cmd":"ls"}'
    # an object that does not fit the schema is still what was asked for
    assert calls('exec_command({"x": [1, 2]})') == [("exec_command", '{"x":[1,2]}')]


def test_reasoning_budget_and_bad_schema() -> None:
    choice = plan(reasoning_effort="high", max_tokens=40).choices[0]
    assert len(choice.reasoning) == 32
    assert choice.content is not None
    assert len(choice.content) == 8
    with pytest.raises(SimulatorError) as caught:
        plan(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": False}})
    assert caught.value.param == "response_format"
