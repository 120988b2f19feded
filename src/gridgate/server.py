"""Running the gateway: one event loop per process, ``server.workers`` processes sharing the
port (SO_REUSEPORT) under a supervisor that restarts one that dies (``supervisor.py``), graceful
shutdown on SIGINT/SIGTERM (in-flight requests drain, the usage writer flushes). With several
workers, their metrics meet in a temporary directory that lives as long as the parent
(``metrics.prepare_multiprocess``).

The supervisor serves nothing, so it holds none of the app: the app's modules (SQLAlchemy, the
exchange, the dashboard) are imported where a process serves, and with several workers the
migration runs in a short-lived child of its own. The supervisor stays ~45 MB instead of the
~75 MB of a process that imported them all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import multiprocessing
import shutil
import signal
import tempfile
from collections.abc import Callable
from multiprocessing.synchronize import Event as EventType

from gridgate.logs import configure_logging
from gridgate.metrics import prepare_multiprocess
from gridgate.settings import Settings
from gridgate.supervisor import Supervisor
from gridgate.worker_health import WorkerHealth

log = logging.getLogger("gridgate.server")
SHUTDOWN_GRACE_SECONDS = 30.0


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# the collector's generation-0 threshold while serving (CPython's default: 700 allocations)
GC_YOUNG_THRESHOLD = 20_000
GC_OLDER_THRESHOLDS = (20, 20)


def tune_collector() -> None:
    """Once serving: what start-up built (modules, the app, its state, the catalog) lives as
    long as the process, so it is moved out of the collector's generations (``gc.freeze``) and
    collections no longer traverse it; and generation 0 is collected every 20,000 net
    allocations instead of 700, since a request allocates a few hundred short-lived objects,
    nearly all freed by reference counting. Measured: ~10% less CPU per request under load
    (three paired runs, plain at 64 connections)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)


async def run_gateway(
    settings: Settings,
    *,
    reuse_port: bool = False,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    workers: WorkerHealth | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when no event is given). ``workers``: the
    supervisor's view of its workers, when this process is one of them."""
    from gridgate.api.ops import WORKER_HEALTH
    from gridgate.api.refusals import GatewayRunner
    from gridgate.app import build_app
    from gridgate.connection_guard import ConnectionGuard, ConnectionLimits
    from gridgate.logs import JsonAccessLogger

    app = build_app(settings)
    if workers is not None:
        app[WORKER_HEALTH] = workers
    access_log = None
    if settings.server.access_log:  # asked for: written whatever the level of other logs
        access_log = logging.getLogger("aiohttp.access")
        access_log.setLevel(logging.INFO)
    runner = GatewayRunner(
        app,
        access_log=access_log,
        access_log_class=JsonAccessLogger,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        # a caller that goes away cancels its handler at once, even while the upstream is
        # silent: the upstream connection is closed and the request settled for what it got
        handler_cancellation=True,
    )
    await runner.setup()
    host, port = settings.server.host, settings.server.port
    loop = asyncio.get_running_loop()
    # the guard is the protocol factory: it bounds how long clients take to send requests and
    # how many connections this process holds (``connection_guard.py``)
    guard = ConnectionGuard(runner.gateway_server, ConnectionLimits.from_settings(settings))
    listener: asyncio.Server | None = None
    try:
        listener = await loop.create_server(
            guard, host, port, reuse_port=reuse_port or None, backlog=2048
        )
        event = stop or asyncio.Event()
        if stop is None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, event.set)
        if ready is not None:
            ready(f"http://{host}:{port}")
        tune_collector()
        await event.wait()
    finally:
        if listener is not None:
            listener.close()  # no new connections; those open drain in the runner's cleanup
        await runner.cleanup()


def _worker(
    settings: Settings, reuse_port: bool, listening: EventType, health: WorkerHealth
) -> None:
    configure_logging(settings.logging.format, settings.logging.level)
    _use_uvloop()
    asyncio.run(
        run_gateway(
            settings, reuse_port=reuse_port, ready=lambda _: listening.set(), workers=health
        )
    )


def migrate(settings: Settings) -> None:
    """Create or upgrade the database and seed the catalog (``open_store``), then close it."""
    configure_logging(settings.logging.format, settings.logging.level)
    from gridgate.state import open_store

    async def prepare() -> None:
        store = await open_store(settings)
        await store.close()

    asyncio.run(prepare())


def serve(settings: Settings) -> int:
    """``gridgate serve``: migrate once, then run the worker processes."""
    configure_logging(settings.logging.format, settings.logging.level)
    workers = settings.server.workers
    if workers == 1:
        migrate(settings)
    else:
        # in a child, so that the supervisor never imports the store; its errors (a
        # StorageError, say) are raised here as if it had run in this process
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as child:
            child.submit(migrate, settings).result()
    url = f"http://{settings.server.host}:{settings.server.port}"
    if workers > 1 and not settings.redis.url:
        log.warning(
            "%d workers without redis.url: rate limits are counted by each worker on its own "
            "(up to %d times the limit); set redis.url to make them exact",
            workers,
            workers,
        )
    if workers == 1:
        _use_uvloop()
        asyncio.run(
            run_gateway(settings, ready=lambda u: print(f"gridgate serving on {u}/v1", flush=True))
        )
        return 0
    metrics_dir = tempfile.mkdtemp(prefix="gridgate-metrics-")
    try:
        prepare_multiprocess(metrics_dir)  # before the workers start: they read it at import
        return _run_workers(settings, workers, url)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings, workers: int, url: str) -> int:
    supervisor = Supervisor(multiprocessing.get_context("spawn"), settings, _worker)
    if not supervisor.start():
        return 1
    print(f"gridgate serving on {url}/v1 with {workers} workers", flush=True)
    return supervisor.run()
