"""What the simulator reads from ``messages``: a token count, a digest and the last turns.

Prompt token count (a deterministic approximation, not a real tokenizer)::

    prompt_tokens = ceil(utf8_bytes(all text) / 4) + 4 * len(messages)

"All text" is every message's string ``content``, the ``text`` of its ``text`` parts (and
``refusal`` parts), and the function ``name`` + ``arguments`` of assistant ``tool_calls``.
Images, audio and files count nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gridgate.simulator.errors import SimulatorError

TOKENS_PER_MESSAGE = 4
BYTES_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Prompt:
    tokens: int
    digest: bytes
    """Hash of every message's role and text: the part of the request that picks the text."""
    last_role: str
    last_user_text: str
    last_text: str
    """Text of the last message (a tool result when ``last_role == "tool"``)."""


def read_prompt(messages: object) -> Prompt:
    if not isinstance(messages, list) or not messages:
        raise SimulatorError(400, "'messages' must be a non-empty array", param="messages")
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    last_user_text = ""
    text = ""
    role = ""
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise SimulatorError(
                400, "each message must be an object", param=f"messages.{position}"
            )
        role = str(message.get("role", ""))
        text = _message_text(message)
        encoded = text.encode()
        size += len(encoded)
        digest.update(role.encode() + b"\x1f" + encoded + b"\x1e")
        if role == "user":
            last_user_text = text
    tokens = -(-size // BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)
    return Prompt(
        tokens=tokens,
        digest=digest.digest(),
        last_role=role,
        last_user_text=last_user_text,
        last_text=text,
    )


def _message_text(message: dict[str, object]) -> str:
    content = message.get("content")
    pieces: list[str] = []
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                value = part.get("text", part.get("refusal"))
                if isinstance(value, str):
                    pieces.append(value)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                pieces.append(str(function.get("name", "")))
                pieces.append(str(function.get("arguments", "")))
    return "".join(pieces)
