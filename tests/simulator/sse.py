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
