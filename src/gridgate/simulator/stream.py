"""The streamed answer: ``chat.completion.chunk`` SSE events, paced and sent.

Event order per choice, as OpenAI sends it::

    delta {"role": "assistant", "content": "", "refusal": null}    (content null for tool calls,
                                                                    the first call's header in it)
    delta {"reasoning_content": " word"}                           (per reasoning token, if any)
    delta {"content": " word"}                                     (per token)
    delta {"tool_calls": [{"index", "id", "type", "function": {"name", "arguments": ""}}]}
    delta {"tool_calls": [{"index", "function": {"arguments": "frag"}}]}   (per fragment)
    delta {} with finish_reason (and vLLM's ``stop_reason``: the stop sequence that matched)
    then once: {"choices": [], "usage": {...}}   (only with stream_options.include_usage)
    data: [DONE]

Every chunk carries id, object, created, model, service_tier and system_fingerprint, and
``"usage": null`` when include_usage was asked. With ``n > 1`` the choices interleave token by
token. The head of every chunk is encoded once per stream.

Pacing: the first chunks (role and first token) leave at ``ttft``; token ``k`` at
``ttft + k / tokens_per_second``. Chunks already due are written together. The pacing and the
sender are wire-neutral: the Anthropic stream (:mod:`.anthropic_stream`) uses them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from gridgate.simulator.completion import Choice, Completion
from gridgate.simulator.faults import Fault, FaultPlan
from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.stall import stall
from gridgate.simulator.stats import Stats

_encode = msgspec.json.Encoder().encode
DONE = b"data: [DONE]\n\n"
GARBAGE = b'data: {"id": "chatcmpl-garbage", "choices": [{"delta": {"content": \n\n'
_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_EARLY = 0.0005
"""Chunks due within this many seconds are sent now rather than after a sleep."""


class ChunkEncoder:
    """Encodes chunks of one stream; the shared head is encoded once."""

    __slots__ = ("_head", "_tail", "_usage_head")

    def __init__(
        self, *, completion_id: str, created: int, model: str, fingerprint: str, include_usage: bool
    ) -> None:
        head = _encode(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
            }
        )
        self._head = b"data: " + head[:-1] + b',"choices":['
        self._tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._usage_head = b"data: " + head[:-1] + b',"choices":[],"usage":'

    def choice(
        self,
        index: int,
        delta: dict[str, Any],
        *,
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
        stop_reason: str | None = None,
    ) -> bytes:
        entry = {
            "index": index,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
        if stop_reason is not None:
            entry["stop_reason"] = stop_reason
        return self._head + _encode(entry) + self._tail

    def content(self, index: int, text: str) -> bytes:
        """A content delta (the hot path: no dict is built)."""
        return b"".join(
            (
                self._head,
                b'{"index":%d,"delta":{"content":' % index,
                _encode(text),
                b'},"logprobs":null,"finish_reason":null}',
                self._tail,
            )
        )

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._usage_head + _encode(usage) + b"}\n\n"


class Chunk(NamedTuple):
    step: int
    """Token position: when the chunk is due (``ttft + step / tokens_per_second``)."""
    data: bytes


def stream_chunks(
    completion: Completion, encoder: ChunkEncoder, *, logprobs: bool, usage: bool
) -> list[Chunk]:
    """Every SSE event of the answer in sending order, ``[DONE]`` last."""
    chunks: list[Chunk] = []
    for choice in completion.choices:
        chunks.extend(_choice_chunks(choice, encoder, logprobs))
    chunks.sort(key=itemgetter(0))  # stable: interleaves choices token by token
    last = chunks[-1].step
    if usage:
        chunks.append(Chunk(last, encoder.usage(completion.usage())))
    chunks.append(Chunk(last, DONE))
    return chunks


def _choice_chunks(choice: Choice, encoder: ChunkEncoder, logprobs: bool) -> list[Chunk]:
    index = choice.index
    out: list[Chunk] = []
    step = 0
    calls = [
        _call_header(position, call.id, call.name)
        for position, call in enumerate(choice.tool_calls)
    ]
    role: dict[str, Any] = {"role": "assistant", "content": None if choice.content is None else ""}
    if calls and not choice.reasoning:
        role["tool_calls"] = [calls[0]]
    role["refusal"] = None
    out.append(Chunk(step, encoder.choice(index, role)))
    for token in choice.reasoning:
        out.append(Chunk(step, encoder.choice(index, {"reasoning_content": token})))
        step += 1
    if logprobs and choice.logprobs is not None:
        for token, entry in zip(choice.content or (), choice.logprobs, strict=True):
            lp = {"content": [entry], "refusal": None}
            out.append(Chunk(step, encoder.choice(index, {"content": token}, logprobs=lp)))
            step += 1
    else:
        for token in choice.content or ():
            out.append(Chunk(step, encoder.content(index, token)))
            step += 1
    for position, call in enumerate(choice.tool_calls):
        if position or choice.reasoning:
            out.append(Chunk(step, encoder.choice(index, {"tool_calls": [calls[position]]})))
        step += 1  # the name is a token
        for fragment in call.fragments:
            delta = {"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}
            out.append(Chunk(step, encoder.choice(index, delta)))
            step += 1
    finish = encoder.choice(
        index, {}, finish_reason=choice.finish_reason, stop_reason=choice.stop_sequence
    )
    out.append(Chunk(max(step - 1, 0), finish))
    return out


def _call_header(position: int, call_id: str, name: str) -> dict[str, Any]:
    return {
        "index": position,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }


@dataclass(frozen=True, slots=True)
class Pace:
    ttft: float
    """Seconds before the first chunk."""
    interval: float
    """Seconds between tokens (0: no wait)."""


def pace_for(options: SimulatorOptions, plan: FaultPlan) -> Pace:
    """The simulator's timing, overridden by ``slow`` faults; none at all when not realtime."""
    ttft_ms = options.ttft_ms if plan.ttft_ms is None else plan.ttft_ms
    rate = options.tokens_per_second if plan.tokens_per_second is None else plan.tokens_per_second
    if not options.realtime:
        return Pace(0.0, 0.0)
    return Pace(ttft_ms / 1000, 1 / rate if rate else 0.0)


class StreamSender:
    """Writes one paced stream; faults (drop, stall, garbage, error event) cut in after
    ``after`` chunks. The wire supplies its own ``garbage`` and ``error_event`` bytes."""

    def __init__(
        self,
        request: web.Request,
        pace: Pace,
        failure: Fault | None,
        stats: Stats,
        *,
        headers: Mapping[str, str] | None = None,
        garbage: bytes = GARBAGE,
        error_event: bytes = b"",
    ) -> None:
        self.request = request
        self.pace = pace
        self.failure = failure
        self.stats = stats
        self.garbage = garbage
        self.error_event = error_event
        self.response = web.StreamResponse(
            status=200, headers={**_HEADERS, **headers} if headers else _HEADERS
        )
        self.started = False

    async def run(self, chunks: list[Chunk]) -> web.StreamResponse:
        """Send the chunks and count the stream: completed, or its client gone."""
        try:
            completed = await self.send(chunks)
        except ConnectionResetError:
            self.stats.client_disconnects += 1
            return self.response
        if completed:
            self.stats.streams_completed += 1
        return self.response

    async def send(self, chunks: list[Chunk]) -> bool:
        """Send the chunks; ``False`` when a fault cut the stream short (``drop``: the
        connection is gone; ``error``: an error event ended it)."""
        failure = self.failure
        cut = -1
        if failure is not None and (
            failure.mode in ("drop", "malformed", "error") or failure.after is not None
        ):
            cut = min(failure.after or 0, len(chunks))
        loop = asyncio.get_running_loop()
        first = loop.time() + self.pace.ttft
        interval = self.pace.interval
        buffer: list[bytes] = []
        for position in range(len(chunks) + 1):
            if position == cut and failure is not None:
                await self._flush(buffer)
                if failure.mode == "drop":
                    self._abort()
                    return False
                if failure.mode == "error":
                    buffer.append(self.error_event)
                    await self._flush(buffer)
                    await self.response.write_eof()
                    return False
                if failure.mode == "malformed":
                    buffer.append(self.garbage)
                else:
                    await stall(self.request, failure.seconds)
                    if position < len(chunks):
                        first = loop.time() - chunks[position].step * interval
            if position == len(chunks):
                break
            chunk = chunks[position]
            due = first + chunk.step * interval
            if due - loop.time() > _EARLY:
                await self._flush(buffer)
                await asyncio.sleep(due - loop.time())
            buffer.append(chunk.data)
        await self._flush(buffer)
        await self.response.write_eof()
        return True

    async def _flush(self, buffer: list[bytes]) -> None:
        if not self.started:
            self.started = True
            self.stats.record_outcome(200)
            self.stats.streams_started += 1
            await self.response.prepare(self.request)
        if buffer:
            data = b"".join(buffer)
            buffer.clear()
            await self.response.write(data)

    def _abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()
