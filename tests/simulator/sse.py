"""Reading a raw ``text/event-stream`` body strictly, as the tests want it framed."""

from __future__ import annotations

import json
from typing import Any

DONE = "[DONE]"


def sse_data(raw: bytes) -> list[str]:
    """The ``data:`` payloads; fails on anything but ``data: ...\\n\\n`` events."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    events = text[:-2].split("\n\n")
    payloads = []
    for event in events:
        assert event.startswith("data: "), event
        assert "\n" not in event, event
        payloads.append(event[len("data: ") :])
    return payloads


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a complete stream (which must end with ``data: [DONE]``)."""
    payloads = sse_data(raw)
    assert payloads[-1] == DONE
    assert DONE not in payloads[:-1]
    return [json.loads(payload) for payload in payloads[:-1]]


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` pairs of an Anthropic stream; fails on anything but
    ``event: <type>\\ndata: <json>\\n\\n`` events whose data ``type`` is the event's name."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    events = []
    for event in text[:-2].split("\n\n"):
        lines = event.split("\n")
        assert len(lines) == 2, event
        assert lines[0].startswith("event: "), event
        assert lines[1].startswith("data: "), event
        name = lines[0][len("event: ") :]
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == name, event
        events.append((name, data))
    return events


_DELTAS = {
    "text": ("text_delta",),
    "thinking": ("thinking_delta", "signature_delta"),
    "tool_use": ("input_json_delta",),
}


def assemble(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The message a complete Anthropic stream carries, checking the event grammar on the way:
    ``message_start ping (content_block_start content_block_delta* content_block_stop)*
    message_delta message_stop``, block indices 0, 1, …, each delta of its block's kind, a
    thinking block's one ``signature_delta`` after its text. ``tool_use`` input is parsed from
    the joined ``partial_json``; ``usage`` is message_start's updated by message_delta's."""
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"], names
    assert names[-2:] == ["message_delta", "message_stop"], names
    message = dict(events[0][1]["message"])
    assert message["content"] == []
    assert message["stop_reason"] is None
    blocks: list[dict[str, Any]] = []
    block: dict[str, Any] | None = None
    partial = ""
    for name, data in events[2:-2]:
        if name == "content_block_start":
            assert block is None, "a block started before the last one stopped"
            assert data["index"] == len(blocks)
            block = dict(data["content_block"])
            partial = ""
            if block["type"] == "tool_use":
                assert block["input"] == {}
            elif block["type"] == "thinking":
                assert block == {"type": "thinking", "thinking": "", "signature": ""}
            else:
                assert block == {"type": "text", "text": ""}
            continue
        assert block is not None, f"{name} outside a block"
        assert data["index"] == len(blocks)
        if name == "content_block_stop":
            if block["type"] == "tool_use":
                block["input"] = _input(partial)
            if block["type"] == "thinking":
                assert block["signature"], "a thinking block without its signature"
            blocks.append(block)
            block = None
            continue
        assert name == "content_block_delta", name
        delta = data["delta"]
        assert delta["type"] in _DELTAS[block["type"]], (block["type"], delta)
        if delta["type"] == "text_delta":
            block["text"] += delta["text"]
        elif delta["type"] == "thinking_delta":
            assert not block["signature"], "thinking after the signature"
            block["thinking"] += delta["thinking"]
        elif delta["type"] == "signature_delta":
            assert not block["signature"], "two signatures"
            block["signature"] = delta["signature"]
        else:
            partial += delta["partial_json"]
    assert block is None, "the last block never stopped"
    end = events[-2][1]
    message["content"] = blocks
    message["stop_reason"] = end["delta"]["stop_reason"]
    message["stop_sequence"] = end["delta"]["stop_sequence"]
    message["usage"] = {**message["usage"], **end["usage"]}
    return message


def _input(partial: str) -> Any:
    """A tool's input from its ``partial_json``; ``{}`` when a max-tokens cut left it invalid
    (what the plain answer gives then)."""
    try:
        return json.loads(partial) if partial else {}
    except json.JSONDecodeError:
        return {}
