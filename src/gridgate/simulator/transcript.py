"""The conversation of a Messages request: checked as Anthropic checks it, then read into the
OpenAI-shaped message list the planner reads, with the prefix boundaries prompt caching needs.

Checks (400, Anthropic's wording) that catch a translating gateway's mistakes:

- a message is ``{"role": "user" | "assistant", "content": str | blocks}`` (a ``system`` role
  belongs in the top-level ``system``); blocks as :mod:`.anthropic_blocks` allows them per role;
  no empty content but in a final assistant message, which must not end in whitespace;
- consecutive same-role messages form one turn; the ``tool_use`` ids of an assistant turn must
  all be answered by ``tool_result`` blocks at the start of the next (user) turn, and every
  ``tool_result`` must answer a ``tool_use`` of the turn before;
- with thinking on, an assistant turn that the final user turn answers with tool results must
  start with a ``thinking`` / ``redacted_thinking`` block;
- every ``thinking`` block must carry the signature the simulator issued for its text
  (:mod:`.signature`), whether thinking is on or not;
- at most 4 ``cache_control`` breakpoints.

Normalisation (so both wires plan the same answer and count the same prompt tokens):
``system`` → one leading system message; a user turn's ``tool_result`` blocks → one ``tool``
message each (their text), before a user message holding the rest (text, images, documents);
an assistant message → one assistant message with its text and ``tool_calls`` whose
``arguments`` are the compact JSON of ``input``; ``thinking`` / ``redacted_thinking`` blocks
are left out (the OpenAI wire never sees earlier reasoning).

Boundaries: one per block in prefix order — tools (which count no tokens, as on the OpenAI
wire), system, messages — each with the digest of everything up to it and the prompt tokens
of that prefix by :mod:`.prompt`'s count; the last one's tokens equal ``prompt_tokens``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from gridgate.simulator.anthropic_blocks import cache_ttl, check_block, refuse
from gridgate.simulator.anthropic_request import MessagesRequest
from gridgate.simulator.prompt import BYTES_PER_TOKEN, TOKENS_PER_MESSAGE
from gridgate.simulator.prompt_cache import Boundary
from gridgate.simulator.signature import ThinkingSigner

_USER_BLOCKS = frozenset(("text", "image", "document", "tool_result"))
_ASSISTANT_BLOCKS = frozenset(("text", "tool_use", "thinking", "redacted_thinking"))
_RESULT_BLOCKS = frozenset(("text", "image", "document"))
_THINKING_BLOCKS = ("thinking", "redacted_thinking")
_MESSAGE_FIELDS = frozenset(("role", "content"))
MAX_BREAKPOINTS = 4
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_digest_encode = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class Transcript:
    messages: list[dict[str, Any]]
    """OpenAI-shaped: what :func:`.prompt.read_prompt` and the planner read."""
    boundaries: tuple[Boundary, ...]


@dataclass(frozen=True, slots=True)
class _Message:
    index: int
    role: str
    blocks: list[dict[str, Any]]
    plain: str | None
    """The content when it was a string (``blocks`` then holds it as one text block)."""


def read_transcript(request: MessagesRequest, signer: ThinkingSigner) -> Transcript:
    last = len(request.messages) - 1
    messages = [
        _check_message(message, index, final=index == last)
        for index, message in enumerate(request.messages)
    ]
    _check_turns(messages, thinking=request.thinking)
    walk = _Walk(request.model)
    for position, tool in enumerate(request.tools):
        walk.block(tool, 0, starts=False, ttl=cache_ttl(tool, f"tools.{position}"))
    normalised = _system(request.system, walk)
    for message in messages:
        walk.mark(message.role)
        if message.plain is not None:
            normalised.append({"role": message.role, "content": message.plain})
            walk.block(message.blocks[0], len(message.plain.encode()), starts=True, ttl=None)
        elif message.role == "user":
            normalised += _user(message, walk)
        elif message.blocks:  # an empty final assistant message prefills nothing
            normalised.append(_assistant(message, walk, signer))
    boundaries = walk.boundaries
    if request.cache_ttl is not None and boundaries and boundaries[-1].ttl is None:
        boundaries[-1] = replace(boundaries[-1], ttl=request.cache_ttl)
    found = sum(1 for boundary in boundaries if boundary.ttl is not None)
    if found > MAX_BREAKPOINTS:
        raise refuse(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return Transcript(messages=normalised, boundaries=tuple(boundaries))


class _Walk:
    """Runs over the prompt's blocks in prefix order, counting and hashing as it goes."""

    def __init__(self, model: str) -> None:
        self._hash = hashlib.blake2b(b"gridgate-sim-cache-v1\x00" + model.encode(), digest_size=16)
        self._size = 0
        self._count = 0
        self.boundaries: list[Boundary] = []

    def mark(self, role: str) -> None:
        """A new message starts (two messages never hash like one holding both)."""
        self._hash.update(b"\x1d" + role.encode())

    def block(self, block: dict[str, Any], size: int, *, starts: bool, ttl: str | None) -> None:
        """One block of ``size`` counted bytes; ``starts``: it opens a normalised message."""
        self._count += starts
        self._size += size
        self._hash.update(_digest_encode(_without_cache_control(block)) + b"\x1e")
        tokens = -(-self._size // BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE * self._count
        self.boundaries.append(Boundary(self._hash.copy().digest(), tokens, ttl))


def _without_cache_control(value: Any) -> Any:
    """The block as the cache sees it: a breakpoint marker is not part of the content."""
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(item) for item in value]
    return value


def _check_message(message: object, index: int, *, final: bool) -> _Message:
    path = f"messages.{index}"
    if not isinstance(message, dict):
        raise refuse(f"{path}: Input should be a valid dictionary or object")
    role = message.get("role")
    if role == "system":
        raise refuse(
            'messages: Unexpected role "system". The Messages API accepts a top-level '
            '`system` parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        raise refuse(f"{path}.role: Input should be 'user' or 'assistant'")
    for name in message:
        if name not in _MESSAGE_FIELDS:
            raise refuse(f"{path}.{name}: Extra inputs are not permitted")
    if "content" not in message:
        raise refuse(f"{path}.content: Field required")
    content = message["content"]
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}]
        plain: str | None = content
    elif isinstance(content, list):
        allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
        blocks = [
            check_block(block, f"{path}.content.{k}", allowed) for k, block in enumerate(content)
        ]
        plain = None
    else:
        raise refuse(f"{path}.content: Input should be a valid string or a list of blocks")
    final_assistant = final and role == "assistant"
    if (not blocks or plain == "") and not final_assistant:
        raise refuse(
            f"{path}: all messages must have non-empty content except for the optional final "
            "assistant message"
        )
    if final_assistant and blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"]
        if text != text.rstrip():
            raise refuse(f"{path}: final assistant content cannot end with trailing whitespace")
    return _Message(index=index, role=str(role), blocks=blocks, plain=plain)


def _check_turns(messages: list[_Message], *, thinking: bool) -> None:
    turns: list[list[_Message]] = []
    for message in messages:
        if turns and turns[-1][0].role == message.role:
            turns[-1].append(message)
        else:
            turns.append([message])
    for position, turn in enumerate(turns):
        if turn[0].role == "assistant":
            uses = [b["id"] for m in turn for b in m.blocks if b["type"] == "tool_use"]
            if uses and position + 1 < len(turns):
                answered = _leading_results(turns[position + 1])
                missing = [use for use in uses if use not in answered]
                if missing:
                    raise refuse(
                        f"messages.{turn[-1].index}: `tool_use` ids were found without "
                        f"`tool_result` blocks immediately after: {', '.join(missing)}. Each "
                        "`tool_use` block must have a corresponding `tool_result` block in "
                        "the next message."
                    )
            continue
        before = turns[position - 1] if position else []
        known = {b["id"] for m in before for b in m.blocks if b["type"] == "tool_use"}
        for message in turn:
            for k, block in enumerate(message.blocks):
                if block["type"] == "tool_result" and block["tool_use_id"] not in known:
                    raise refuse(
                        f"messages.{message.index}.content.{k}: unexpected `tool_use_id` found "
                        f"in `tool_result` blocks: {block['tool_use_id']}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous "
                        "message."
                    )
    if thinking and len(turns) >= 2 and _leading_results(turns[-1]):
        first = turns[-2][0]
        kind = first.blocks[0]["type"] if first.blocks else "nothing"
        if kind not in _THINKING_BLOCKS:
            raise refuse(
                f"messages.{first.index}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{kind}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block (preceeding the lastmost "
                "set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
                "blocks from previous turns. To avoid this requirement, disable `thinking`. "
                f"Please consult our documentation at {_THINKING_DOCS}"
            )


def _leading_results(turn: list[_Message]) -> set[str]:
    """The ``tool_use_id`` of the ``tool_result`` blocks a user turn starts with."""
    ids: set[str] = set()
    for message in turn:
        for block in message.blocks:
            if block["type"] != "tool_result":
                return ids
            ids.add(block["tool_use_id"])
    return ids


def _system(system: str | list[dict[str, Any]], walk: _Walk) -> list[dict[str, Any]]:
    if not system:
        return []
    walk.mark("system")
    if isinstance(system, str):
        walk.block({"type": "text", "text": system}, len(system.encode()), starts=True, ttl=None)
        return [{"role": "system", "content": system}]
    parts = []
    for k, block in enumerate(system):
        text = block["text"]
        parts.append({"type": "text", "text": text})
        walk.block(block, len(text.encode()), starts=k == 0, ttl=cache_ttl(block, f"system.{k}"))
    return [{"role": "system", "content": parts}]


def _user(message: _Message, walk: _Walk) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] | None = None
    for k, block in enumerate(message.blocks):
        path = f"messages.{message.index}.content.{k}"
        ttl = cache_ttl(block, path)
        kind = block["type"]
        if kind == "tool_result":
            content, text = _result_content(block, f"{path}.tool_result.content")
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": content})
            walk.block(block, len(text.encode()), starts=True, ttl=ttl)
            continue
        starts = parts is None
        if parts is None:
            parts = []
            out.append({"role": "user", "content": parts})
        part, text = _part(block)
        parts.append(part)
        walk.block(block, len(text.encode()), starts=starts, ttl=ttl)
    return out


def _assistant(message: _Message, walk: _Walk, signer: ThinkingSigner) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for k, block in enumerate(message.blocks):
        path = f"messages.{message.index}.content.{k}"
        kind = block["type"]
        size = 0
        if kind == "text":
            texts.append(block["text"])
            size = len(block["text"].encode())
        elif kind == "tool_use":
            arguments = msgspec.json.encode(block["input"]).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
            size = len(block["name"].encode()) + len(arguments.encode())
        elif kind == "thinking" and not signer.verify(block["thinking"], block["signature"]):
            raise refuse(f"{path}: Invalid `signature` in `thinking` block")
        walk.block(block, size, starts=k == 0, ttl=cache_ttl(block, path))
    normalised: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
    }
    if calls:
        normalised["tool_calls"] = calls
    return normalised


def _result_content(block: dict[str, Any], path: str) -> tuple[str | list[dict[str, Any]], str]:
    """A ``tool_result``'s content for the ``tool`` message, and its counted text."""
    content = block.get("content", "")
    if isinstance(content, str):
        return content, content
    if not isinstance(content, list):
        raise refuse(f"{path}: Input should be a valid string or a list of blocks")
    parts = []
    texts = []
    for k, item in enumerate(content):
        part, text = _part(check_block(item, f"{path}.{k}", _RESULT_BLOCKS))
        parts.append(part)
        texts.append(text)
    return parts, "".join(texts)


def _part(block: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A user content block as an OpenAI content part, and its counted text (images and
    documents count nothing, as on the OpenAI wire)."""
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": block["text"]}, block["text"]
    source = block["source"]
    if kind == "image":
        url = source.get("url", "")
        if source["type"] == "base64":
            url = f"data:{source['media_type']};base64,{source['data']}"
        return {"type": "image_url", "image_url": {"url": url}}, ""
    return {"type": "file", "file": {}}, ""
