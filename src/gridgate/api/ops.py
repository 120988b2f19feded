"""Operator endpoints: ``GET /healthz`` (the process is up), ``GET /readyz`` (it can serve: the
database answers, and the rate limiter's backend when one is configured and
``limits.on_backend_failure`` is ``closed``; with ``open`` an unreachable backend is named in the
checks but the process stays ready, as it serves without limits) and ``GET /metrics``
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

from gridgate.api.state import STATE, AppState

log = logging.getLogger("gridgate.api")

CHECK_TIMEOUT_SECONDS = 1.0


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
    body: dict[str, object] = {"status": "not ready" if failing else "ready", "checks": checks}
    if failing:
        body["failing"] = failing
    return web.Response(
        body=msgspec.json.encode(body),
        status=503 if failing else 200,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def refresh_gauges(state: AppState) -> None:
    """The gauges as this process stands now, and what its requests observed since the last
    call (called each upkeep tick and at each scrape)."""
    leases = state.billing.leases
    state.metrics.flush()
    state.metrics.set_gauges(
        holds=leases.inflight, queue=state.usage.pending, leases=leases.open_count
    )


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refresh_gauges(state)
    if state.metrics.multiprocess:  # reads every worker's file: off the event loop
        body, content_type = await asyncio.to_thread(state.metrics.render)
    else:
        body, content_type = state.metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})
