"""``gridgate offers status`` as a separate process: usage records written through the store,
as gateway processes write them, read back as each offer's figures against its spec."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from gridgate.storage.records import UsageRecord
from gridgate.storage.sql import SqlStore
from tests.harness import run_cli

CONFIG = """
[[instruments]]
id = "text-prime"
display_name = "Text Prime"
quality_floor = 38
ttft_ceiling_ms = 4620
throughput_floor_tps = 40
context_length = 196608
max_input_tokens = 120000
max_completion_tokens = 131072
bill_out_of_spec = true

[[suppliers]]
name = "sim-a"
base_url = "http://127.0.0.1:9/v1"

[[suppliers]]
name = "sim-b"
base_url = "http://127.0.0.1:9/v1"

[[offers]]
id = "sim-a/prime"
supplier = "sim-a"
instrument = "text-prime"
model = "fast"
input_usd_per_m = "1"
output_usd_per_m = "2"
quality = 40
context = 196608
max_output = 131072

[[offers]]
id = "sim-b/prime"
supplier = "sim-b"
instrument = "text-prime"
model = "slow"
input_usd_per_m = "0.5"
output_usd_per_m = "1"
quality = 40
context = 196608
max_output = 131072

[[offers]]
id = "sim-b/standard"
supplier = "sim-b"
instrument = "text-standard"
model = "idle"
input_usd_per_m = "0.5"
output_usd_per_m = "1"
quality = 20
context = 128000
max_output = 16000
"""


def _record(n: int, offer_id: str, ago_s: float, **kw: Any) -> UsageRecord:
    fields: dict[str, Any] = {
        "stream": True,
        "output_tokens": 101,
        "outcome": "ok",
        **kw,
    }
    return UsageRecord(
        request_id=f"req-{offer_id}-{n}",
        created_us=time.time_ns() // 1000 - int(ago_s * 1_000_000),
        account_id="acct_x",
        key_id="key_x",
        instrument="text-prime",
        supplier=offer_id.split("/")[0],
        offer_id=offer_id,
        upstream_model="m",
        **fields,
    )


def _write_usage(data_dir: Path, records: list[UsageRecord]) -> None:
    async def write() -> None:
        async with SqlStore(f"sqlite:///{data_dir / 'gridgate.db'}") as store:
            await store.insert_usage(records)

    asyncio.run(write())


def _status(data_dir: Path, config: Path, *extra: str) -> Any:
    done = run_cli("offers", "status", "--config", str(config), *extra, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done


def test_offers_status_shows_each_offers_figures_against_its_spec(tmp_path: Path) -> None:
    config = tmp_path / "gridgate.toml"
    config.write_text(CONFIG)
    records = [
        # sim-a: ten fast streamed answers (TTFT 200…1100 ms, 100 tokens after the first in 1 s)
        *(
            _record(i, "sim-a/prime", 10 + i, ttft_us=200_000 + i * 100_000, generation_us=10**6)
            for i in range(10)
        ),
        _record(10, "sim-a/prime", 5, outcome="in_progress", ttft_us=9_000_000),  # a checkpoint
        _record(11, "sim-a/prime", 5, outcome="cancelled", ttft_us=9_000_000),  # caller left
        # sim-b: late first tokens (billed as out of spec), one stream broken, one old record
        *(
            _record(
                i,
                "sim-b/prime",
                20,
                ttft_us=6_000_000,
                generation_us=2 * 10**6,
                in_spec=False,
                spec_note="first token after 6000 ms > ceiling 4620 ms",
            )
            for i in range(3)
        ),
        _record(3, "sim-b/prime", 20, outcome="stream_error", status=502, ttft_us=1_000_000),
        _record(4, "sim-b/prime", 1_000, ttft_us=100_000, generation_us=10**6),  # long ago
    ]
    _write_usage(tmp_path, records)

    statuses = json.loads(_status(tmp_path, config, "--json").stdout)
    assert [s["offer_id"] for s in statuses] == ["sim-a/prime", "sim-b/prime", "sim-b/standard"]
    fast, slow, idle = statuses
    assert fast == {
        "offer_id": "sim-a/prime",
        "supplier": "sim-a",
        "instrument": "text-prime",
        "model": "fast",
        "enabled": True,
        "spec": {"ttft_ceiling_ms": 4620, "throughput_floor_tps": 40.0, "bill_out_of_spec": True},
        "deliveries": 10,
        "failures": 0,
        "error_rate": 0.0,
        "ttft_samples": 10,
        "ttft_p50_ms": 600.0,
        "ttft_p90_ms": 1000.0,
        "throughput_samples": 10,
        "throughput_p50_tps": 100.0,
        "in_spec_fraction": 1.0,
        "verdict": "in spec",
        "breaches": [],
    }
    assert (slow["deliveries"], slow["failures"], slow["error_rate"]) == (4, 1, 0.25)
    assert (slow["ttft_p50_ms"], slow["ttft_p90_ms"], slow["throughput_p50_tps"]) == (
        6000.0,
        6000.0,
        50.0,
    )
    assert slow["in_spec_fraction"] == 0.0
    assert slow["verdict"] == ("out of spec: p90 TTFT 6000 ms > ceiling 4620 ms over 4 deliveries")
    assert idle["spec"] == {
        "ttft_ceiling_ms": 1320,
        "throughput_floor_tps": 100.0,
        "bill_out_of_spec": False,
    }
    assert (idle["deliveries"], idle["verdict"]) == (0, "not measured")

    # a wider window takes in sim-b's old record
    wide = json.loads(_status(tmp_path, config, "--json", "--window-seconds", "2000").stdout)
    assert wide[1]["deliveries"] == 5

    table = _status(tmp_path, config).stdout.splitlines()
    assert table[0] == (
        "offer status over the last 300 s, from the usage records of every gateway process"
    )
    assert table[1].split() == [
        "offer",
        "deliveries",
        "errors",
        "ttft",
        "p50/p90",
        "ms",
        "tok/s",
        "p50",
        "in",
        "spec",
        "verdict",
    ]
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"sim-a/prime", "sim-b/prime", "sim-b/standard"}
    assert rows["sim-a/prime"].split() == [
        "sim-a/prime",
        "10",
        "0%",
        "600/1000",
        "(≤4620)",
        "100.0",
        "(≥40)",
        "100%",
        "in",
        "spec",
    ]
    assert "25%" in rows["sim-b/prime"]
    assert rows["sim-b/prime"].endswith(
        "out of spec: p90 TTFT 6000 ms > ceiling 4620 ms over 4 deliveries"
    )
    assert rows["sim-b/standard"].split()[1:3] == ["0", "-"]
    assert rows["sim-b/standard"].endswith("not measured")


def test_offers_status_refuses_a_window_that_is_not_a_positive_time(tmp_path: Path) -> None:
    for bad in ("0", "-5", "nan", "inf"):
        done = run_cli("offers", "status", "--window-seconds", bad, data_dir=tmp_path)
        assert (
            done.returncode == 2
            and "--window-seconds must be a positive, finite number" in done.stderr
        )
    empty = run_cli("offers", "status", "--json", data_dir=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == []  # the embedded defaults name no offers
