"""One benchmark run: fake upstream (nginx), bare reference proxy and gridgate (on SQLite and
on PostgreSQL) side by side, fixed-concurrency load with wrk, streaming TTFB, memory and CPU, a soak, an optional profile,
and a report in bench/results/. Start it with ``bench/run`` (see bench/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench import bodies, flame, load, procs, report, ttfb
from bench.gateway import (
    CREDIT_USD,
    Gateway,
    create_database,
    drop_database,
    ledger_check,
    ledger_check_postgres,
    other_backends,
    server_version,
    start_gateway,
)
from bench.machine import describe
from bench.profile import Profiler
from bench.targets import CONTENDED_CORES
from bench.upstream import PLAIN_PATH, STREAM_PATH, nginx_binary, start_nginx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODES = ("plain", "stream")
PG_TARGET = "gridgate-pg"  # gridgate on PostgreSQL beside gridgate on SQLite (--database both)


@dataclass(frozen=True)
class Target:
    name: str
    root_pid: int  # the process whose tree serves this target
    urls: dict[str, str]  # mode → URL
    auth: str | None = None
    bodies: dict[str, Path] | None = None  # mode → body file, when not the chat-completions one


def limits_for(choice: str, database: str) -> str:
    """``--limits auto``: in each worker's memory on SQLite, on Redis on PostgreSQL (the
    scale-out deployment counts its limits across processes)."""
    if choice != "auto":
        return choice
    return "redis" if database == "postgresql" else "memory"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--soak-seconds", type=float, default=300.0, help="soak length")
    parser.add_argument(
        "--quick", action="store_true", help="3 s runs, 30 s soak: about two minutes in all"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy flame graphs of gridgate")
    parser.add_argument("--connections", default="1,64", help="wrk connection counts")
    parser.add_argument("--soak-connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="server processes (one per core)")
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--ttfb-count", type=int, default=2000, help="max TTFB samples per target")
    parser.add_argument("--results", type=Path, default=RESULTS, help="report directory")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="repeat a table run disturbed by other load on the machine up to N times",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a quiet machine before such a repeat",
    )
    parser.add_argument(
        "--rev",
        default=None,
        help="bench this commit's src/ (exported) instead of the working tree",
    )
    parser.add_argument(
        "--database",
        choices=("both", "sqlite", "postgresql"),
        default="both",
        help="gridgate's database: both (default: gridgate on SQLite, plus gridgate on "
        "PostgreSQL in the load and TTFB runs), sqlite only, or postgresql only (then every "
        "gridgate run, soak and profile included, is on PostgreSQL)",
    )
    parser.add_argument(
        "--postgres",
        dest="database",
        action="store_const",
        const="postgresql",
        help="the same as --database postgresql",
    )
    parser.add_argument(
        "--postgres-server",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server (no database): a fresh database is created on it for the run "
        "and dropped at the end",
    )
    parser.add_argument(
        "--surface",
        choices=tuple(bodies.REQUESTS),
        default="chat",
        help="the surface gridgate is loaded on: chat (POST /v1/chat/completions), messages "
        "(POST /v1/messages, the Anthropic surface) or responses (POST /v1/responses, with "
        "store: false): on the last two every request and answer is translated; "
        "direct and the bare proxy always get the chat-completions bodies",
    )
    parser.add_argument(
        "--limits",
        choices=("auto", "redis", "memory", "off"),
        default="auto",
        help="rate limits on the bench key (set too high to refuse anything, so every request "
        "is checked and counted): auto (default: as issue 17 measures, in each worker's "
        "memory on SQLite and on Redis on PostgreSQL), redis (exact across the workers, one "
        "Lua round trip per request), memory (each worker counts its own), off (none; needed "
        "to --rev a commit from before rate limits)",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="Redis for --limits redis"
    )
    parser.add_argument(
        "--redis-client",
        choices=("resp", "redis-py"),
        help="gridgate's [redis] client for --limits redis (default: not set, gridgate's "
        "default); redis-py needs gridgate[redis-py] in .venv. Issue 17's A/B",
    )
    parser.add_argument(
        "--auth-cache-seconds",
        type=float,
        default=None,
        help="gridgate's auth.cache_seconds (default: not set, gridgate's own default — 30 s "
        "since issue 17; 0 reads every request's key from the database)",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, db)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 3.0
        args.soak_seconds = 30.0
    args.connections = sorted({int(c) for c in args.connections.split(",")})
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, stem: str) -> None:
        self.args = args
        self.workdir = workdir
        self.stem = stem
        self.services: list[procs.Service] = []
        self.gateway: Gateway | None = None  # "gridgate": soak, profile and the targets
        self.gateways: dict[str, Gateway] = {}  # every gridgate target
        # target → database: gridgate on SQLite and/or PostgreSQL
        self.databases: dict[str, str] = {
            "both": {"gridgate": "sqlite", PG_TARGET: "postgresql"},
            "sqlite": {"gridgate": "sqlite"},
            "postgresql": {"gridgate": "postgresql"},
        }[args.database]
        self.target_names = ["direct", "bare", *self.databases]
        self.pg_databases: list[str] = []  # created on the server: dropped at the end
        self.pg_pid: int | None = None  # the PostgreSQL server's postmaster, when /proc shows it
        self.targets: dict[str, Target] = {}
        self.worker_pids: dict[str, list[int]] = {}
        self.bodies = bodies.write_bodies(workdir)
        self.gridgate_bodies = (
            bodies.write_bodies(workdir, args.surface) if args.surface != "chat" else None
        )
        # per gridgate target: 2xx answers it gave (each one a usage record), and requests wrk
        # may have left in flight when its runs ended
        self.ok_sent = dict.fromkeys(self.databases, 0)
        self.max_in_flight = dict.fromkeys(self.databases, 0)
        self.results: dict[str, Any] = {"runs": [], "warmup": [], "profile": {}}

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        args = self.args
        nginx_port, bare_port, gw_port = free_port(), free_port(), free_port()
        log(f"nginx on 127.0.0.1:{nginx_port} ({args.nginx_workers} worker)")
        nginx = start_nginx(self.workdir, nginx_port, args.nginx_workers)
        self.services.append(nginx)
        upstream = f"http://127.0.0.1:{nginx_port}"
        self.targets["direct"] = Target(
            "direct", nginx.pid, {"plain": upstream + PLAIN_PATH, "stream": upstream + STREAM_PATH}
        )

        command, env = self._gridgate_command()
        for name, database in self.databases.items():
            url = self._create_database() if database == "postgresql" else None
            log(
                f"{name} on 127.0.0.1:{gw_port} ({args.workers} workers, "
                f"{url or 'SQLite'}): {shlex.join(command)}"
            )
            gateway = start_gateway(
                command,
                env,
                self.workdir,
                gw_port,
                upstream,
                args.workers,
                name=name,
                database_url=url,
                limits=limits_for(args.limits, database),
                redis_url=args.redis,
                redis_client=args.redis_client,
                auth_cache_seconds=args.auth_cache_seconds,
            )
            self.gateways[name] = gateway
            self.services.append(gateway.service)
            gw_url = f"http://127.0.0.1:{gw_port}{bodies.PATHS[args.surface]}"
            self.targets[name] = Target(
                name,
                gateway.service.pid,
                {"plain": gw_url, "stream": gw_url},
                gateway.key,
                self.gridgate_bodies,
            )
            gw_port = free_port()
        self.gateway = self.gateways["gridgate"]

        log(f"bare proxy on 127.0.0.1:{bare_port} ({args.workers} workers)")
        bare = procs.Service(
            "bare-proxy",
            [
                sys.executable,
                str(REPO / "bench" / "bare_proxy.py"),
                "--port",
                str(bare_port),
                "--upstream",
                upstream,
                "--workers",
                str(args.workers),
            ],
            self.workdir / "bare-proxy.log",
        )
        self.services.append(bare)
        procs.wait_listening(bare, bare_port, args.workers, deadline_s=30)
        bare_url = f"http://127.0.0.1:{bare_port}/v1/chat/completions"
        self.targets["bare"] = Target("bare", bare.pid, {"plain": bare_url, "stream": bare_url})
        self.worker_pids = {
            name: [p for p in procs.tree(t.root_pid) if procs.role_of(p, t.root_pid) == "worker"]
            for name, t in self.targets.items()
        }
        self.results["processes"] = {
            name: [
                {"pid": pid, "role": procs.role_of(pid, t.root_pid), "cmd": procs.cmdline(pid)}
                for pid in procs.tree(t.root_pid)
            ]
            for name, t in self.targets.items()
        }

    def _create_database(self) -> str:
        """A fresh database on ``--postgres-server`` for one gridgate target; the PostgreSQL
        server's processes are then tracked (their CPU is the database's share, not other
        load) when /proc shows them."""
        server = self.args.postgres_server.rstrip("/")
        name = f"gridgate_bench_{os.getpid()}_{int(time.time())}_{len(self.pg_databases)}"
        self.pg_databases.append(name)  # before creating: an interrupted create is dropped too
        url = create_database(server, name)
        log(f"PostgreSQL database {name} created on {server}")
        self.results["meta"].setdefault("versions", {})["postgresql"] = server_version(server)
        port = urlsplit(server).port or 5432
        self.pg_pid = procs.listening_pid(port)
        if self.pg_pid is None:
            log(f"PostgreSQL server on port {port} not found in /proc: its CPU counts as other")
        return url

    def drop_databases(self) -> None:
        server = self.args.postgres_server.rstrip("/")
        for name in self.pg_databases:
            try:
                drop_database(server, name)
                log(f"PostgreSQL database {name} dropped")
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                log(f"could not drop PostgreSQL database {name}: {exc}")
        self.pg_databases.clear()

    def _gridgate_command(self) -> tuple[list[str], dict[str, str]]:
        """gridgate run from a copy of its source taken now, so edits made to the working tree
        during the run cannot touch it: the working tree's ``src/`` as it is (the default), or
        with ``--rev`` that commit's ``src/``."""
        into = self.workdir / "gridgate-src"
        if self.args.rev:
            src = export_source(self.args.rev, into)
        else:
            src = into / "src"
            shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
        return [sys.executable, "-m", "gridgate"], {**os.environ, "PYTHONPATH": str(src)}

    # -- checks -----------------------------------------------------------------------------------
    def smoke(self) -> None:
        """One plain and one streamed request to every target, checked before any load."""
        outcome = asyncio.run(self._smoke())
        self.results["smoke"] = outcome
        bad = [f"{k}: {v}" for k, v in outcome.items() if v != "ok"]
        if bad:
            raise RuntimeError("smoke check failed:\n" + "\n".join(bad))

    async def _smoke(self) -> dict[str, str]:
        outcome: dict[str, str] = {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for name, target in self.targets.items():
                for mode in MODES:
                    headers = {"Content-Type": "application/json"}
                    if target.auth:
                        headers["Authorization"] = f"Bearer {target.auth}"
                    body = (target.bodies or self.bodies)[mode].read_bytes()
                    async with session.post(target.urls[mode], data=body, headers=headers) as r:
                        text = await r.text()
                    surface = self.args.surface if target.bodies is not None else "chat"
                    good = r.status == 200 and bodies.answered(surface, mode, text)
                    outcome[f"{name}/{mode}"] = "ok" if good else f"{r.status} {text[:300]!r}"
                    if good and name in self.ok_sent:
                        self.ok_sent[name] += 1
        return outcome

    def check_alive(self) -> None:
        """Every server and each of its workers still runs (something outside this harness
        may have signalled them: say so rather than measure a half-dead server)."""
        for service in self.services:
            code = service.proc.poll()
            if code is not None:
                how = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
                raise RuntimeError(f"{service.name} (pid {service.pid}) {how} during the run")
        for name, pids in self.worker_pids.items():
            gone = [pid for pid in pids if not Path(f"/proc/{pid}").exists()]
            if gone:
                raise RuntimeError(f"{name} worker(s) {gone} vanished during the run")

    # -- load -------------------------------------------------------------------------------------
    def _groups(self) -> dict[str, list[int]]:
        groups = {name: procs.tree(t.root_pid) for name, t in self.targets.items()}
        if self.pg_pid is not None:
            # the server's own processes and our databases' backends; not the backends other
            # users of the server have open (their CPU is other load)
            server = self.args.postgres_server.rstrip("/")
            try:
                others = other_backends(server, self.pg_databases)
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                others = set()
            groups["postgresql"] = [p for p in procs.tree(self.pg_pid) if p not in others]
        return groups

    @contextlib.contextmanager
    def _cpu(self, into: dict[str, Any]) -> Iterator[None]:
        """CPU seconds of every server group over the block, and of everything else."""
        before = {n: procs.cpu_snapshot(p) for n, p in self._groups().items()}
        machine = procs.machine_cpu_seconds()
        yield
        after = {n: procs.cpu_snapshot(p) for n, p in self._groups().items()}
        spent = {k: v - machine[k] for k, v in procs.machine_cpu_seconds().items()}
        into["cpu_s"] = {n: round(procs.cpu_delta(before[n], after[n]), 3) for n in after}
        tracked = sum(into["cpu_s"].values()) + into.get("wrk_cpu_s", 0.0)
        into["cpu_s"]["machine_tasks"] = round(spent["tasks"], 3)
        into["cpu_s"]["machine_irq"] = round(spent["irq"], 3)
        into["cpu_s"]["machine_steal"] = round(spent["steal"], 3)
        into["cpu_s"]["other"] = round(max(0.0, spent["tasks"] - tracked), 3)

    def wrk(
        self,
        target: str,
        mode: str,
        connections: int,
        duration: float,
        *,
        body_paths: list[Path] | None = None,
        tick: Callable[[float], None] | None = None,
    ) -> dict[str, Any]:
        t = self.targets[target]
        run: dict[str, Any] = {"target": target, "mode": mode, "connections": connections}
        with self._cpu(run):
            result = load.run_wrk(
                t.urls["stream" if mode == "stream" else "plain"],
                body_paths or [(t.bodies or self.bodies)[mode]],
                connections=connections,
                duration_s=duration,
                auth=t.auth,
                tick=tick,
            )
            run["wrk_cpu_s"] = result.wrk_cpu_s
        run.update(result.summary())
        self.check_alive()
        if target in self.ok_sent:
            self.ok_sent[target] += result.ok
            self.max_in_flight[target] += connections
        run["other_cores"] = round(run["cpu_s"]["other"] / max(result.duration_s, 1e-9), 2)
        flag = f"  ERRORS {result.errors}" if result.errors else ""
        if run["other_cores"] > CONTENDED_CORES:
            flag += f"  (other load {run['other_cores']:.2f} cores)"
        log(
            f"{target:8} {mode:6} c={connections:<3} {result.rps:10.1f} req/s  "
            f"p50 {result.latency_us['p50'] / 1000:.2f} ms  p99 "
            f"{result.latency_us['p99'] / 1000:.2f} ms{flag}"
        )
        return run

    def measured_run(self, target: str, mode: str, connections: int) -> dict[str, Any]:
        """A table run. One disturbed by other load on the machine is repeated (up to
        ``--retries`` times, after waiting for a quiet machine); the least disturbed attempt
        is kept, the others are kept in the JSON as ``discarded``."""
        attempts = [self.wrk(target, mode, connections, self.args.duration)]
        while attempts[-1]["other_cores"] > CONTENDED_CORES and len(attempts) <= self.args.retries:
            quiet = wait_quiet(CONTENDED_CORES, self._tracked_pids(), self.args.quiet_wait)
            log(f"retrying a disturbed run ({'quiet now' if quiet else 'still busy'})")
            attempts.append(self.wrk(target, mode, connections, self.args.duration))
        best = min(attempts, key=lambda run: run["other_cores"])
        discarded = [run for run in attempts if run is not best]
        return {**best, "discarded": discarded} if discarded else best

    def _tracked_pids(self) -> list[int]:
        return [pid for pids in self._groups().values() for pid in pids]

    def warm_up(self) -> None:
        seconds = 1.0 if self.args.quick else 2.0
        for target in self.target_names:
            for mode in MODES:
                run = self.wrk(target, mode, max(self.args.connections), seconds)
                self.results["warmup"].append(run)

    def measure(self) -> None:
        """Every scenario, the targets interleaved so drift touches them alike."""
        for mode in MODES:
            for connections in self.args.connections:
                for target in self.target_names:
                    self.results["runs"].append(self.measured_run(target, mode, connections))

    def measure_ttfb(self) -> None:
        out: dict[str, Any] = {}
        for name in self.target_names:
            t = self.targets[name]
            result = asyncio.run(
                ttfb.measure(
                    t.urls["stream"],
                    (t.bodies or self.bodies)["stream"].read_bytes(),
                    auth=t.auth,
                    count=self.args.ttfb_count,
                    seconds=self.args.duration,
                )
            )
            out[name] = result.summary()
            if name in self.ok_sent:
                self.ok_sent[name] += result.ok_total
            s = out[name]
            log(f"ttfb {name:8} n={s['requests']} p50 {s['p50_us']} us p99 {s['p99_us']} us")
        self.results["ttfb"] = out

    def soak(self) -> None:
        assert self.gateway is not None
        seconds = self.args.soak_seconds
        reference_at = min(60.0, seconds / 3)
        samples: list[dict[str, Any]] = []
        root = self.gateway.service.pid

        def sample(elapsed: float) -> None:
            samples.append(
                {
                    "t_s": round(elapsed, 1),
                    "rss_kb": {str(m.pid): m.rss_kb for m in procs.memories(root)},
                }
            )

        log(f"soak: gridgate, {self.args.soak_connections} connections, {seconds:.0f} s, 3:1 mix")
        sample(0.0)
        soak_bodies = self.targets["gridgate"].bodies or self.bodies
        mix = [soak_bodies["plain"]] * 3 + [soak_bodies["stream"]]
        run = self.wrk(
            "gridgate",
            "mixed",
            self.args.soak_connections,
            seconds,
            body_paths=mix,
            tick=sample,
        )
        sample(seconds)
        self.results["soak"] = {
            "seconds": seconds,
            "connections": self.args.soak_connections,
            "mix": "3 plain : 1 stream",
            "reference_at_s": reference_at,
            "run": run,
            "samples": samples,
            "roles": {str(m.pid): m.role for m in procs.memories(root)},
        }

    def profile(self) -> None:
        assert self.gateway is not None
        for mode in MODES:
            svg = self.args.results / f"{self.stem}-{mode}.svg"
            profiler = Profiler(
                self.gateway.service.pid,
                svg,
                self.workdir / f"py-spy-{mode}.log",
                rate=250,
                max_seconds=self.args.duration + 30,
            )
            entry: dict[str, Any] = {"svg": None, "error": None}
            try:
                if profiler.wait_attached():
                    entry["run"] = self.wrk(
                        "gridgate", mode, max(self.args.connections), self.args.duration
                    )
            finally:
                written = profiler.stop()
            entry["svg"] = written.name if written else None
            if written is not None:
                entry["summary"] = flame.summarize(written)
            entry["error"] = profiler.error if written is None else None
            if written is None:
                log(f"profile {mode}: {profiler.error}")
            self.results["profile"][mode] = entry

    def memory(self) -> None:
        self.results["memory"] = {
            name: [m.__dict__ for m in procs.memories(t.root_pid)]
            for name, t in self.targets.items()
        }

    # -- shutdown ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """gridgate first and gracefully (its usage writer flushes), then the rest."""
        for service in reversed(self.services):
            graceful = signal.SIGTERM if service.name != "nginx" else signal.SIGQUIT
            code = service.stop(graceful, grace=40.0)
            self.results.setdefault("exit_codes", {})[service.name] = code
            self.results.setdefault("logs", {})[service.name] = procs.scan_log(service.log_path)
        self.services.clear()

    def check_ledger(self) -> None:
        """Each gridgate target's ledger: ``ledger`` for gridgate, ``ledger_pg`` for the
        PostgreSQL one beside it."""
        for name, gateway in self.gateways.items():
            if gateway.database_url:
                ledger = ledger_check_postgres(gateway.database_url, gateway.account_id)
            else:
                ledger = ledger_check(gateway.db_path, gateway.account_id)
            ledger["database"] = self.databases[name]
            ledger["credit_nanos"] = int(CREDIT_USD) * 1_000_000_000
            ledger["ok_answers"] = self.ok_sent[name]
            ledger["max_in_flight_at_run_ends"] = self.max_in_flight[name]
            self.results["ledger" if name == "gridgate" else "ledger_pg"] = ledger


def wait_quiet(limit_cores: float, tracked: list[int], deadline_s: float) -> bool:
    """Watch the machine in one-second windows until processes other than ``tracked`` use
    less than ``limit_cores``; False when the deadline passes first."""
    deadline = time.monotonic() + deadline_s
    window = threading.Event()  # never set: its wait is the sampling window
    while time.monotonic() < deadline:
        before, cpu = procs.machine_cpu_seconds()["tasks"], procs.cpu_snapshot(tracked)
        started = time.monotonic()
        window.wait(1.0)
        spent = procs.machine_cpu_seconds()["tasks"] - before
        ours = procs.cpu_delta(cpu, procs.cpu_snapshot(tracked))
        if (spent - ours) / (time.monotonic() - started) < limit_cores:
            return True
    return False


def export_source(rev: str, into: Path) -> Path:
    """``git archive <rev> src`` unpacked into ``into``; returns the ``src`` directory."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Ctrl-C, kill and a closed terminal all stop every process this run started (SIGINT is
    # set explicitly: a shell starting this in the background would have it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = report.free_stem(args.results, datetime.now().strftime("%Y-%m-%d"))
    workdir = Path(tempfile.mkdtemp(prefix="gridgate-bench-"))
    workdir.chmod(0o755)
    bench = Bench(args, workdir, stem)
    started = time.time()
    meta = describe(REPO, nginx_binary(), load.wrk_binary(), args.rev)
    meta["command"] = shlex.join(["bench/run", *(sys.argv[1:] if argv is None else argv)])
    meta["settings"] = {
        "duration_s": args.duration,
        "soak_seconds": args.soak_seconds,
        "quick": args.quick,
        "connections": args.connections,
        "soak_connections": args.soak_connections,
        "workers": args.workers,
        "nginx_workers": args.nginx_workers,
        "wrk_threads": 1,
        "profile": args.profile,
        "retries": args.retries,
        "targets": bench.target_names,
        "databases": bench.databases,
        "surface": args.surface,
        "limits": args.limits,
        "redis_client": args.redis_client,
        "auth_cache_seconds": args.auth_cache_seconds,
    }
    meta["started"] = datetime.now().isoformat(timespec="seconds")
    bench.results["meta"] = meta
    completed = interrupted = False
    try:
        bench.start()
        bench.smoke()
        log("warm-up")
        bench.warm_up()
        bench.measure()
        bench.measure_ttfb()
        bench.soak()
        if args.profile:
            bench.profile()
        bench.memory()
        completed = True
    except KeyboardInterrupt as exc:
        log(f"interrupted ({str(exc) or 'Ctrl-C'}); stopping every process, no report")
        interrupted = True
    except BaseException:
        log("failed; stopping every process")
        for service in bench.services:
            tail = service.log_tail(15)
            if tail:
                print(f"--- {service.name} log tail ---\n{tail}", file=sys.stderr)
        raise
    finally:
        # a second Ctrl-C must not cut the clean-up short (each stop is bounded)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            bench.stop()
            if completed:
                bench.check_ledger()  # after the gateway stopped: its usage writer flushed
        finally:
            bench.drop_databases()
            if args.keep_temp:
                log(f"temp dir kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    meta["finished"] = datetime.now().isoformat(timespec="seconds")
    meta["wall_seconds"] = round(time.time() - started, 1)
    md, js = report.write(bench.results, args.results, stem)
    log(f"report: {_shown(md)} and {_shown(js)}")
    print(md.read_text())
    return 0


def _shown(path: Path) -> Path:
    """``path`` as the report line shows it: under the repository when it is (``--results`` may
    be relative to the working directory, or elsewhere)."""
    path = path.resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


if __name__ == "__main__":
    raise SystemExit(main())
