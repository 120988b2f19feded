"""Prometheus metrics: what operators scrape from ``GET /metrics``.

One ``Metrics`` per process, built in the app's lifespan, each with its own registry (never the
library's global one). Label values come from bounded sets only — route templates, configured
instruments and suppliers, HTTP statuses — never raw paths or ids.

With several worker processes a scrape lands on any one of them, so every worker writes its
values to memory-mapped files in one shared directory and a scrape sums them all
(``prometheus_client``'s multiprocess mode). The parent server calls ``prepare_multiprocess``
before it spawns the workers (the library picks its mode from ``PROMETHEUS_MULTIPROC_DIR`` when
it is first imported, which in a spawned worker is after the variable is set) and
``worker_exit`` for each worker that has ended (its live gauges stop counting).

Writing a value in multiprocess mode costs ~4 µs (a lock, a pid check, an mmap write), and a
request observes 8–10 of them. So requests never call the library: each hook adds to plain
aggregates in this process, one per label child (a counter's total; a histogram's count per
bucket and running sum), and ``flush`` writes each child touched once, every upkeep tick (0.5 s)
and before every scrape this process answers. The aggregates are as many as the label tuples
seen (bounded sets), so nothing forces a flush in between. Gauges are written only when they
change.

Families (prefix ``gridgate_``):

- ``http_requests_total{route,method,status}``, ``http_request_duration_seconds{route}``
- ``requests_total{instrument,status,outcome}``, ``request_duration_seconds{instrument}``,
  ``ttft_seconds{supplier}``, ``upstream_duration_seconds{supplier}`` — from usage records
- ``tokens_total{instrument,supplier,direction}``, ``spend_nanodollars_total{instrument,supplier}``
- ``rate_limited_total{scope,kind}``, ``rate_limiter_errors_total``
- gauges ``holds_outstanding``, ``usage_queue_depth``, ``leases_open``
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gridgate.storage.records import UsageRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# the classic text format (what generate_latest writes), understood by every Prometheus
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# seconds; an exchange runs from milliseconds (an error) to minutes (a long stream)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def prepare_multiprocess(directory: str) -> None:
    """Make ``directory`` an empty metrics directory and point this process's environment (and
    so the workers it spawns next) at it. Call before spawning the workers."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)


def worker_exit(pid: int) -> None:
    """A worker has ended: its live gauges (``livesum``) no longer count. Its counters and
    histograms stay, so totals never go backwards."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self, *, multiprocess: bool = False) -> None:
        # auto_describe checks for clashing names by collecting what is registered; in
        # multiprocess mode that is the collector, which would read every worker's file, and a
        # file another worker is creating that very moment is empty: its read fails
        self._registry = CollectorRegistry(auto_describe=not multiprocess)
        registry: CollectorRegistry | None = self._registry
        if multiprocess:
            directory = os.environ.get(MULTIPROC_ENV)
            if not directory or not Path(directory).is_dir():
                raise RuntimeError(
                    f"multiprocess metrics need ${MULTIPROC_ENV} set to a directory before "
                    "prometheus_client is imported (the server's prepare_multiprocess does it)"
                )
            # the values live in the shared files; the collector reads every worker's
            MultiProcessCollector(self._registry, path=directory)  # type: ignore[no-untyped-call]
            registry = None
        self.multiprocess = multiprocess

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        # each histogram's bucket bounds as its ``observe`` compares them: +Inf last
        self._bounds: dict[Histogram, tuple[float, ...]] = {}

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            family = Histogram(name, doc, labels, registry=registry, buckets=buckets)
            self._bounds[family] = (*map(float, buckets), math.inf)
            return family

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=registry, multiprocess_mode="livesum")

        self._http_requests = counter(
            "gridgate_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self._http_duration = histogram(
            "gridgate_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (streams included).",
            ("route",),
            DURATION_BUCKETS,
        )
        self._requests = counter(
            "gridgate_requests_total",
            "Exchange requests that ended, by instrument, status and outcome.",
            ("instrument", "status", "outcome"),
        )
        self._request_duration = histogram(
            "gridgate_request_duration_seconds",
            "Duration of exchange requests that ended, by instrument.",
            ("instrument",),
            DURATION_BUCKETS,
        )
        self._ttft = histogram(
            "gridgate_ttft_seconds",
            "Time to the first token of streamed answers, by supplier.",
            ("supplier",),
            TTFT_BUCKETS,
        )
        self._upstream_duration = histogram(
            "gridgate_upstream_duration_seconds",
            "Duration of requests a supplier served, to the end of its answer, by supplier.",
            ("supplier",),
            DURATION_BUCKETS,
        )
        self._tokens = counter(
            "gridgate_tokens_total",
            "Tokens metered, by instrument, supplier and direction (input or output).",
            ("instrument", "supplier", "direction"),
        )
        self._spend = counter(
            "gridgate_spend_nanodollars_total",
            "Money charged to accounts (billed cost), in nano-dollars.",
            ("instrument", "supplier"),
        )
        self._rate_limited = counter(
            "gridgate_rate_limited_total",
            "Requests refused by a rate limit, by scope (key, account, instrument) and kind "
            "(requests, tokens, concurrent).",
            ("scope", "kind"),
        )
        self._limiter_errors = counter(
            "gridgate_rate_limiter_errors_total",
            "Rate-limiter calls that failed (backend unreachable).",
        )
        self._holds = gauge(
            "gridgate_holds_outstanding", "Requests holding money right now (in flight)."
        )
        self._queue = gauge(
            "gridgate_usage_queue_depth", "Usage records queued for the background writer."
        )
        self._leases = gauge("gridgate_leases_open", "Balance leases open in the process.")
        self._spooled = gauge(
            "gridgate_usage_spooled_records",
            "Usage records kept on local disk while the database refuses them.",
        )
        self._database_down = gauge(
            "gridgate_database_unreachable", "1 while a process finds the database unreachable."
        )
        # in set_gauges' order
        self._gauges_set = (
            self._holds,
            self._queue,
            self._leases,
            self._spooled,
            self._database_down,
        )
        # per label tuple, the aggregates its requests add to (built once per tuple, with the
        # label children they write to: ``labels()`` costs ~1 µs each)
        self._http_keys: dict[tuple[str, str, int], tuple[_Count, _Spread]] = {}
        self._usage_keys: dict[tuple[str, str | None, int, str], _UsageKey] = {}
        self._limited_keys: dict[tuple[str, str], _Count] = {}
        # every aggregate once by (family, label values), in the order its child was made;
        # ``flush`` walks these (as many as label tuples seen: nothing else to bound)
        self._counts: dict[tuple[Counter, tuple[str, ...]], _Count] = {}
        self._spreads: dict[tuple[Histogram, tuple[str, ...]], _Spread] = {}
        self._limiter_error = self._count(self._limiter_errors, ())
        self._last_gauges: tuple[int, int, int, int, bool] | None = None

    # -- hooks -------------------------------------------------------------------------------
    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = self._http_keys.get((route, method, status))
        if key is None:
            key = self._http_key(route, method, status)
        key[0].total += 1
        spread = key[1]
        spread.counts[bisect_left(spread.bounds, seconds)] += 1
        spread.total += seconds

    def observe_usage(self, record: UsageRecord) -> None:
        """One usage record (checkpoints of streams still running are skipped: only the final
        record of a request counts)."""
        if record.outcome == "in_progress":
            return
        key = (record.instrument, record.supplier, record.status, record.outcome)
        found = self._usage_keys.get(key)
        if found is None:
            found = self._usage_keys[key] = self._usage_key(*key)
        found.requests.total += 1
        duration = record.duration_us / 1_000_000
        spread = found.duration
        at = bisect_left(spread.bounds, duration)
        spread.counts[at] += 1
        spread.total += duration
        served = found.served
        if served is not None:
            spread = served.upstream  # the same buckets: the same place
            spread.counts[at] += 1
            spread.total += duration
            if record.ttft_us is not None and record.stream:
                ttft = record.ttft_us / 1_000_000
                spread = served.ttft
                spread.counts[bisect_left(spread.bounds, ttft)] += 1
                spread.total += ttft
            if record.input_tokens:
                served.input_tokens.total += record.input_tokens
            if record.output_tokens:
                served.output_tokens.total += record.output_tokens
            if record.billed and record.cost > 0:
                served.spend.total += record.cost

    def rate_limited(self, scope: str, kind: str) -> None:
        count = self._limited_keys.get((scope, kind))
        if count is None:
            count = self._limited_keys[scope, kind] = self._count(self._rate_limited, (scope, kind))
        count.total += 1

    def limiter_error(self) -> None:
        self._limiter_error.total += 1

    def flush(self) -> None:
        """Write what requests observed since the last flush into the metric values: one write
        per counter child touched, one per histogram bucket touched and its sum."""
        for count in self._counts.values():
            if count.total:
                count.child.inc(count.total)
                count.total = 0
        for spread in self._spreads.values():
            counts = spread.counts
            if any(counts):
                buckets = spread.buckets
                for at, n in enumerate(counts):
                    if n:
                        buckets[at].inc(n)
                        counts[at] = 0
                spread.sum.set(spread.total)

    def set_gauges(
        self, holds: int, queue: int, leases: int, spooled: int = 0, database_down: bool = False
    ) -> None:
        """Set the gauges (each write costs a few µs in multiprocess mode: only when changed)."""
        now = (holds, queue, leases, spooled, database_down)
        last, self._last_gauges = self._last_gauges, now
        for at, (gauge, value) in enumerate(zip(self._gauges_set, now, strict=True)):
            if last is None or last[at] != value:
                gauge.set(int(value))

    # -- label children, once per label tuple --------------------------------------------------
    def _http_key(self, route: str, method: str, status: int) -> tuple[_Count, _Spread]:
        label = method if method in _METHODS else "other"
        key = (
            self._count(self._http_requests, (route, label, str(status))),
            self._spread(self._http_duration, (route,)),
        )
        if label == method:  # a made-up method is not kept: any client can send a new one
            self._http_keys[route, method, status] = key
        return key

    def _usage_key(
        self, instrument: str, supplier: str | None, status: int, outcome: str
    ) -> _UsageKey:
        served = None  # its children made first, as before (the order of a multiprocess file)
        if supplier is not None:
            served = _Served(
                upstream=self._spread(self._upstream_duration, (supplier,)),
                ttft=self._spread(self._ttft, (supplier,)),
                input_tokens=self._count(self._tokens, (instrument, supplier, "input")),
                output_tokens=self._count(self._tokens, (instrument, supplier, "output")),
                spend=self._count(self._spend, (instrument, supplier)),
            )
        requests = self._count(self._requests, (instrument, str(status), outcome))
        duration = self._spread(self._request_duration, (instrument,))
        return _UsageKey(requests=requests, duration=duration, served=served)

    def _count(self, family: Counter, labels: tuple[str, ...]) -> _Count:
        made = self._counts.get((family, labels))
        if made is None:
            made = _Count(family.labels(*labels) if labels else family)
            self._counts[family, labels] = made
        return made

    def _spread(self, family: Histogram, labels: tuple[str, ...]) -> _Spread:
        made = self._spreads.get((family, labels))
        if made is None:
            made = _Spread(family.labels(*labels), self._bounds[family])
            self._spreads[family, labels] = made
        return made

    # -- exposition ----------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The text exposition (every worker's values, in multiprocess mode: each worker's as of
        its last flush, at most an upkeep tick ago) and its type. In multiprocess mode it may
        run in a thread (it reads files), so the caller flushes first, on the event loop."""
        if not self.multiprocess:
            self.flush()
        return generate_latest(self._registry), CONTENT_TYPE


class _Count:
    """A counter child and what requests added to it since the last flush."""

    __slots__ = ("child", "total")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.total: int = 0  # whole units (requests, tokens, nano-dollars): exact


class _Spread:
    """A histogram child and what requests observed since the last flush, as its ``observe``
    would have recorded it: one count per bucket (the first whose bound is >= the value, +Inf
    last; ``le`` is made cumulative when rendered) and the running sum.

    prometheus_client has no "observe n values at once", so ``flush`` writes through the child's
    ``_buckets`` and ``_sum`` values; tests/test_metrics.py compares the result with plain
    ``observe`` calls, so a library upgrade that changes them fails there. The sum is kept whole
    (seeded with the child's) and set, not added per flush: the same additions in the same order
    as ``observe``'s, so the exposition is the same to the last digit. Values are never NaN
    (durations from integer microseconds and a monotonic clock), which bisect would misplace.
    """

    __slots__ = ("bounds", "buckets", "counts", "sum", "total")

    def __init__(self, child: Histogram, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets: list[Any] = child._buckets  # the library's internals: see above
        self.sum: Any = child._sum
        if len(self.buckets) != len(bounds):
            raise RuntimeError("prometheus_client's Histogram no longer keeps one value a bucket")
        self.counts = [0] * len(bounds)
        self.total: float = self.sum.get()


@dataclass(frozen=True, slots=True)
class _Served:
    """The aggregates of a request a supplier served."""

    upstream: _Spread
    ttft: _Spread
    input_tokens: _Count
    output_tokens: _Count
    spend: _Count


@dataclass(frozen=True, slots=True)
class _UsageKey:
    """The aggregates one (instrument, supplier, status, outcome) adds to."""

    requests: _Count
    duration: _Spread
    served: _Served | None
