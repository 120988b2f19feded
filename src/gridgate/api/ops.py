"""Operator endpoints: ``GET /healthz`` (the process is up), ``GET /readyz`` (it can serve: the
database answers; the rate limiter's backend when one is configured and
``limits.on_backend_failure`` is ``closed`` — with ``open`` an unreachable backend is named in
the checks but the process stays ready, as it serves without limits; and with several workers
every one of them serves) and ``GET /metrics``
(Prometheus text exposition; with several workers, the sum of them all).

Readiness names the failing check and nothing else: no URL, host or error text leaves in the
body (the log has the error's type).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import msgspec
from aiohttp import web

from gridgate.state import STATE
from gridgate.worker_health import WorkerHealth

log = logging.getLogger("gridgate.api")

CHECK_TIMEOUT_SECONDS = 1.0
# the supervisor's view of the worker processes, in a worker of ``gridgate serve --workers N``
WORKER_HEALTH: web.AppKey[WorkerHealth] = web.AppKey("gridgate_worker_health", WorkerHealth)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(name: str, probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness check %s timed out after %g s", name, CHECK_TIMEOUT_SECONDS)
        return "timeout"
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return "failed"
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    probes = {"database": _check("database", state.store.ping())}
    if state.limiter is not None and state.settings.redis.url:  # else limits live in memory
        probes["redis"] = _check("redis", state.limiter.ping())
    results = dict(zip(probes, await asyncio.gather(*probes.values()), strict=True))
    checks = {"database": results["database"], "redis": results.get("redis", "not configured")}
    failing = [name for name, result in results.items() if result != "ok"]
    if "redis" in failing and state.settings.limits.on_backend_failure == "open":
        # the limiter fails open: requests are served (without limits), so still ready
        failing.remove("redis")
        checks["redis"] = f"{checks['redis']} (open: serving unlimited)"
    workers = workers_check(request.app)
    if workers is not None:
        checks["workers"] = workers
        if workers != "ok":
            failing.append("workers")
    body: dict[str, object] = {"status": "not ready" if failing else "ready", "checks": checks}
    if failing:
        body["failing"] = failing
    return web.Response(
        body=msgspec.json.encode(body),
        status=503 if failing else 200,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def workers_check(app: web.Application) -> str | None:
    """The worker processes as their supervisor sees them: "ok" while every one serves, "1 of 2
    serving" while one is down or starting again (not ready: this host serves at part of its
    capacity); None for a process serving alone (no supervisor)."""
    health = app.get(WORKER_HEALTH)
    if health is None:
        return None
    counts = health.counts()
    return "ok" if counts.ready else f"{counts.serving} of {counts.expected} serving"


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.refresh_gauges()
    if state.metrics.multiprocess:  # reads every worker's file: off the event loop
        body, content_type = await asyncio.to_thread(state.metrics.render)
    else:
        body, content_type = state.metrics.render()
    workers = request.app.get(WORKER_HEALTH)
    if workers is not None:
        body += workers.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
