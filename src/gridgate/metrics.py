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

Families (prefix ``gridgate_``):

- ``http_requests_total{route,method,status}``, ``http_request_duration_seconds{route}``
- ``requests_total{instrument,status,outcome}``, ``request_duration_seconds{instrument}``,
  ``ttft_seconds{supplier}``, ``upstream_duration_seconds{supplier}`` — from usage records
- ``tokens_total{instrument,supplier,direction}``, ``spend_nanodollars_total{instrument,supplier}``
- ``rate_limited_total{scope,kind}``, ``rate_limiter_errors_total``
- gauges ``holds_outstanding``, ``usage_queue_depth``, ``leases_open``
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
MAX_PENDING = 4096  # observations held before a flush is forced
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
        self._registry = CollectorRegistry(auto_describe=True)
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

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

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
        # label children, looked up once per label tuple (``labels()`` costs ~1 µs each)
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._usage_children: dict[tuple[str, str | None, int, str], _UsageChildren] = {}
        self._limited_children: dict[tuple[str, str], Counter] = {}
        # what requests observed since the last flush: (inc or observe, value). Writing a value
        # in multiprocess mode costs ~4 µs (a lock, a pid check, an mmap write); per request
        # that came to ~35 µs, so requests only append here and ``flush`` writes them, every
        # upkeep tick (0.5 s) and before every scrape this process answers
        self._pending: list[tuple[Callable[[float], None], float]] = []

    # -- hooks -------------------------------------------------------------------------------
    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            label = method if method in _METHODS else "other"
            children = (
                self._http_requests.labels(route, label, str(status)),
                self._http_duration.labels(route),
            )
            self._http_children[key] = children
        pending = self._pending
        pending.append((children[0].inc, 1))
        pending.append((children[1].observe, seconds))
        if len(pending) >= MAX_PENDING:
            self.flush()

    def observe_usage(self, record: UsageRecord) -> None:
        """One usage record (checkpoints of streams still running are skipped: only the final
        record of a request counts)."""
        if record.outcome == "in_progress":
            return
        key = (record.instrument, record.supplier, record.status, record.outcome)
        children = self._usage_children.get(key)
        if children is None:
            children = self._usage_children[key] = self._children_for(*key)
        pending = self._pending
        pending.append((children.requests.inc, 1))
        duration = record.duration_us / 1_000_000
        pending.append((children.duration.observe, duration))
        served = children.served
        if served is not None:
            pending.append((served.upstream.observe, duration))
            if record.ttft_us is not None and record.stream:
                pending.append((served.ttft.observe, record.ttft_us / 1_000_000))
            if record.input_tokens:
                pending.append((served.input_tokens.inc, record.input_tokens))
            if record.output_tokens:
                pending.append((served.output_tokens.inc, record.output_tokens))
            if record.billed and record.cost > 0:
                pending.append((served.spend.inc, record.cost))
        if len(pending) >= MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Write what requests observed since the last flush into the metric values."""
        pending, self._pending = self._pending, []
        for apply, value in pending:
            apply(value)

    def _children_for(
        self, instrument: str, supplier: str | None, status: int, outcome: str
    ) -> _UsageChildren:
        served = None
        if supplier is not None:
            served = _Served(
                upstream=self._upstream_duration.labels(supplier),
                ttft=self._ttft.labels(supplier),
                input_tokens=self._tokens.labels(instrument, supplier, "input"),
                output_tokens=self._tokens.labels(instrument, supplier, "output"),
                spend=self._spend.labels(instrument, supplier),
            )
        return _UsageChildren(
            requests=self._requests.labels(instrument, str(status), outcome),
            duration=self._request_duration.labels(instrument),
            served=served,
        )

    def rate_limited(self, scope: str, kind: str) -> None:
        key = (scope, kind)
        child = self._limited_children.get(key)
        if child is None:
            child = self._limited_children[key] = self._rate_limited.labels(scope, kind)
        child.inc()

    def limiter_error(self) -> None:
        self._limiter_errors.inc()

    def set_gauges(
        self, holds: int, queue: int, leases: int, spooled: int = 0, database_down: bool = False
    ) -> None:
        self._holds.set(holds)
        self._queue.set(queue)
        self._leases.set(leases)
        self._spooled.set(spooled)
        self._database_down.set(1 if database_down else 0)

    # -- exposition ----------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The text exposition (every worker's values, in multiprocess mode: each worker's as of
        its last flush, at most an upkeep tick ago) and its type. In multiprocess mode it may
        run in a thread (it reads files), so the caller flushes first, on the event loop."""
        if not self.multiprocess:
            self.flush()
        return generate_latest(self._registry), CONTENT_TYPE


@dataclass(frozen=True, slots=True)
class _Served:
    """The children of a request a supplier served."""

    upstream: Histogram
    ttft: Histogram
    input_tokens: Counter
    output_tokens: Counter
    spend: Counter


@dataclass(frozen=True, slots=True)
class _UsageChildren:
    """The label children one (instrument, supplier, status, outcome) records into."""

    requests: Counter
    duration: Histogram
    served: _Served | None
