"""An open stream whose first chunk has arrived: relay it, meter it, settle its tab.

The session holds the request's ``Tab`` (not the exchange): everything it does at the end — tell
offer health what the offer delivered, judge the delivery against the spec, settle the charge,
give back what the request held — is the tab's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.exchange.failover import aclose
from gridgate.core.exchange.tab import Ending, Served, Tab
from gridgate.core.health.offer_health import Delivery, Outcome
from gridgate.errors import SupplierFailed, http_status
from gridgate.money import format_usd_fixed
from gridgate.protocol.openai_stream import DONE_EVENT, error_event, length_cutoff, usage_event
from gridgate.protocol.usage_cost import event_with_cost
from gridgate.providers.base import Chunk, Usage, counted


class StreamSession:
    """An open stream whose first chunk has arrived. Iterate ``chunks()`` to relay it; the
    iterator settles in its ``finally`` whatever happens (completion, upstream failure, the
    client going away, cancellation)."""

    def __init__(
        self,
        tab: Tab,
        offer: PricedOffer,
        upstream: AsyncIterator[list[Chunk]],
        first: list[Chunk],
        dispatched: float,
    ) -> None:
        self._tab = tab
        self._clock = clock = tab.desk.clock
        self._offer = offer
        self._upstream = upstream
        self._first = first
        self._include_usage = tab.request.include_usage
        self._ttft_us = tab.elapsed_us()
        self._first_at = clock.monotonic()
        self._supplier_ttft_s = self._first_at - dispatched  # this offer's own, for its health
        self._usage: Usage | None = None
        self._prompt_reported: int | None = None  # the supplier's prompt count, told early
        self._output_bytes = 0
        self._deltas = 0  # chunks of generated text relayed: a lower bound on tokens; 0: the
        # caller has had no content (text, reasoning, tool calls) yet
        assert tab.quote is not None
        self._token_cap = tab.quote.max_output_tokens * tab.plan.n
        self._last_raw = b""
        self._held = b""  # the last chunk with the answer's usage, sent once its cost is known
        self._next_checkpoint = clock.monotonic() + tab.desk.checkpoint_seconds
        self.served = Served(offer.supplier.name, offer.offer.id, offer.offer.model)
        self.prompt_estimate = tab.plan.prompt_charge  # what a prompt nobody counted costs
        self.ended = False  # set just before the last piece is yielded
        self._finished = False  # settled (by the relay's end, a failure, or close())

    async def close(self) -> None:
        """Settle a session that will not be relayed (or not to its end) as cancelled: what
        it delivered is charged, its hold and rate-limit pass are given back. A no-op once it
        has settled."""
        if not self._finished:
            await self._finish("cancelled", 499, None)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The bytes to relay, one piece per upstream read. The charge is settled before the
        terminating event is sent, so a caller that has seen the end of the stream is done."""
        settled = False
        try:
            batch = self._first
            while True:
                out: list[bytes] = []
                for chunk in batch:
                    if chunk.usage is not None:
                        self._usage = chunk.usage
                    if chunk.prompt_tokens is not None:
                        self._prompt_reported = chunk.prompt_tokens
                    if chunk.deltas:
                        self._deltas += chunk.deltas
                        if self._deltas > self._token_cap:
                            # the supplier is running past the max tokens it was told (what
                            # the money covers): end the answer here, cleanly, for length
                            settled = await self._finish("cut_at_hold", 200, None)
                            out.append(self._held)
                            out.append(self._cutoff())
                            self.ended = True
                            yield b"".join(out)
                            return
                        self._last_raw = chunk.raw
                    self._output_bytes += chunk.output_bytes
                    if chunk.done:
                        settled = await self._finish("ok", 200, None)
                        out.append(self._usage_event())
                        out.append(chunk.raw)
                        self.ended = True
                        yield b"".join(out)
                        return
                    if chunk.raw and (self._include_usage or not chunk.usage_only):
                        if self._held:
                            out.append(self._held)  # more came after it: not the last usage
                            self._held = b""
                        if (
                            self._include_usage
                            and chunk.usage is not None
                            and (chunk.usage_only or chunk.finish_reason is not None)
                        ):
                            self._held = chunk.raw  # the answer's usage, for its cost
                        else:
                            out.append(chunk.raw)
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                now = self._clock.monotonic()
                if now >= self._next_checkpoint:
                    self._next_checkpoint = now + self._tab.desk.checkpoint_seconds
                    self._tab.checkpoint(
                        self._offer,
                        self._metered(),
                        ttft_us=self._ttft_us,
                        delivered=self._deltas > 0,
                    )
                try:
                    batch = await anext(self._upstream)
                except StopAsyncIteration:
                    settled = await self._finish("ok", 200, None)
                    self.ended = True
                    yield self._usage_event() + DONE_EVENT
                    return
                except SupplierFailed as exc:
                    settled = await self._finish("stream_error", http_status(exc), exc.message)
                    self.ended = True
                    held = event_with_cost(self._held, self._cost()) if self._held else b""
                    yield held + error_event(exc)
                    return
        finally:
            if not settled:
                await self._finish("cancelled", 499, None)

    def _cutoff(self) -> bytes:
        """The closing events of an answer cut at its hold (with the usage charged, when the
        caller asked for usage)."""
        n = self._tab.plan.n
        if not self._include_usage:
            return length_cutoff(self._last_raw, n)
        usage = self._metered()
        return length_cutoff(
            self._last_raw, n, usage.prompt_tokens, usage.completion_tokens, self._cost()
        )

    def _usage_event(self) -> bytes:
        """The last usage chunk of a settled answer, when the caller asked for usage: the
        supplier's, held back until now, with ``usage.cost`` (what was charged); gridgate's
        own (what was metered) when the supplier sent none."""
        if not self._include_usage:
            return b""
        if self._held:
            return event_with_cost(self._held, self._cost())
        usage = self._metered()
        return usage_event(
            self._last_raw, usage.prompt_tokens, usage.completion_tokens, self._cost()
        )

    def _cost(self) -> str:
        return format_usd_fixed(self._tab.charged)

    def _metered(self) -> Usage:
        """The upstream's usage when it counted the answer, else gridgate's own count of what
        was relayed (``counted``): the prompt at the supplier's count when it told one early
        (Anthropic's ``message_start``), else at its text alone (never more than was sent)."""
        prompt = self._prompt_reported
        return counted(
            self._usage,
            prompt_estimate=prompt if prompt is not None else self._tab.plan.prompt_charge,
            out_bytes=self._output_bytes,
        )

    async def _finish(self, outcome: str, status: int, error: str | None) -> bool:
        if self._finished:
            return True
        self._finished = True
        await aclose(self._upstream)
        usage = self._metered()
        tab = self._tab
        generation_s = self._clock.monotonic() - self._first_at
        kind: Outcome = (
            "cancelled"
            if outcome == "cancelled"
            else (
                "ok"
                if outcome in ("ok", "cut_at_hold")
                else ("timeout" if status == 504 else "error")
            )
        )
        tokens = usage.completion_tokens
        tab.observe(self._offer, Delivery(kind, self._supplier_ttft_s, tokens, generation_s))
        judged = (
            tab.judge(Delivery(kind, self._ttft_us / 1_000_000, tokens, generation_s))
            if kind != "cancelled"
            else None
        )
        ending = Ending(
            outcome,
            status,
            error=error,
            ttft_us=self._ttft_us,
            generation_us=int(generation_s * 1_000_000),
            judged=judged,
        )
        try:
            # a whole answer is billed as metered; one cut short only for content relayed
            delivered = outcome in ("ok", "cut_at_hold") or self._deltas > 0
            tab.settle(self._offer, usage, ending, delivered)
        finally:
            await tab.finish()
        return True
