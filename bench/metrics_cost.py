"""What the metrics hooks cost per request: N requests' ``observe_http`` + ``observe_usage`` (an
ok, served, billed record) and the flushes an upkeep tick would do (one every ``--per-flush``
requests), in prometheus_client's multiprocess mode (its values in a temporary directory).

    .venv/bin/python bench/metrics_cost.py [-n 100000] [--per-flush 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = """
import sys, time
from gridgate.metrics import Metrics
from gridgate.storage.records import UsageRecord

n, per_flush = int(sys.argv[1]), int(sys.argv[2])
metrics = Metrics(multiprocess=True)
record = UsageRecord(
    request_id="req_1", created_us=1, account_id="acct_1", key_id="key_1",
    instrument="text-prime", supplier="sim-a", offer_id="sim-a/text-prime/m",
    upstream_model="m", stream=False, input_tokens=12, output_tokens=30, cost=1_234,
    duration_us=250_000,
)
http, usage, flush = metrics.observe_http, metrics.observe_usage, metrics.flush
for _ in range(1000):  # the label children exist, as after a worker's first requests
    http("/v1/chat/completions", "POST", 200, 0.0123)
    usage(record)
flush()
spent = {"hooks": 0.0, "flush": 0.0}
clock = time.perf_counter
done = 0
while done < n:
    batch = min(per_flush, n - done)
    started = clock()
    for i in range(batch):
        http("/v1/chat/completions", "POST", 200, 0.0123)
        usage(record)
    middle = clock()
    flush()
    spent["hooks"] += middle - started
    spent["flush"] += clock() - middle
    done += batch
hooks, flushes = spent["hooks"] / n * 1e6, spent["flush"] / n * 1e6
print(f"{n} requests, a flush every {per_flush}: hooks {hooks:.2f} µs + flush {flushes:.2f} µs "
      f"= {hooks + flushes:.2f} µs per request")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--per-flush", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        # the mode is picked when prometheus_client is imported: a fresh interpreter
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        command = [sys.executable, "-c", CHILD, str(args.n), str(args.per_flush)]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
