"""Fault injection: make a request fail the ways real suppliers fail.

Two sources, combined per request:

**Directive in the last user message** (passes through a gateway unchanged)::

    [[sim:KEY=VALUE,KEY=VALUE,...]]

``mode=NAME`` picks the fault; a bare ``NAME`` item is shorthand for ``mode=NAME``. Values
end at the next ``,`` or ``]``. Several directives in one message all apply. A malformed
directive is answered with 400 naming it. Examples::

    [[sim:mode=status,status=503]]          answer 503 with the wire's error body
    [[sim:mode=status,status=429,retry_after=2]]
    [[sim:hang]]                            never answer (until the client goes away)
    [[sim:mode=hang,seconds=1.5]]           answer normally after 1.5 s
    [[sim:mode=hang,after=3]]               stream: send 3 chunks, then stall
    [[sim:mode=drop,after=3]]               stream: send 3 chunks, then cut the connection
    [[sim:drop]]                            plain: cut the connection without answering
    [[sim:mode=malformed,after=2]]          stream: a garbage ``data:`` line after 2 chunks
    [[sim:malformed]]                       plain: 200 with a body that is not JSON
    [[sim:mode=slow,ttft_ms=800,tokens_per_second=5]]
    [[sim:no_usage]]                        no ``usage`` (plain) / no usage chunk (stream);
                                            the Anthropic wire reports every count as 0
    [[sim:mode=overrun,length=500]]         ignore max tokens: answer 500 tokens regardless
    [[sim:mode=error,after=4,status=529]]   stream: 4 chunks, then an error event, then the end
                                            (plain: the same as ``mode=status``)

**Standing faults** through the control endpoint: ``POST /sim/faults`` with the same keys as
JSON (``{"mode": "status", "status": 500, "count": 2}``) plus ``count`` (how many requests it
hits; default unlimited) and ``model`` (only requests for that model). ``GET /sim/faults``
lists them, ``DELETE /sim/faults`` clears them.

Keys: ``mode`` (``status`` | ``hang`` | ``drop`` | ``malformed`` | ``slow`` | ``no_usage`` |
``overrun`` | ``error``), ``status`` (400–599, default 500), ``message``, ``code`` (error body
fields; on the Anthropic wire ``code`` replaces the error ``type``), ``retry_after`` (seconds,
sent as ``retry-after``; default 1 for 429), ``seconds`` (``hang``), ``after`` (chunks — SSE
events — before ``drop`` / ``malformed`` / ``hang`` / ``error`` in a stream; default 0 for all
but ``hang``), ``ttft_ms``, ``tokens_per_second`` (alias ``tps``) for ``slow``, ``length``
for ``overrun``.

The mid-stream ``error`` is what a supplier sends when it fails after the first byte: on the
OpenAI wire ``data: {"error": {...}}`` (OpenAI's SDK raises on it), on the Responses wire
``event: error`` with ``{"type": "error", "code", "message", "param", "sequence_number"}``
(:mod:`.responses`), on the Anthropic wire
``event: error`` with ``{"type": "error", "error": {"type": "overloaded_error", ...}}`` (the
type for ``status``: 529 → ``overloaded_error``, 500 → ``api_error``). No ``[DONE]`` /
``message_stop`` follows.

Of several faults on one request the first failure (``status``, ``hang``, ``drop``,
``malformed``, ``error``) wins, directives before standing faults; ``slow`` and ``no_usage``
add up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import msgspec

from gridgate.simulator.errors import SimulatorError

FaultMode = Literal["status", "hang", "drop", "malformed", "slow", "no_usage", "overrun", "error"]
_MODES = frozenset(("status", "hang", "drop", "malformed", "slow", "no_usage", "overrun", "error"))
_FAILURES = frozenset(("status", "hang", "drop", "malformed", "error"))
_ALIASES = {"tps": "tokens_per_second"}
_DIRECTIVE = re.compile(r"\[\[sim:([^\]]*)\]\]")
_MARKER = "[[sim:"

_NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mode: FaultMode
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] = 500
    message: str | None = None
    code: str | None = None
    retry_after: _NonNegative | None = None
    seconds: _NonNegative | None = None
    after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ttft_ms: _NonNegative | None = None
    tokens_per_second: _NonNegative | None = None
    length: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """``overrun``: answer this many tokens whatever max tokens the request set."""
    count: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Standing faults only: how many requests it hits (``None``: all)."""
    model: str | None = None
    """Standing faults only: hit only requests for this model."""

    def status_headers(self) -> dict[str, str]:
        """Headers of the error answer: ``retry-after`` when set, 1 s by default on a 429."""
        retry_after = self.retry_after
        if retry_after is None and self.status == 429:
            retry_after = 1
        return {} if retry_after is None else {"retry-after": f"{retry_after:g}"}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the faults of one request add up to."""

    failure: Fault | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    no_usage: bool = False
    overrun: int | None = None  # answer this many tokens, ignoring the request's max tokens


NO_FAULTS = FaultPlan()


def plan_faults(text: str, board: FaultBoard, model: str, *, realtime: bool) -> FaultPlan:
    """The faults hitting one request: directives in ``text`` (its last user message), then
    the standing faults for ``model``. Not realtime: a ``hang`` with ``seconds`` does not wait."""
    faults = parse_directives(text)
    standing = board.take(model)
    if not faults and not standing:
        return NO_FAULTS
    plan = combine([*faults, *standing])
    failure = plan.failure
    if failure is not None and failure.seconds and not realtime:
        plan = replace(plan, failure=msgspec.structs.replace(failure, seconds=0.0))
    return plan


def parse_directives(text: str) -> list[Fault]:
    """The faults named by ``[[sim:...]]`` directives in ``text`` (400 on a bad one)."""
    if _MARKER not in text:
        return []
    faults = []
    for match in _DIRECTIVE.finditer(text):
        fields: dict[str, Any] = {}
        for item in match.group(1).split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                key, value = "mode", key
            fields[_ALIASES.get(key, key)] = value.strip()
        faults.append(_convert(fields, source=match.group(0)))
    return faults


def parse_standing(raw: bytes) -> Fault:
    """A standing fault from the JSON body of ``POST /sim/faults`` (400 on a bad one)."""
    try:
        fields = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SimulatorError(400, f"fault body is not JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise SimulatorError(400, "fault body must be a JSON object")
    for alias, name in _ALIASES.items():
        if alias in fields:
            fields[name] = fields.pop(alias)
    return _convert(fields, source="POST /sim/faults", strict=True)


def _convert(fields: dict[str, Any], *, source: str, strict: bool = False) -> Fault:
    if fields.get("mode") not in _MODES:
        raise SimulatorError(
            400, f"bad simulator fault {source}: mode must be one of {sorted(_MODES)}", param="mode"
        )
    try:
        return msgspec.convert(fields, Fault, strict=strict)
    except msgspec.ValidationError as exc:
        raise SimulatorError(400, f"bad simulator fault {source}: {exc}") from exc


def combine(faults: Iterable[Fault]) -> FaultPlan:
    failure: Fault | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    no_usage = False
    overrun: int | None = None
    for fault in faults:
        if fault.mode in _FAILURES:
            failure = failure or fault
        elif fault.mode == "slow":
            ttft_ms = fault.ttft_ms if fault.ttft_ms is not None else ttft_ms
            if fault.tokens_per_second is not None:
                tokens_per_second = fault.tokens_per_second
        elif fault.mode == "no_usage":
            no_usage = True
        elif fault.mode == "overrun":
            overrun = fault.length or 1_000
    if (
        failure is None
        and ttft_ms is None
        and tokens_per_second is None
        and not no_usage
        and overrun is None
    ):
        return NO_FAULTS
    return FaultPlan(
        failure=failure,
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        no_usage=no_usage,
        overrun=overrun,
    )


@dataclass(slots=True)
class _Standing:
    fault: Fault
    remaining: int | None


class FaultBoard:
    """The standing faults of one simulator."""

    def __init__(self) -> None:
        self._standing: list[_Standing] = []

    def add(self, fault: Fault) -> None:
        self._standing.append(_Standing(fault, fault.count))

    def clear(self) -> None:
        self._standing.clear()

    def take(self, model: str) -> list[Fault]:
        """The faults that hit a request for ``model``, each counted down once."""
        if not self._standing:
            return []
        hits = []
        for standing in self._standing:
            if standing.fault.model is not None and standing.fault.model != model:
                continue
            if standing.remaining is not None:
                standing.remaining -= 1
            hits.append(standing.fault)
        self._standing = [s for s in self._standing if s.remaining is None or s.remaining > 0]
        return hits

    def snapshot(self) -> list[dict[str, Any]]:
        return [{**msgspec.to_builtins(s.fault), "remaining": s.remaining} for s in self._standing]
