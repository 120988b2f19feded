"""A real ``gridgate serve --workers 2`` supervising its workers: a worker killed with SIGKILL is
logged at once, /readyz answers 503 naming the workers until it is restarted, requests are
served throughout, /metrics counts the restart; a worker that dies again at every start is given
up on and the server stops with status 1."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    run_cli,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

OFFERS = [Offer("sim-a", "text-prime", "sim/a", "0.10", "0.40", 40, 196_608, 131_072)]
JSON_LOGS = '[logging]\nformat = "json"\nlevel = "INFO"\n'
QUICK = {
    "model": "text-prime",
    "max_tokens": 4,
    "messages": [{"role": "user", "content": "hi [[sim:mode=slow,tokens_per_second=100000]]"}],
}


def worker_pids(parent: int) -> set[int]:
    """The live worker processes of ``parent`` (not its resource tracker, not a zombie)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            pids.add(int(stat.parent.name))
    return pids


def log_lines(gw: GatewayProcess) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in gw.log_path.read_text().splitlines()
        if line.startswith("{") and line.endswith("}")
    ]


def ready(gw: GatewayProcess) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gw.base_url.removesuffix('/v1')}/readyz", timeout=5)
    return response.status_code, response.json()


def serve_one(gw: GatewayProcess, secret: str) -> None:
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        json=QUICK,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def scrape(gw: GatewayProcess) -> dict[str, float]:
    response = httpx.get(f"{gw.base_url.removesuffix('/v1')}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith(("gridgate_worker", "gridgate_workers"))
    }


@pytest.fixture
def two_workers(bg: BackgroundLoop, tmp_path: Path) -> Iterator[GatewayProcess]:
    with simulators(bg, ["sim-a"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {"sim-a": sims["sim-a"].base_url},
            OFFERS,
            extra_config=JSON_LOGS,
            workers=2,
            server="worker_restart_limit = 3\n",
        )
        try:
            yield gw
        finally:
            if gw.process.returncode is None:
                stop_gateway(gw)
            else:  # the test saw it end
                gw.run(gw.store.close())
                if gw.process.stdout is not None:
                    gw.process.stdout.close()


def test_a_killed_worker_is_logged_restarted_and_visible(two_workers: GatewayProcess) -> None:
    gw = two_workers
    _, secret = gw.new_account("5")
    status, body = ready(gw)
    assert (status, body["checks"]["workers"]) == (200, "ok")
    assert scrape(gw) == {
        "gridgate_workers_expected": 2,
        "gridgate_workers_serving": 2,
        "gridgate_worker_restarts_total": 0,
        "gridgate_workers_given_up": 0,
    }
    pids = wait_until(lambda: len(p := worker_pids(gw.process.pid)) == 2 and p)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()

    # the death is logged at once, with the worker, its pid and the signal
    death = wait_until(
        lambda: next((r for r in log_lines(gw) if r.get("pid") == victim), None), timeout=2
    )
    assert time.monotonic() - killed < 2
    assert death["level"] == "ERROR" and death["signal"] == "SIGKILL"
    assert death["worker"] in (0, 1) and death["exit_code"] is None
    assert "restarting it in 0.5 s" in death["msg"]

    # /readyz says so until the worker serves again; requests are served meanwhile
    seen: set[tuple[int, str]] = set()

    def back() -> bool:
        serve_one(gw, secret)
        status, body = ready(gw)
        seen.add((status, body["checks"]["workers"]))
        if status == 503:
            assert body["failing"] == ["workers"]
        return status == 200 and len(worker_pids(gw.process.pid)) == 2

    wait_until(back, timeout=30)
    assert (503, "1 of 2 serving") in seen
    assert (200, "ok") in seen
    restarted = worker_pids(gw.process.pid)
    assert victim not in restarted and len(restarted - pids) == 1
    assert any(
        r.get("worker") == death["worker"] and "serving again" in r["msg"] for r in log_lines(gw)
    )
    for _ in range(4):  # either worker may answer: both count the same
        assert scrape(gw) == {
            "gridgate_workers_expected": 2,
            "gridgate_workers_serving": 2,
            "gridgate_worker_restarts_total": 1,
            "gridgate_workers_given_up": 0,
        }
    serve_one(gw, secret)

    # SIGTERM still stops every worker, and none is restarted
    gw.process.terminate()
    assert gw.process.wait(30) == 0
    assert not worker_pids(gw.process.pid)
    assert [r["pid"] for r in log_lines(gw) if "died" in r["msg"]] == [victim]


def test_a_worker_that_dies_at_every_start_is_given_up(two_workers: GatewayProcess) -> None:
    gw = two_workers
    pids = wait_until(lambda: len(p := worker_pids(gw.process.pid)) == 2 and p)
    # the workers' shared metrics directory goes away: a worker started now fails at startup
    environ = Path(f"/proc/{min(pids)}/environ").read_bytes().split(b"\0")
    [directory] = [
        v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]
    for path in Path(directory.decode()).iterdir():
        path.unlink()
    Path(directory.decode()).rmdir()
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)

    # killed once, then two failed starts: three deaths within the window, so no fourth start
    code = gw.process.wait(30)
    assert code == 1
    records = log_lines(gw)
    deaths = [r for r in records if r.get("deaths_in_window") is not None]
    assert [r["level"] for r in deaths] == ["ERROR", "ERROR", "CRITICAL"]
    assert {r["worker"] for r in deaths} == {deaths[0]["worker"]}
    assert deaths[0]["signal"] == "SIGKILL"
    assert [r["exit_code"] for r in deaths[1:]] == [1, 1]
    assert "not restarting it" in deaths[-1]["msg"]
    assert deaths[-1]["deaths_in_window"] == 3
    assert not worker_pids(gw.process.pid)


def test_a_worker_that_cannot_start_stops_the_server_at_once(tmp_path: Path) -> None:
    """The port is taken (by a socket that does not share it): the workers cannot listen, so
    the server says which one failed and exits 1, restarting nothing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            *("serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)),
            data_dir=tmp_path,
        )
    assert done.returncode == 1
    assert "gridgate: gridgate-worker-0 failed to start" in done.stderr
    assert "died" not in done.stderr
