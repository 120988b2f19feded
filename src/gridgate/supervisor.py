"""The supervisor: the parent of ``gridgate serve --workers N``. It starts the workers, and
while they serve it watches them: a worker that dies is logged at once (its index, pid, exit
code or signal), its metrics stop counting as live, and it is started again after a backoff
(0.5 s, doubling up to 30 s; back to 0.5 s once a worker has lived a whole window). A worker
that dies ``server.worker_restart_limit`` times within ``server.worker_restart_window_seconds``
is not started again: the supervisor logs it as critical and stops the server (the other workers
drain as on SIGTERM) with exit status 1, so that what runs it (systemd, Kubernetes) restarts it
and alerts, rather than leaving a host up with part of its workers for good.

Its view (how many workers are expected and serving, restarts, give-ups) is in the shared
``WorkerHealth`` every worker reads for ``/readyz`` (503 while fewer than expected serve) and
``/metrics``. SIGINT and SIGTERM are forwarded to the workers, and nothing is restarted after.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event

from gridgate.metrics import worker_exit
from gridgate.settings import Settings
from gridgate.worker_health import WorkerHealth

log = logging.getLogger("gridgate.server")

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
TICK_SECONDS = 0.1  # how often the supervisor looks at workers starting and signals received
CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)

# the worker's entry point: (settings, reuse_port, listening, health)
WorkerTarget = Callable[[Settings, bool, Event, WorkerHealth], None]


@dataclass
class _Slot:
    """One worker's place: the process in it now, and its history of deaths."""

    index: int
    process: SpawnProcess | None = None
    listening: Event | None = None
    serving: bool = False
    started: float = 0.0
    deaths: deque[float] = field(default_factory=deque)
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float | None = None
    exitcode: int | None = None  # the last process's


class Supervisor:
    def __init__(self, context: SpawnContext, settings: Settings, target: WorkerTarget) -> None:
        self._context = context
        self._settings = settings
        self._target = target
        self.health = WorkerHealth.create(context, settings.server.workers)
        self._slots = [_Slot(i) for i in range(settings.server.workers)]
        self._stopping = False
        self._stopped_by_signal = False
        self._gave_up = False

    def start(self) -> bool:
        """Start every worker and wait until each accepts connections; False (every worker
        stopped) when one fails to start. From now on SIGINT and SIGTERM stop the workers."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for slot in self._slots:
            self._spawn(slot)
        for slot in self._slots:
            assert slot.listening is not None and slot.process is not None
            while not slot.listening.wait(TICK_SECONDS):
                if not slot.process.is_alive():
                    name = slot.process.name
                    self._stop(signal.SIGTERM)
                    for other in self._slots:
                        if other.process is not None:
                            other.process.join()
                            self._ended(other)
                    if not self._stopped_by_signal:
                        print(f"gridgate: {name} failed to start", file=sys.stderr)
                    return False
            slot.serving = True
            self._publish()
        return True

    def run(self) -> int:
        """Watch the workers until the server stops; its exit status."""
        while True:
            running = [slot for slot in self._slots if slot.process is not None]
            if not running and (self._stopping or not self._restarts_due()):
                break
            wait([slot.process.sentinel for slot in running if slot.process], TICK_SECONDS)
            now = time.monotonic()
            for slot in running:
                assert slot.process is not None and slot.listening is not None
                if not slot.process.is_alive():
                    self._died(slot, now)
                elif not slot.serving and slot.listening.is_set():
                    slot.serving = True
                    log.info(
                        "worker %d (pid %s) serving again",
                        slot.index,
                        slot.process.pid,
                        extra={"worker": slot.index, "pid": slot.process.pid},
                    )
            if not self._stopping:
                for slot in self._slots:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        self._spawn(slot)
                        self.health.restarted()
            self._publish()
        failed = [
            f"gridgate-worker-{slot.index}"
            for slot in self._slots
            if slot.exitcode not in CLEAN_EXITS
        ]
        if failed and not self._gave_up:
            print(f"gridgate: workers failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed or self._gave_up else 0

    def _spawn(self, slot: _Slot) -> None:
        listening = self._context.Event()
        process = self._context.Process(
            target=self._target,
            args=(self._settings, True, listening, self.health),
            name=f"gridgate-worker-{slot.index}",
        )
        process.start()
        slot.process, slot.listening = process, listening
        slot.serving, slot.restart_at = False, None
        slot.started = time.monotonic()

    def _ended(self, slot: _Slot) -> None:
        """The slot's process has ended: its live gauges stop counting."""
        assert slot.process is not None
        if slot.process.pid is not None:
            worker_exit(slot.process.pid)
        slot.exitcode = slot.process.exitcode
        slot.process, slot.serving = None, False

    def _died(self, slot: _Slot, now: float) -> None:
        assert slot.process is not None
        slot.process.join()
        pid = slot.process.pid
        self._ended(slot)
        if self._stopping:
            return
        code = slot.exitcode
        how = f"exit code {code}"
        signal_name = None
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                signal_name = signal.Signals(-code).name
            how = f"signal {signal_name or -code}"
        window = self._settings.server.worker_restart_window_seconds
        if now - slot.started >= window:
            slot.backoff = FIRST_BACKOFF_SECONDS  # it had served well: a fresh start
        slot.deaths.append(now)
        while slot.deaths and slot.deaths[0] < now - window:
            slot.deaths.popleft()
        facts = {
            "worker": slot.index,
            "pid": pid,
            "exit_code": code if code is None or code >= 0 else None,
            "signal": signal_name,
            "deaths_in_window": len(slot.deaths),
        }
        limit = self._settings.server.worker_restart_limit
        if len(slot.deaths) >= limit:
            log.critical(
                "worker %d (pid %s) died (%s) %d times within %g s: not restarting it; "
                "stopping the server",
                slot.index,
                pid,
                how,
                len(slot.deaths),
                window,
                extra=facts,
            )
            self._gave_up = True
            self.health.gave_up()
            self._stop(signal.SIGTERM)
            return
        slot.restart_at = now + slot.backoff
        log.error(
            "worker %d (pid %s) died (%s); restarting it in %g s",
            slot.index,
            pid,
            how,
            slot.backoff,
            extra={**facts, "restart_in_seconds": slot.backoff},
        )
        slot.backoff = min(slot.backoff * 2, MAX_BACKOFF_SECONDS)

    def _restarts_due(self) -> bool:
        return any(slot.restart_at is not None for slot in self._slots)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopped_by_signal = True
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        """No more restarts; ``signum`` to every worker (they drain and exit)."""
        self._stopping = True
        for slot in self._slots:
            slot.restart_at = None
            process = slot.process
            if process is not None and process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def _publish(self) -> None:
        self.health.set_serving(sum(1 for slot in self._slots if slot.serving))
