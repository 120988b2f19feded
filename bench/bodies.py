"""The request bodies every target gets (the same bytes for direct, bare proxy and gridgate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROMPT = "Say hello in one short sentence."


def chat_request(model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def messages_request(model: str, *, stream: bool) -> dict[str, Any]:
    """The same request on the Anthropic Messages surface."""
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }


def responses_request(model: str, *, stream: bool) -> dict[str, Any]:
    """The same request on the Responses surface. ``store: false`` (as Codex sends it), so the
    row measures the surface and its translation, not the stored-responses table's writes."""
    return {
        "model": model,
        "input": PROMPT,
        "max_output_tokens": 64,
        "store": False,
        "stream": stream,
    }


REQUESTS = {"chat": chat_request, "messages": messages_request, "responses": responses_request}
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
"""Each surface's path on gridgate."""


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def write_bodies(directory: Path, surface: str = "chat") -> dict[str, Path]:
    """``plain`` and ``stream`` body files for wrk, for the chat-completions surface (every
    target) or the Messages or Responses surface (gridgate with ``--surface``)."""
    request = REQUESTS[surface]
    paths = {
        "plain": directory / f"{surface}-plain.json",
        "stream": directory / f"{surface}-stream.json",
    }
    paths["plain"].write_bytes(encode(request("bench-plain", stream=False)))
    paths["stream"].write_bytes(encode(request("bench-stream", stream=True)))
    return paths


def answered(surface: str, mode: str, text: str) -> bool:
    """Whether ``text`` is a whole answer of ``surface`` (the smoke check before any load): the
    answer object, or a stream to its last event."""
    if mode == "stream":
        end = {
            "chat": "data: [DONE]",
            "messages": "event: message_stop",
            "responses": "event: response.completed",
        }[surface]
        # a Responses stream's last event carries the whole response: look at its event line
        tail = text[-200:] if surface != "responses" else text[text.rfind("event: ") :]
        return end in tail
    kind = {"chat": '"chat.completion"', "messages": '"type":"message"'}.get(surface)
    return kind in text if kind else '"object":"response"' in text and '"completed"' in text
