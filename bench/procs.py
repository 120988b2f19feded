"""Child processes of the benchmark: start in their own process group, find their workers,
read their memory and CPU from /proc, wait for their listening sockets, stop them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcMemory:
    pid: int
    role: str
    hwm_kb: int  # VmHWM: peak resident set size over the process's life
    rss_kb: int  # VmRSS: now


class Service:
    """A child process in its own session (so its whole tree can be signalled), output to a log."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 40.0) -> int | None:
        """Signal the main process, wait up to ``grace`` seconds, then kill the whole group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        # whatever is left in the group (workers of a killed parent) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return sorted(set(found))


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = [pid]
    for child in children(pid):
        out.extend(tree(child))
    return out


def role_of(pid: int, root: int) -> str:
    """``main`` for the root, ``worker`` for a multiprocessing child or an nginx worker,
    ``helper`` for anything else (multiprocessing's resource tracker)."""
    if pid == root:
        return "main"
    line = cmdline(pid)
    if "resource_tracker" in line:
        return "helper"
    return "worker"


def memory(pid: int, role: str) -> ProcMemory | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return ProcMemory(pid, role, fields.get("VmHWM", 0), fields.get("VmRSS", 0))


def memories(root: int) -> list[ProcMemory]:
    found = (memory(pid, role_of(pid, root)) for pid in tree(root))
    return [m for m in found if m is not None]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # the command name may contain spaces: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def cpu_snapshot(pids: Iterable[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    return sum(max(0.0, after.get(pid, 0.0) - before.get(pid, 0.0)) for pid in after)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def listening_pid(port: int) -> int | None:
    """The oldest process holding a listening socket on ``port`` (a server not started here,
    e.g. PostgreSQL's postmaster), or None when there is none or /proc does not show it."""
    listening = _listening_inodes(port)
    if not listening:
        return None
    holders = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & listening
    ]
    return min(holders, default=None)


def wait_listening(service: Service, port: int, workers: int, deadline_s: float) -> list[int]:
    """Poll until ``workers`` processes of the service's tree hold a listening socket on
    ``port`` (each SO_REUSEPORT worker binds its own); return their pids. Bounded."""
    deadline = time.monotonic() + deadline_s
    while True:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited during start-up:\n{service.log_tail()}")
        listening = _listening_inodes(port)
        holders = [pid for pid in tree(service.pid) if _socket_inodes(pid) & listening]
        if len(holders) >= workers:
            return holders
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{service.name} not listening on {port} with {workers} processes after "
                f"{deadline_s:.0f} s (have {len(holders)}):\n{service.log_tail()}"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(timeout=0.05)  # a bounded poll tick that returns early on exit


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds of all cores since boot (/proc/stat): ``tasks`` (user + nice + system: what
    processes are charged), ``irq`` (hard + soft interrupts: loopback networking lands here),
    ``steal`` (taken by the hypervisor). Set against the tracked processes' CPU, ``tasks``
    shows how much else ran on the machine during a measurement."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return {
        "tasks": (user + nice + system) / CLOCK_TICKS,
        "irq": (irq + softirq) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
    }


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")


def scan_log(path: Path) -> dict[str, Any]:
    """Tracebacks and ERROR lines in a service's output, with the distinct exception lines."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"tracebacks": 0, "error_lines": 0, "exceptions": {}}
    exceptions: dict[str, int] = {}
    for line in lines:
        if _EXCEPTION_LINE.match(line):
            key = line[:200]
            exceptions[key] = exceptions.get(key, 0) + 1
    return {
        "tracebacks": sum(line.startswith("Traceback (most recent call last)") for line in lines),
        "error_lines": sum(" ERROR " in line or "[error]" in line for line in lines),
        "exceptions": dict(sorted(exceptions.items(), key=lambda kv: -kv[1])[:10]),
    }
