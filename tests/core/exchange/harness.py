"""The exchange, driven in-process: the one place that builds an ``Exchange`` and its
collaborators for the exchange's unit tests.

Real collaborators wherever they are cheap (``Billing`` and its ``LeaseBook``, ``OfferHealth``,
the ``Catalog``); fakes only at the edges:

- ``FakeLedger``: the storage methods the lease book calls (``place_hold``, ``settle_hold``,
  ``release_hold``, ``extend_holds``), in memory, tracking every balance and its lowest point;
- ``UsageSink``: collects the usage records the exchange submits (the usage writer's ``submit``);
- ``FakeAdapter``: one in-process supplier wire (``providers/base.Adapter``) whose behaviour per
  supplier is named: ``Answers``, ``FailsBeforeFirstByte``, ``Rejects``, ``FailsMidStream``,
  ``Stalls``, ``Overruns``, ``SlowFirstToken``. It records every call and how each stream ended;
- ``ManualClock``: time moves only when a test (or a behaviour) says so.

``SpyBilling`` is the real ``Billing`` that also keeps a per-request view of what it held and
what each hold was charged (``holds``): the ledger itself sees leases, which many requests share.

When the exchange's constructor changes, only ``exchange()`` at the end of this module changes.

No test sleeps: what a supplier does waits on events the test sets, and every duration the
exchange measures is read from the manual clock. The exchange's own timers still run on the
event loop's real time (its hedge delay and its deadline are ``asyncio`` timeouts whose length
is read from the clock), so tests that need them keep them to a few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gridgate.core.billing.billing import Billing, Quote
from gridgate.core.billing.leases import Reservation
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.exchange.exchange import Exchange
from gridgate.core.exchange.session import StreamSession
from gridgate.core.exchange.tab import Served
from gridgate.core.health.offer_health import HealthPolicy, OfferHealth
from gridgate.errors import SupplierFailed, SupplierTimeout, UpstreamRejected
from gridgate.money import Price
from gridgate.protocol.openai_chat import ChatRequest, decode_chat_request
from gridgate.protocol.tokens import PromptSize, measure_prompt
from gridgate.providers import openai
from gridgate.providers.base import Chunk, Completion, UpstreamCall, Usage, counted
from gridgate.settings import BillingSettings, HedgingSettings, UpstreamSettings
from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.ledger import HoldResult, SettleResult
from gridgate.storage.records import (
    CapPeriod,
    HoldRecord,
    InstrumentRecord,
    KeyRecord,
    OfferRecord,
    SupplierRecord,
    UsageRecord,
)

INSTRUMENT_ID = "text-test"
ACCOUNT_ID = "acct_1"
KEY = KeyRecord(
    id="key_1", account_id=ACCOUNT_ID, name="k", prefix="gg_x", secret_hash="h", created_us=0
)
USD = 1_000_000_000  # nano-dollars


def instrument(**overrides: Any) -> InstrumentRecord:
    """The instrument under test: no TTFT ceiling nor throughput floor unless given."""
    fields: dict[str, Any] = {
        "id": INSTRUMENT_ID,
        "display_name": "Text Test",
        "quality_floor": 10.0,
        "ttft_ceiling_ms": None,
        "throughput_floor_tps": None,
        "context_floor": 1_000,
        "max_output_floor": 256,
        "context_length": 200_000,
        "max_input_tokens": 100_000,
        "max_completion_tokens": 8_192,
    }
    fields.update(overrides)
    return InstrumentRecord(**fields)


@dataclass(frozen=True)
class Offer:
    """One supplier's offer of the instrument (prices in nano-dollars per 1M tokens)."""

    supplier: str
    input_per_m: int
    output_per_m: int
    max_output: int = 4_096

    @property
    def id(self) -> str:
        return f"{self.supplier}/{INSTRUMENT_ID}/model-{self.supplier}"

    @property
    def model(self) -> str:
        return f"model-{self.supplier}"

    @property
    def price(self) -> Price:
        return Price(self.input_per_m, self.output_per_m)


# -- time ---------------------------------------------------------------------------------------
class ManualClock:
    """Wall and monotonic time that move only when told to."""

    EPOCH_US = 1_800_000_000_000_000  # the wall clock when the monotonic one reads 0

    def __init__(self) -> None:
        self.seconds = 0.0

    def now_us(self) -> int:
        return self.EPOCH_US + int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


# -- storage ------------------------------------------------------------------------------------
class FakeLedger:
    """The ledger methods the lease book calls, in memory: balances, holds, and the lowest
    balance each account ever had."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.lowest: dict[str, int] = {}
        self.holds: dict[str, HoldRecord] = {}

    def fund(self, account_id: str, nanos: int) -> None:
        self._set(account_id, self.balances.get(account_id, 0) + nanos)

    def balance(self, account_id: str = ACCOUNT_ID) -> int:
        return self.balances.get(account_id, 0)

    def open_holds(self) -> list[HoldRecord]:
        return [h for h in self.holds.values() if h.status == "held"]

    def charged(self, account_id: str = ACCOUNT_ID) -> int:
        return sum(
            h.charged or 0
            for h in self.holds.values()
            if h.account_id == account_id and h.status != "held"
        )

    def _set(self, account_id: str, balance: int) -> None:
        self.balances[account_id] = balance
        self.lowest[account_id] = min(self.lowest.get(account_id, balance), balance)

    async def place_hold(
        self,
        *,
        hold_id: str,
        account_id: str,
        key_id: str | None,
        amount: int,
        expires_us: int,
        now_us: int,
        windows: Mapping[CapPeriod, int] | None = None,
    ) -> HoldResult:
        """The balance only: these tests set no spend caps (``tests/storage/test_caps.py``)."""
        balance = self.balances.get(account_id)
        if balance is None:
            return HoldResult(hold=None, refused="account_missing", balance=0)
        if balance < amount:
            return HoldResult(hold=None, refused="insufficient_balance", balance=balance)
        self._set(account_id, balance - amount)
        hold = HoldRecord(
            id=hold_id,
            account_id=account_id,
            key_id=key_id,
            amount=amount,
            charged=None,
            status="held",
            created_us=now_us,
            expires_us=expires_us,
        )
        self.holds[hold_id] = hold
        return HoldResult(hold=hold, refused=None, balance=balance - amount)

    async def settle_hold(
        self, hold_id: str, charge: int, *, now_us: int, capped: bool = False
    ) -> SettleResult:
        return self._close(hold_id, charge, "settled")

    async def release_hold(
        self, hold_id: str, *, now_us: int, capped: bool = False
    ) -> SettleResult:
        return self._close(hold_id, 0, "released")

    async def extend_holds(self, hold_ids: Sequence[str], expires_us: int) -> int:
        extended = 0
        for hold_id in hold_ids:
            hold = self.holds.get(hold_id)
            if hold is not None and hold.status == "held":
                self.holds[hold_id] = _replace(hold, expires_us=expires_us)
                extended += 1
        return extended

    def _close(self, hold_id: str, charge: int, status: str) -> SettleResult:
        hold = self.holds.get(hold_id)
        if hold is None:
            raise NotFoundInStore(hold_id)
        if hold.status != "held":
            charged = hold.charged or 0
            return SettleResult(
                hold_id=hold_id,
                charged=charged,
                released=hold.amount - charged,
                already_settled=True,
            )
        charged = min(max(charge, 0), hold.amount)
        self._set(hold.account_id, self.balance(hold.account_id) + hold.amount - charged)
        self.holds[hold_id] = _replace(hold, charged=charged, status=status)
        return SettleResult(
            hold_id=hold_id, charged=charged, released=hold.amount - charged, already_settled=False
        )


def _replace(hold: HoldRecord, **changes: Any) -> HoldRecord:
    return msgspec.structs.replace(hold, **changes)


class UsageSink:
    """The usage writer's ``submit``: every record the exchange made, in order (a stream's
    checkpoints included; the last one of a request id is what the database keeps)."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def submit(self, record: UsageRecord) -> None:
        self.records.append(record)

    def of(self, request_id: str) -> list[UsageRecord]:
        return [r for r in self.records if r.request_id == request_id]


# -- billing, seen per request ---------------------------------------------------------------------
@dataclass
class HoldView:
    """One request's reservation: its worst case, the max output it covers, and its charge
    (None while it is open; 0 when it was released)."""

    amount: int
    max_output_tokens: int
    charged: int | None = None

    @property
    def open(self) -> bool:
        return self.charged is None


class SpyBilling(Billing):
    """The real billing, keeping what each reservation was and what it was charged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holds: list[HoldView] = []
        self.refused = 0  # reservations refused for the balance (402)
        self._views: list[tuple[Reservation, HoldView]] = []

    async def reserve(
        self,
        *,
        account_id: str,
        key_id: str,
        quote: Quote,
        requested: int | None,
        capped: bool = False,
    ) -> tuple[Reservation, Quote]:
        try:
            reservation, granted = await super().reserve(
                account_id=account_id,
                key_id=key_id,
                quote=quote,
                requested=requested,
                capped=capped,
            )
        except Exception:
            self.refused += 1
            raise
        view = HoldView(reservation.amount, granted.max_output_tokens)
        self.holds.append(view)
        self._views.append((reservation, view))
        return reservation, granted

    def settle(self, reservation: Reservation, cost: int) -> int:
        charged = super().settle(reservation, cost)
        self._closed(reservation, charged)
        return charged

    def release(self, reservation: Reservation) -> None:
        super().release(reservation)
        self._closed(reservation, 0)

    def _closed(self, reservation: Reservation, charged: int) -> None:
        for held, view in self._views:
            if held is reservation and view.charged is None:
                view.charged = charged


# -- the supplier ---------------------------------------------------------------------------------
@dataclass
class CallLog:
    """One call the exchange made to the fake adapter."""

    call: UpstreamCall
    stream: bool
    started: bool = False  # the request reached the supplier (a stream's first read)
    batches: int = 0  # batches the supplier sent
    ended: str | None = None  # finished | failed | closed (by the exchange) | cancelled

    @property
    def supplier(self) -> str:
        return self.call.supplier.name


def _event(model: str, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_800_000_000,
        "model": model,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def role_chunk(model: str) -> Chunk:
    delta = {"role": "assistant", "content": ""}
    return Chunk(raw=_event(model, [{"index": 0, "delta": delta, "finish_reason": None}]))


def text_chunk(model: str, text: str) -> Chunk:
    raw = _event(model, [{"index": 0, "delta": {"content": text}, "finish_reason": None}])
    return Chunk(raw=raw, output_bytes=len(text.encode()), deltas=1)


def finish_chunk(model: str, reason: str) -> Chunk:
    raw = _event(model, [{"index": 0, "delta": {}, "finish_reason": reason}])
    return Chunk(raw=raw, finish_reason=reason)


def usage_chunk(model: str, usage: Usage) -> Chunk:
    counts = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    return Chunk(raw=_event(model, [], usage=counts), usage=usage, usage_only=True)


DONE = Chunk(raw=b"data: [DONE]\n\n", done=True)


def completion(model: str, text: str, usage: Usage, finish: str) -> Completion:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
    }
    return Completion(body=json.dumps(body).encode(), usage=usage, model=model)


class Behaviour:
    """What one supplier does with a call. ``complete`` answers a plain call; ``batches``
    yields a stream's batches (one per read, as ``providers/relay.py`` does)."""

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        raise NotImplementedError

    def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        raise NotImplementedError


@dataclass
class Answers(Behaviour):
    """A well-behaved supplier: ``tokens`` content chunks of ``text`` (4 bytes: one token by
    gridgate's count), stopping at the max output tokens it is told (finish ``length``), then
    its usage (unless ``report_usage`` is off: then, like the OpenAI adapter, the answer is
    metered from its text) and ``[DONE]``. ``seconds_per_batch``: the clock moves this much
    before every batch after the first (a slow generation, as the exchange's clock sees it)."""

    tokens: int = 5
    text: str = "tok "
    prompt_tokens: int = 11  # the supplier's count of the prompt
    report_usage: bool = True
    seconds_per_batch: float = 0.0

    def _produced(self, call: UpstreamCall) -> tuple[int, str]:
        produced = min(self.tokens, call.max_output_tokens)
        return produced, "length" if produced < self.tokens else "stop"

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        produced, finish = self._produced(log.call)
        text = self.text * produced
        usage = Usage(prompt_tokens=self.prompt_tokens, completion_tokens=produced)
        if not self.report_usage:
            usage = counted(
                None, prompt_estimate=log.call.prompt_estimate, out_bytes=len(text.encode())
            )
        return completion(log.call.offer.model, text, usage, finish)

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        model = log.call.offer.model
        produced, finish = self._produced(log.call)
        chunks = [role_chunk(model)]
        chunks += [text_chunk(model, self.text) for _ in range(produced)]
        chunks.append(finish_chunk(model, finish))
        if self.report_usage:
            chunks.append(usage_chunk(model, Usage(self.prompt_tokens, produced)))
        chunks.append(DONE)
        for i, chunk in enumerate(chunks):
            if i and self.seconds_per_batch:
                clock.advance(self.seconds_per_batch)
            yield [chunk]


@dataclass
class FailsBeforeFirstByte(Behaviour):
    """The supplier fails before sending anything (a 5xx, a refused connection): the adapter
    raises ``SupplierFailed`` (``SupplierTimeout`` for a 408/504) on the call or the first read."""

    message: str = "the supplier failed (HTTP 500)"
    error: type[SupplierFailed] = SupplierFailed

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        raise self.error(self.message)

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        raise self.error(self.message)
        yield []  # pragma: no cover  (an async generator that fails on its first read)


@dataclass
class Rejects(Behaviour):
    """The supplier refuses the request as the caller's fault (a 400 about a parameter): the
    adapter raises ``UpstreamRejected`` with the upstream's status."""

    message: str = "temperature: out of range"
    status: int = 400

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        raise UpstreamRejected(self.message, status=self.status)

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        raise UpstreamRejected(self.message, status=self.status)
        yield []  # pragma: no cover


@dataclass
class FailsMidStream(Behaviour):
    """The stream starts (a role chunk, then ``after`` content chunks) and the connection
    drops: ``SupplierFailed`` on the next read, as the relay raises it."""

    after: int = 3
    text: str = "tok "
    message: str = "the supplier connection failed mid-answer"

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        raise SupplierFailed("the supplier connection failed")

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        model = log.call.offer.model
        yield [role_chunk(model)]
        for _ in range(self.after):
            yield [text_chunk(model, self.text)]
        raise SupplierFailed(self.message)


@dataclass
class Stalls(Behaviour):
    """The supplier goes silent: before its first byte (``after`` None), or mid-answer after a
    role chunk and ``after`` content chunks. When the test opens ``gate``, the adapter's own
    timeout fires (the first-byte or the idle timeout): ``SupplierTimeout``, as
    ``providers/relay.py`` raises it."""

    after: int | None = None
    text: str = "tok "
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    silent: asyncio.Event = field(default_factory=asyncio.Event)  # set once it has gone silent

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        self.silent.set()
        await self.gate.wait()
        raise SupplierTimeout("the supplier did not answer in time")

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        if self.after is None:
            self.silent.set()
            await self.gate.wait()
            raise SupplierTimeout("the supplier did not answer in time")
        model = log.call.offer.model
        yield [role_chunk(model)]
        for _ in range(self.after):
            yield [text_chunk(model, self.text)]
        self.silent.set()  # everything before was read by the exchange
        await self.gate.wait()
        raise SupplierTimeout("the supplier went silent mid-answer")


@dataclass
class Overruns(Behaviour):
    """A supplier that ignores the max output tokens it was told and keeps producing: a stream
    of ``tokens`` content chunks, or a whole answer whose usage counts ``tokens``."""

    tokens: int = 200
    text: str = "tok "
    prompt_tokens: int = 11

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        usage = Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.tokens)
        return completion(log.call.offer.model, self.text * self.tokens, usage, "stop")

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        model = log.call.offer.model
        yield [role_chunk(model)]
        for _ in range(self.tokens):
            yield [text_chunk(model, self.text)]
        yield [finish_chunk(model, "stop")]
        yield [usage_chunk(model, Usage(self.prompt_tokens, self.tokens))]
        yield [DONE]


@dataclass
class SlowFirstToken(Behaviour):
    """The supplier answers as ``then`` does, but only once the test opens ``gate`` (the test
    moves the clock by how late the first token is before opening it)."""

    then: Answers = field(default_factory=Answers)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def complete(self, log: CallLog, clock: ManualClock) -> Completion:
        await self.gate.wait()
        return await self.then.complete(log, clock)

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        await self.gate.wait()
        async for batch in self.then.batches(log, clock):
            yield batch


class FakeAdapter:
    """One supplier wire, in process: each supplier behaves as scripted (``behave``)."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.behaviours: dict[str, Behaviour] = {}
        self.calls: list[CallLog] = []
        self._started: dict[str, asyncio.Event] = {}

    def behave(self, supplier: str, behaviour: Behaviour) -> None:
        self.behaviours[supplier] = behaviour

    def calls_to(self, supplier: str) -> list[CallLog]:
        return [c for c in self.calls if c.supplier == supplier]

    @property
    def suppliers_called(self) -> list[str]:
        return [c.supplier for c in self.calls]

    async def reached(self, supplier: str) -> None:
        """Wait until a call has reached ``supplier``."""
        await self._started_event(supplier).wait()

    def _started_event(self, supplier: str) -> asyncio.Event:
        return self._started.setdefault(supplier, asyncio.Event())

    def _begin(self, log: CallLog) -> None:
        log.started = True
        self._started_event(log.supplier).set()

    # -- the Adapter protocol --
    async def complete(self, call: UpstreamCall) -> Completion:
        log = CallLog(call, stream=False)
        self.calls.append(log)
        self._begin(log)
        try:
            answer = await self.behaviours[log.supplier].complete(log, self._clock)
        except asyncio.CancelledError:
            log.ended = "cancelled"
            raise
        except Exception:
            log.ended = "failed"
            raise
        log.ended = "finished"
        return answer

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        log = CallLog(call, stream=True)
        self.calls.append(log)
        return self._stream(log)

    async def _stream(self, log: CallLog) -> AsyncIterator[list[Chunk]]:
        self._begin(log)  # nothing is sent before the first read, as with the real relay
        try:
            async for batch in self.behaviours[log.supplier].batches(log, self._clock):
                log.batches += 1
                yield batch
        except GeneratorExit:
            log.ended = "closed"
            raise
        except asyncio.CancelledError:
            log.ended = "cancelled"
            raise
        except Exception:
            log.ended = "failed"
            raise
        log.ended = "finished"


# -- the harness -----------------------------------------------------------------------------------
@dataclass
class Harness:
    exchange: Exchange
    clock: ManualClock
    adapter: FakeAdapter
    ledger: FakeLedger
    billing: SpyBilling
    usage: UsageSink
    health: OfferHealth | None
    offers: dict[str, Offer]
    funded: int
    key: KeyRecord = KEY

    async def complete(
        self, request: ChatRequest, request_id: str = "req-1"
    ) -> tuple[Completion, Served]:
        return await self.exchange.complete(self.exchange.open_tab(self.key, request, request_id))

    async def open_stream(self, request: ChatRequest, request_id: str = "req-1") -> StreamSession:
        tab = self.exchange.open_tab(self.key, request, request_id)
        return await self.exchange.open_stream(tab)

    async def serve(self, request: ChatRequest, request_id: str = "req-1") -> Any:
        """Serve ``request`` as the server would: a plain answer (its ``Completion``), or a
        stream relayed to its end (its pieces)."""
        if request.stream is True:
            return await relay(await self.open_stream(request, request_id))
        answer, _ = await self.complete(request, request_id)
        return answer

    async def close_leases(self) -> None:
        """Close every lease (as at shutdown): the ledger then holds each request's charge."""
        await self.billing.leases.close()

    def record(self, request_id: str = "req-1") -> UsageRecord:
        """The one usage record of ``request_id`` (fails if there are more or none)."""
        [record] = self.usage.of(request_id)
        return record


async def relay(session: StreamSession) -> list[bytes]:
    """Every piece a stream session relays, to its end."""
    return [piece async for piece in session.chunks()]


def events(pieces: Sequence[bytes]) -> list[Any]:
    """The ``data:`` payloads of relayed pieces: decoded JSON, or the string ``[DONE]``."""
    out: list[Any] = []
    for piece in pieces:
        for block in piece.split(b"\n\n"):
            if not block.startswith(b"data: "):
                continue
            data = block[len(b"data: ") :]
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def content(pieces: Sequence[bytes]) -> list[str]:
    """The content deltas relayed, in order."""
    texts = []
    for event in events(pieces):
        if isinstance(event, dict):
            for choice in event.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    texts.append(text)
    return texts


def chat(*, max_tokens: int | None = 50, stream: bool = False, **extra: Any) -> ChatRequest:
    body: dict[str, Any] = {
        "model": INSTRUMENT_ID,
        "messages": [{"role": "user", "content": "Say something short, please."}],
        **extra,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    return decode_chat_request(json.dumps(body).encode())


def prompt(request: ChatRequest) -> PromptSize:
    """gridgate's measure of the request's prompt (its upper bound is what a hold covers)."""
    return measure_prompt(request)


def worst_case(offer: Offer, request: ChatRequest, max_output_tokens: int) -> int:
    """What a hold of ``request`` at ``offer`` for ``max_output_tokens`` per choice is."""
    return offer.price.cost(prompt(request).upper_bound, request.n_choices * max_output_tokens)


@asynccontextmanager
async def exchange(
    *offers: Offer,
    behaviours: dict[str, Behaviour] | None = None,
    instrument_record: InstrumentRecord | None = None,
    balance: int = 5 * USD,
    hedging: HedgingSettings | None = None,
    health: bool = True,
    deadline_seconds: float = 120.0,
    max_attempts: int = 3,
    checkpoint_seconds: float = 3_600.0,
    min_output_tokens: int = 256,
) -> AsyncIterator[Harness]:
    """An exchange serving ``offers`` of one instrument, an account funded with ``balance``
    nano-dollars, and each supplier behaving as ``behaviours`` says (``Answers()`` if not).
    Hedging, health and the other knobs are as in production unless given. On leaving, every
    gate is opened and every lease closed."""
    clock = ManualClock()
    record = instrument_record or instrument()
    catalog = Catalog.build(
        [record],
        [
            SupplierRecord(name=o.supplier, wire="openai", base_url=f"http://{o.supplier}.invalid")
            for o in offers
        ],
        [
            OfferRecord(
                id=o.id,
                supplier=o.supplier,
                instrument=record.id,
                model=o.model,
                input_per_m=o.input_per_m,
                output_per_m=o.output_per_m,
                quality=40.0,
                context=200_000,
                max_output=o.max_output,
            )
            for o in offers
        ],
    )
    ledger = FakeLedger()
    ledger.fund(ACCOUNT_ID, balance)
    billing = SpyBilling(ledger, clock, BillingSettings(min_output_tokens=min_output_tokens))
    adapter = FakeAdapter(clock)
    for o in offers:
        adapter.behave(o.supplier, (behaviours or {}).get(o.supplier, Answers()))
    policy = HealthPolicy()
    offer_health = OfferHealth(policy, clock) if health else None
    usage = UsageSink()
    built = Exchange(
        catalog=lambda: catalog,
        billing=billing,
        adapters={"openai": adapter},
        usage=usage,  # type: ignore[arg-type]  # the writer's submit() is all it uses
        clock=clock,
        upstream=UpstreamSettings(max_attempts=max_attempts, deadline_seconds=deadline_seconds),
        checkpoint_seconds=checkpoint_seconds,
        health=offer_health,
        hedging=hedging if hedging is not None else HedgingSettings(),
        dropped_fields={"openai": openai.dropped_fields},
        guard=None,
    )
    harness = Harness(
        exchange=built,
        clock=clock,
        adapter=adapter,
        ledger=ledger,
        billing=billing,
        usage=usage,
        health=offer_health,
        offers={o.supplier: o for o in offers},
        funded=balance,
    )
    try:
        yield harness
    finally:
        for behaviour in adapter.behaviours.values():
            gate = getattr(behaviour, "gate", None)
            if gate is not None:
                gate.set()
        await harness.close_leases()
