"""Fixed-concurrency load with wrk (one thread: the machine has two cores and the load
generator must leave room), bounded in time; its Lua ``done()`` prints one JSON line."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("wrk") / "post.lua"
MARKER = "WRK_JSON "


@dataclass
class WrkResult:
    url: str
    connections: int
    duration_s: float
    requests: int  # completed responses, any status
    rps: float
    non2xx: int
    non2xx_by_status: dict[str, int]
    socket_errors: dict[str, int]  # connect / read / write / timeout
    latency_us: dict[str, float]  # min mean stdev max p50 p90 p99 p999
    wrk_cpu_s: float
    raw: str = field(repr=False)

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx

    @property
    def errors(self) -> int:
        """Non-2xx answers and socket errors; a run that completed nothing counts as one."""
        return self.non2xx + sum(self.socket_errors.values()) + (self.requests == 0)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "connections": self.connections,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "non2xx": self.non2xx,
            "non2xx_by_status": self.non2xx_by_status,
            "socket_errors": self.socket_errors,
            "errors": self.errors,
            "latency_us": self.latency_us,
            "wrk_cpu_s": round(self.wrk_cpu_s, 3),
        }


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found (bench/run installs it with apt)")
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str,
    bodies: Sequence[Path],
    *,
    connections: int,
    duration_s: float,
    auth: str | None = None,
    threads: int = 1,
    timeout_s: float = 10.0,
    tick: Callable[[float], None] | None = None,
    tick_every_s: float = 5.0,
) -> WrkResult:
    """One wrk run. ``tick(elapsed_s)`` is called every ``tick_every_s`` while it runs."""
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "WRK_BODIES": ",".join(str(b) for b in bodies), "WRK_AUTH": auth or ""}
    cpu_before = _children_cpu()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        started = time.monotonic()
        deadline = started + duration_s + timeout_s + 30
        try:
            while True:
                try:
                    proc.wait(timeout=tick_every_s if tick else max(0.1, deadline - started))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"wrk overran its deadline: {' '.join(argv)}") from None
                    if tick is not None:
                        tick(time.monotonic() - started)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        raw = out.read().decode(errors="replace")
    cpu = _children_cpu() - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{raw}")
    return parse(raw, url, connections, cpu)


def parse(raw: str, url: str, connections: int, wrk_cpu_s: float) -> WrkResult:
    line = next((ln for ln in raw.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {MARKER.strip()} line:\n{raw}")
    data = json.loads(line[len(MARKER) :])
    duration_s = data["duration_us"] / 1e6
    latency = data["latency_us"]
    if data["requests"] == 0:  # wrk's empty histogram reports its sentinels
        latency = dict.fromkeys(latency, 0)
    errors = data["errors"]
    return WrkResult(
        url=url,
        connections=connections,
        duration_s=round(duration_s, 3),
        requests=data["requests"],
        rps=data["requests"] / duration_s if duration_s > 0 else 0.0,
        non2xx=data["non2xx"],
        non2xx_by_status=data["non2xx_by_status"],
        socket_errors={k: errors[k] for k in ("connect", "read", "write", "timeout")},
        latency_us=latency,
        wrk_cpu_s=wrk_cpu_s,
        raw=raw,
    )
