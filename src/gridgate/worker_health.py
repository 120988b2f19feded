"""Worker health: the parent's view of its worker processes (how many are expected, how many
serve, how often one was restarted, whether it gave up on one), in a few words of shared memory
that the parent writes and every worker reads when it answers ``/readyz`` and ``/metrics``.

The parent (``supervisor.py``) is the only writer; a worker reads a handful of integers, off the
request path. One process serving alone (``workers = 1``) has no parent and no table.
"""

from __future__ import annotations

from ctypes import c_int64
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

EXPECTED, SERVING, RESTARTS, GIVEN_UP = range(4)


@dataclass(frozen=True, slots=True)
class WorkerCounts:
    expected: int
    serving: int
    restarts: int
    given_up: int

    @property
    def ready(self) -> bool:
        return self.serving >= self.expected


class WorkerHealth:
    """The shared table. Made by the parent before it spawns the workers and handed to each."""

    def __init__(self, table: Any) -> None:
        self._table = table  # a multiprocessing RawArray of int64, picklable to spawned workers

    @classmethod
    def create(cls, context: SpawnContext, expected: int) -> WorkerHealth:
        table = context.RawArray(c_int64, 4)
        table[EXPECTED] = expected
        return cls(table)

    # -- the parent ---------------------------------------------------------------------------
    def set_serving(self, count: int) -> None:
        self._table[SERVING] = count

    def restarted(self) -> None:
        self._table[RESTARTS] += 1

    def gave_up(self) -> None:
        self._table[GIVEN_UP] += 1

    # -- the workers --------------------------------------------------------------------------
    def counts(self) -> WorkerCounts:
        table = self._table
        return WorkerCounts(table[EXPECTED], table[SERVING], table[RESTARTS], table[GIVEN_UP])

    def exposition(self) -> bytes:
        """The workers' families in Prometheus text, to follow the process's own metrics."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.counts()))
        return generate_latest(registry)


class _Collector(Collector):
    def __init__(self, counts: WorkerCounts) -> None:
        self._counts = counts

    def collect(self) -> list[Metric]:
        counts = self._counts
        expected = GaugeMetricFamily(
            "gridgate_workers_expected", "Worker processes the server runs.", value=counts.expected
        )
        serving = GaugeMetricFamily(
            "gridgate_workers_serving",
            "Worker processes alive and accepting connections.",
            value=counts.serving,
        )
        restarts = CounterMetricFamily(
            "gridgate_worker_restarts",
            "Worker processes started again after one died.",
            value=counts.restarts,
        )
        given_up = GaugeMetricFamily(
            "gridgate_workers_given_up",
            "Workers that died too often to be started again (the server then stops).",
            value=counts.given_up,
        )
        return [expected, serving, restarts, given_up]
