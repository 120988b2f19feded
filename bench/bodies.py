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


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def write_bodies(directory: Path, surface: str = "chat") -> dict[str, Path]:
    """``plain`` and ``stream`` body files for wrk, for the chat-completions surface (every
    target) or the Messages surface (gridgate with ``--surface messages``)."""
    request = chat_request if surface == "chat" else messages_request
    paths = {
        "plain": directory / f"{surface}-plain.json",
        "stream": directory / f"{surface}-stream.json",
    }
    paths["plain"].write_bytes(encode(request("bench-plain", stream=False)))
    paths["stream"].write_bytes(encode(request("bench-stream", stream=True)))
    return paths
