"""Running the gateway: one event loop per process, ``server.workers`` processes sharing the
port (SO_REUSEPORT), graceful shutdown on SIGINT/SIGTERM (in-flight requests drain, the usage
writer flushes). With several workers, their metrics meet in a temporary directory that lives
as long as the parent (``metrics.prepare_multiprocess``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.synchronize import Event as EventType

from aiohttp import web

from gridgate.api.refusals import GatewayRunner
from gridgate.app import build_app, open_store
from gridgate.logs import JsonAccessLogger, configure_logging
from gridgate.metrics import prepare_multiprocess, worker_exit
from gridgate.settings import Settings

log = logging.getLogger("gridgate.server")
SHUTDOWN_GRACE_SECONDS = 30.0


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def run_gateway(
    settings: Settings,
    *,
    reuse_port: bool = False,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when no event is given)."""
    app = build_app(settings)
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
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=2048)
    try:
        await site.start()
        event = stop or asyncio.Event()
        if stop is None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, event.set)
        if ready is not None:
            ready(f"http://{host}:{port}")
        await event.wait()
    finally:
        await runner.cleanup()


def _worker(settings: Settings, reuse_port: bool, listening: EventType) -> None:
    configure_logging(settings.logging.format, settings.logging.level)
    _use_uvloop()
    asyncio.run(run_gateway(settings, reuse_port=reuse_port, ready=lambda _: listening.set()))


def serve(settings: Settings) -> int:
    """``gridgate serve``: migrate once, then run the worker processes."""
    configure_logging(settings.logging.format, settings.logging.level)

    async def prepare() -> None:
        store = await open_store(settings)
        await store.close()

    asyncio.run(prepare())
    workers = settings.server.workers
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
    context = multiprocessing.get_context("spawn")
    listening = [context.Event() for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker, args=(settings, True, listening[i]), name=f"gridgate-worker-{i}"
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    # announce the address only once every worker accepts connections on it
    for process, event in zip(processes, listening, strict=True):
        while not event.wait(0.1):
            if not process.is_alive():
                for other in processes:
                    other.terminate()
                print(f"gridgate: {process.name} failed to start", file=sys.stderr)
                return 1
    print(f"gridgate serving on {url}/v1 with {workers} workers", flush=True)

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    import os

                    os.kill(process.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for process in processes:
        process.join()
        if process.pid is not None:
            worker_exit(process.pid)
    failed = [p.name for p in processes if p.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed:
        print(f"gridgate: workers failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
