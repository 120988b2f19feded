"""A delivery window: one offer's recent deliveries, bounded by count and by age, with exact
percentiles.

The window is a ring of at most ``size`` samples, none older than ``max_age_s``. It reads no
clock: its owner stamps each sample and passes ``now`` to ``expire``. Adding and expiring are
O(1) amortized.

Percentiles are **nearest-rank**: the p-th percentile of n values is the k-th smallest,
k = ⌈p·n/100⌉ (``rank``) — always a value that was measured, and the same on every machine.
That makes the questions routing asks answerable from running counts, without sorting: the
p-th percentile is over a ceiling exactly when at least n − k + 1 values are over it, and under
a floor exactly when at least k values are under it. So the window counts, as samples come and
go, how many first tokens came later than the ceiling and how many answers ran slower than the
floor (``limits`` sets the two; a change recounts). Percentile *values*, for figures and
messages, come from a sorted copy made on demand and cached until the window changes.

A ``WindowSummary`` is what may cross a process boundary: the counts and the sorted values
(at most ``size`` of each), so the summaries of several processes' windows merge exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gridgate.core.health.figures import OfferFigures, OfferState


def rank(p: int, n: int) -> int:
    """The 1-based rank of the nearest-rank ``p``-th percentile among ``n`` ≥ 1 values."""
    return max(1, -(-p * n // 100))


def percentile(ordered: Sequence[float], p: int) -> float | None:
    """The nearest-rank ``p``-th percentile (1 ≤ p ≤ 100) of values sorted ascending; None
    when there are none."""
    if not ordered:
        return None
    return ordered[rank(p, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded delivery, as the window keeps it."""

    at: float  # monotonic seconds when it was recorded
    failed: bool  # an error or a timeout: the supplier's fault
    timed_out: bool
    in_spec: bool
    ttft_s: float | None  # None: no first token observed
    throughput_tps: float | None  # None: no throughput measured (too short, not streamed)


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """A window's figures in a form that merges exactly: counts, and the values sorted
    ascending. Plain data (ints and tuples of floats), so msgspec encodes and decodes it."""

    deliveries: int = 0
    failures: int = 0  # errors and timeouts
    timeouts: int = 0
    in_spec: int = 0
    ttft_s: tuple[float, ...] = ()
    throughput_tps: tuple[float, ...] = ()

    def merge(self, *others: WindowSummary) -> WindowSummary:
        """The summary of all these windows together (e.g. one offer's, from every process)."""
        every = (self, *others)
        return WindowSummary(
            deliveries=sum(s.deliveries for s in every),
            failures=sum(s.failures for s in every),
            timeouts=sum(s.timeouts for s in every),
            in_spec=sum(s.in_spec for s in every),
            # sorting runs that are already sorted is a linear merge
            ttft_s=tuple(sorted(v for s in every for v in s.ttft_s)),
            throughput_tps=tuple(sorted(v for s in every for v in s.throughput_tps)),
        )

    def figures(
        self, offer_id: str, state: OfferState = "healthy", reason: str | None = None
    ) -> OfferFigures:
        n = self.deliveries
        p50, p90 = percentile(self.ttft_s, 50), percentile(self.ttft_s, 90)
        return OfferFigures(
            offer_id=offer_id,
            samples=n,
            ttft_p50_ms=None if p50 is None else p50 * 1000,
            ttft_p90_ms=None if p90 is None else p90 * 1000,
            throughput_p50_tps=percentile(self.throughput_tps, 50),
            throughput_p10_tps=percentile(self.throughput_tps, 10),
            error_rate=self.failures / n if n else 0.0,
            timeout_rate=self.timeouts / n if n else 0.0,
            in_spec_fraction=self.in_spec / n if n else None,
            state=state,
            reason=reason,
        )


class DeliveryWindow:
    """The last ``size`` deliveries of one offer, none older than ``max_age_s``."""

    __slots__ = (
        "_ceiling_s",
        "_failures",
        "_floor_tps",
        "_in_spec",
        "_late",
        "_max_age_s",
        "_samples",
        "_size",
        "_slow",
        "_throughput_n",
        "_throughput_sorted",
        "_timeouts",
        "_ttft_n",
        "_ttft_sorted",
    )

    def __init__(self, size: int, max_age_s: float) -> None:
        if size < 1:
            raise ValueError(f"a delivery window holds at least 1 sample (got {size})")
        self._size = size
        self._max_age_s = max_age_s
        self._samples: deque[Sample] = deque()
        self._ceiling_s: float | None = None
        self._floor_tps: float | None = None
        self._failures = self._timeouts = self._in_spec = 0
        self._ttft_n = self._late = 0
        self._throughput_n = self._slow = 0
        self._ttft_sorted: tuple[float, ...] | None = None
        self._throughput_sorted: tuple[float, ...] | None = None

    # -- changes ---------------------------------------------------------------------------
    def limits(self, ttft_ceiling_s: float | None, throughput_floor_tps: float | None) -> None:
        """The spec the counts of late and slow samples refer to. O(1) when unchanged; a new
        spec (the instrument was edited) recounts the window."""
        if ttft_ceiling_s == self._ceiling_s and throughput_floor_tps == self._floor_tps:
            return
        self._ceiling_s, self._floor_tps = ttft_ceiling_s, throughput_floor_tps
        self._late = sum(1 for s in self._samples if self._is_late(s))
        self._slow = sum(1 for s in self._samples if self._is_slow(s))

    def add(self, sample: Sample) -> None:
        """Append a sample, dropping the oldest when the window is full."""
        if len(self._samples) >= self._size:
            self._count(self._samples.popleft(), -1)
        self._samples.append(sample)
        self._count(sample, 1)

    def expire(self, now: float) -> None:
        """Drop the samples older than ``max_age_s`` at ``now`` (an age of exactly
        ``max_age_s`` is still in)."""
        samples = self._samples
        while samples and now - samples[0].at > self._max_age_s:
            self._count(samples.popleft(), -1)

    def clear(self) -> None:
        """Forget every sample (the limits stay)."""
        self._samples.clear()
        self._failures = self._timeouts = self._in_spec = 0
        self._ttft_n = self._late = 0
        self._throughput_n = self._slow = 0
        self._ttft_sorted = self._throughput_sorted = None

    # -- reads -----------------------------------------------------------------------------
    @property
    def deliveries(self) -> int:
        return len(self._samples)

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def ttft_samples(self) -> int:
        return self._ttft_n

    @property
    def throughput_samples(self) -> int:
        return self._throughput_n

    def ttft_over_ceiling(self, p: int) -> bool:
        """Whether the p-th percentile TTFT is later than the ceiling (O(1), no sorting)."""
        n = self._ttft_n
        return n > 0 and self._late >= n - rank(p, n) + 1

    def throughput_under_floor(self, p: int) -> bool:
        """Whether the p-th percentile throughput is under the floor (O(1), no sorting)."""
        n = self._throughput_n
        return n > 0 and self._slow >= rank(p, n)

    def ttft_percentile(self, p: int) -> float | None:
        return percentile(self._ordered_ttft(), p)

    def throughput_percentile(self, p: int) -> float | None:
        return percentile(self._ordered_throughput(), p)

    def summary(self) -> WindowSummary:
        return WindowSummary(
            deliveries=len(self._samples),
            failures=self._failures,
            timeouts=self._timeouts,
            in_spec=self._in_spec,
            ttft_s=self._ordered_ttft(),
            throughput_tps=self._ordered_throughput(),
        )

    # -- internals ---------------------------------------------------------------------------
    def _is_late(self, sample: Sample) -> bool:
        ceiling = self._ceiling_s
        return ceiling is not None and sample.ttft_s is not None and sample.ttft_s > ceiling

    def _is_slow(self, sample: Sample) -> bool:
        floor = self._floor_tps
        tps = sample.throughput_tps
        return floor is not None and tps is not None and tps < floor

    def _count(self, sample: Sample, sign: int) -> None:
        self._failures += sign * sample.failed
        self._timeouts += sign * sample.timed_out
        self._in_spec += sign * sample.in_spec
        if sample.ttft_s is not None:
            self._ttft_n += sign
            self._late += sign * self._is_late(sample)
            self._ttft_sorted = None
        if sample.throughput_tps is not None:
            self._throughput_n += sign
            self._slow += sign * self._is_slow(sample)
            self._throughput_sorted = None

    def _ordered_ttft(self) -> tuple[float, ...]:
        if self._ttft_sorted is None:
            self._ttft_sorted = tuple(
                sorted(s.ttft_s for s in self._samples if s.ttft_s is not None)
            )
        return self._ttft_sorted

    def _ordered_throughput(self) -> tuple[float, ...]:
        if self._throughput_sorted is None:
            self._throughput_sorted = tuple(
                sorted(s.throughput_tps for s in self._samples if s.throughput_tps is not None)
            )
        return self._throughput_sorted
