"""Metrics: the families and their labels, what a usage record adds, and the multiprocess mode
(several workers' files summed by whichever process renders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridgate.metrics import Metrics
from gridgate.storage.records import UsageRecord

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROOT = Path(__file__).resolve().parents[1]


def samples(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def record(**kw: object) -> UsageRecord:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "created_us": 1,
        "account_id": "acct_1",
        "key_id": "key_1",
        "instrument": "text-prime",
        "supplier": "sim-a",
        "offer_id": "sim-a/text-prime/m",
        "upstream_model": "m",
        "stream": False,
        "input_tokens": 12,
        "output_tokens": 30,
        "cost": 1_234,
        "duration_us": 250_000,
    }
    fields.update(kw)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def test_every_family_is_exposed_with_its_type() -> None:
    families = {
        f.name: f.type
        for f in text_string_to_metric_families(Metrics().render()[0].decode())
        if not f.name.endswith("_created")  # the creation time of an unlabelled counter
    }
    assert families == {
        "gridgate_http_requests": "counter",
        "gridgate_http_request_duration_seconds": "histogram",
        "gridgate_requests": "counter",
        "gridgate_request_duration_seconds": "histogram",
        "gridgate_ttft_seconds": "histogram",
        "gridgate_upstream_duration_seconds": "histogram",
        "gridgate_tokens": "counter",
        "gridgate_spend_nanodollars": "counter",
        "gridgate_rate_limited": "counter",
        "gridgate_rate_limiter_errors": "counter",
        "gridgate_holds_outstanding": "gauge",
        "gridgate_usage_queue_depth": "gauge",
        "gridgate_leases_open": "gauge",
        "gridgate_usage_spooled_records": "gauge",
        "gridgate_database_unreachable": "gauge",
    }


def test_usage_records_count_requests_tokens_spend_and_latencies() -> None:
    metrics = Metrics()
    metrics.observe_usage(record())
    metrics.observe_usage(record(stream=True, ttft_us=400_000, cost=66, output_tokens=5))
    # a stream's checkpoint is not a request: only its final record counts
    metrics.observe_usage(record(outcome="in_progress", cost=10**9))
    # a failure nobody served: a request, no supplier, nothing billed
    metrics.observe_usage(
        record(
            supplier=None,
            offer_id=None,
            input_tokens=0,
            output_tokens=0,
            cost=0,
            billed=False,
            outcome="upstream_error",
            status=502,
        )
    )
    # served but not billed (out of spec): tokens count, spend does not
    metrics.observe_usage(record(billed=False, cost=0, input_tokens=1, output_tokens=1))
    found = samples(metrics)
    ok = {"instrument": "text-prime", "status": "200", "outcome": "ok"}
    assert value(found, "gridgate_requests_total", **ok) == 3
    failed = {"instrument": "text-prime", "status": "502", "outcome": "upstream_error"}
    assert value(found, "gridgate_requests_total", **failed) == 1
    pair = {"instrument": "text-prime", "supplier": "sim-a"}
    assert value(found, "gridgate_tokens_total", **pair, direction="input") == 12 + 12 + 1
    assert value(found, "gridgate_tokens_total", **pair, direction="output") == 30 + 5 + 1
    assert value(found, "gridgate_spend_nanodollars_total", **pair) == 1_234 + 66
    assert value(found, "gridgate_ttft_seconds_count", supplier="sim-a") == 1
    assert value(found, "gridgate_ttft_seconds_sum", supplier="sim-a") == pytest.approx(0.4)
    assert value(found, "gridgate_upstream_duration_seconds_count", supplier="sim-a") == 3
    duration = {"instrument": "text-prime"}
    assert value(found, "gridgate_request_duration_seconds_count", **duration) == 4
    assert value(found, "gridgate_request_duration_seconds_sum", **duration) == pytest.approx(1.0)
    assert value(found, "gridgate_request_duration_seconds_bucket", **duration, le="0.25") == 4


def test_http_labels_stay_bounded() -> None:
    metrics = Metrics()
    metrics.observe_http("/v1/chat/completions", "POST", 200, 0.02)
    metrics.observe_http("/v1/chat/completions", "POST", 200, 0.03)
    metrics.observe_http("other", "BREW", 404, 0.001)  # a made-up method is "other"
    found = samples(metrics)
    chat = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    assert value(found, "gridgate_http_requests_total", **chat) == 2
    assert value(found, "gridgate_http_requests_total", route="other", method="other", status="404")
    assert (
        value(found, "gridgate_http_request_duration_seconds_count", route="/v1/chat/completions")
        == 2
    )
    assert not any(dict(labels).get("method") == "BREW" for _, labels in found)


def test_rate_limits_and_gauges() -> None:
    metrics = Metrics()
    metrics.rate_limited("key", "requests")
    metrics.rate_limited("key", "requests")
    metrics.rate_limited("account", "tokens")
    metrics.limiter_error()
    metrics.set_gauges(holds=3, queue=7, leases=2)
    found = samples(metrics)
    assert value(found, "gridgate_rate_limited_total", scope="key", kind="requests") == 2
    assert value(found, "gridgate_rate_limited_total", scope="account", kind="tokens") == 1
    assert value(found, "gridgate_rate_limiter_errors_total") == 1
    assert value(found, "gridgate_holds_outstanding") == 3
    assert value(found, "gridgate_usage_queue_depth") == 7
    assert value(found, "gridgate_leases_open") == 2


def test_instances_do_not_share_values() -> None:
    one, two = Metrics(), Metrics()
    one.limiter_error()
    assert value(samples(two), "gridgate_rate_limiter_errors_total") == 0


def test_multiprocess_without_its_directory_is_refused() -> None:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        pytest.skip("this process runs in multiprocess mode")
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess=True)


def observe_in_worker(requests: int, holds: int, done_path: str) -> None:
    """A spawned worker: what it observes lands in the shared directory."""
    metrics = Metrics(multiprocess=True)
    for _ in range(requests):
        metrics.observe_usage(record())
        metrics.observe_http("/v1/chat/completions", "POST", 200, 0.01)
    metrics.flush()  # as the worker's upkeep tick does
    metrics.set_gauges(holds=holds, queue=0, leases=1)
    Path(done_path).write_text("done")


# the parent of the workers, as gridgate serve is: prepare, spawn, join, render, worker_exit
PARENT = """
import json, multiprocessing, sys
from gridgate.metrics import Metrics, prepare_multiprocess, worker_exit
from tests.test_metrics import observe_in_worker, samples, value

directory = sys.argv[1]
prepare_multiprocess(directory)
context = multiprocessing.get_context("spawn")
workers = [
    context.Process(target=observe_in_worker, args=(n, 10 * n, f"{directory}/done-{n}"))
    for n in (3, 4)
]
for w in workers:
    w.start()
for w in workers:
    w.join()
    assert w.exitcode == 0
view = Metrics(multiprocess=True)
before = samples(view)
worker_exit(workers[0].pid)
after = samples(view)
ok = {"instrument": "text-prime", "status": "200", "outcome": "ok"}
print(json.dumps({
    "requests": value(before, "gridgate_requests_total", **ok),
    "http": value(before, "gridgate_http_requests_total",
                  route="/v1/chat/completions", method="POST", status="200"),
    "spend": value(before, "gridgate_spend_nanodollars_total",
                   instrument="text-prime", supplier="sim-a"),
    "holds_before": value(before, "gridgate_holds_outstanding"),
    "holds_after": value(after, "gridgate_holds_outstanding"),
    "requests_after": value(after, "gridgate_requests_total", **ok),
}))
"""


def test_multiprocess_sums_every_worker_and_forgets_the_gauges_of_ended_ones(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, str(tmp_path / "metrics")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["requests"] == 3 + 4
    assert found["http"] == 3 + 4
    assert found["spend"] == (3 + 4) * 1_234
    assert found["holds_before"] == 30 + 40  # live gauges summed across workers
    assert found["holds_after"] == 40  # the ended worker's no longer counts
    assert found["requests_after"] == 3 + 4  # its counters do: totals never go back


# -- the aggregated writes against plain observe/inc calls ---------------------------------------
# Requests only add to in-process aggregates; a flush writes them through the histogram
# children's bucket and sum values (prometheus_client has no "observe n values at once"). These
# tests replay the same calls through the library's own observe/inc, as gridgate did before, and
# want the same exposition byte for byte: an upgrade that changes those internals fails here.

Call = tuple[str, tuple[object, ...]]
FLUSH: Call = ("flush", ())


def calls() -> list[Call]:
    """Every hook, values on bucket bounds, between them, beyond the last (+Inf), sums that
    are not exact in binary, and flushes in between."""
    seconds = [0.0, 0.005, 0.0050001, 0.1, 0.2, 0.3, 0.7, 2.5, 600.0, 600.5, 1e6, 0.1, 0.1]
    micros = [0, 5_000, 5_001, 100_000, 200_000, 300_000, 250_000, 600_000_000, 601_000_000]
    out: list[Call] = []
    for n, s in enumerate(seconds):
        out.append(("http", ("/v1/chat/completions", "POST", 200, s)))
        out.append(("http", ("/v1/chat/completions", "BREW", 404 if n % 2 else 200, s / 3)))
        out.append(("http", ("/metrics", "GET", 200, s * 7)))
        if n % 4 == 3:
            out.append(FLUSH)
    for n, us in enumerate(micros):
        out.append(("usage", (record(duration_us=us),)))
        out.append(("usage", (record(stream=True, ttft_us=us // 2 + 1, duration_us=us + 3),)))
        out.append(("usage", (record(supplier="sim-b", cost=n, output_tokens=n, duration_us=us),)))
        out.append(("usage", (record(supplier=None, status=502, outcome="upstream_error"),)))
        out.append(("limited", ("key", "requests" if n % 3 else "tokens")))
        if n % 3 == 2:
            out.append(FLUSH)
            out.append(("limiter_error", ()))
    return out


def run_hooks(metrics: Metrics, sequence: list[Call]) -> None:
    for name, args in sequence:
        if name == "http":
            metrics.observe_http(*args)  # type: ignore[arg-type]
        elif name == "usage":
            metrics.observe_usage(*args)  # type: ignore[arg-type]
        elif name == "limited":
            metrics.rate_limited(*args)  # type: ignore[arg-type]
        elif name == "limiter_error":
            metrics.limiter_error()
        else:
            metrics.flush()
    metrics.flush()


def run_plain(metrics: Metrics, sequence: list[Call]) -> None:
    """The same calls as plain observe/inc on the families, children made when first seen."""
    m = metrics
    for name, args in sequence:
        if name == "http":
            route, method, status, seconds = args
            label = method if method in {"GET", "POST"} else "other"
            m._http_requests.labels(route, label, str(status)).inc()
            m._http_duration.labels(route).observe(seconds)  # type: ignore[arg-type]
        elif name == "usage":
            run_plain_usage(m, args[0])  # type: ignore[arg-type]
        elif name == "limited":
            m._rate_limited.labels(*args).inc()
        elif name == "limiter_error":
            m._limiter_errors.inc()


def run_plain_usage(m: Metrics, r: UsageRecord) -> None:
    duration = r.duration_us / 1_000_000
    if r.supplier is not None:  # the supplier's children first, as gridgate made them
        upstream, ttft = m._upstream_duration.labels(r.supplier), m._ttft.labels(r.supplier)
        tokens_in = m._tokens.labels(r.instrument, r.supplier, "input")
        tokens_out = m._tokens.labels(r.instrument, r.supplier, "output")
        spend = m._spend.labels(r.instrument, r.supplier)
    m._requests.labels(r.instrument, str(r.status), r.outcome).inc()
    m._request_duration.labels(r.instrument).observe(duration)
    if r.supplier is None:
        return
    upstream.observe(duration)
    if r.ttft_us is not None and r.stream:
        ttft.observe(r.ttft_us / 1_000_000)
    if r.input_tokens:
        tokens_in.inc(r.input_tokens)
    if r.output_tokens:
        tokens_out.inc(r.output_tokens)
    if r.billed and r.cost > 0:
        spend.inc(r.cost)


def exposition(metrics: Metrics) -> bytes:
    body = metrics.render()[0]
    # a child's creation time differs between two runs; everything else must not
    return b"".join(
        line
        for line in body.splitlines(True)
        if not line.split(b" ")[0].split(b"{")[0].endswith(b"_created")
    )


def test_aggregated_writes_expose_what_plain_observations_do() -> None:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        pytest.skip("this process runs in multiprocess mode")
    hooks, plain = Metrics(), Metrics()
    run_hooks(hooks, calls())
    run_plain(plain, calls())
    ours = exposition(hooks)
    assert b'gridgate_http_request_duration_seconds_bucket{le="+Inf"' in ours
    assert ours == exposition(plain)


def expose_in_multiprocess(how: str) -> None:
    """A process in multiprocess mode (its own directory): run the calls, print the exposition."""
    metrics = Metrics(multiprocess=True)
    (run_hooks if how == "hooks" else run_plain)(metrics, calls())
    sys.stdout.buffer.write(exposition(metrics))


def test_aggregated_writes_expose_what_plain_observations_do_in_multiprocess_mode(
    tmp_path: Path,
) -> None:
    found = {}
    for how in ("hooks", "plain"):
        directory = tmp_path / how
        directory.mkdir()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from tests.test_metrics import expose_in_multiprocess as e; e({how!r})",
            ],
            cwd=ROOT,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        found[how] = done.stdout
    assert b'gridgate_ttft_seconds_bucket{le="+Inf",supplier="sim-a"}' in found["hooks"]
    # the collector orders families by the files it globs: the same lines, in any order
    assert sorted(found["hooks"].splitlines()) == sorted(found["plain"].splitlines())


def test_a_worker_starts_while_another_creates_its_file(tmp_path: Path) -> None:
    """Workers start together: one's file can exist, still empty, while another builds its
    Metrics, which must not read it then."""
    (tmp_path / "counter_1.db").touch()  # created, not yet sized by its process
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", "from gridgate.metrics import Metrics; Metrics(multiprocess=True)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
