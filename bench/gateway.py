"""gridgate under test: a generated config (two bench instruments, two suppliers on the fake
upstream, SQLite in a temp dir), a funded account and a key, ``gridgate serve``, and the
post-run ledger sanity read straight from the SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import Service, wait_listening

INSTRUMENTS = ("bench-plain", "bench-stream")
CREDIT_USD = "1000000"


@dataclass(frozen=True)
class Gateway:
    service: Service
    config: Path
    db_path: Path
    account_id: str
    key: str
    port: int
    worker_pids: list[int]


def config_toml(data_dir: Path, port: int, upstream: str, workers: int) -> str:
    parts = [
        f'data_dir = "{data_dir}"',
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"workers = {workers}                       # one worker process per core",
        "access_log = false",
        "",
    ]
    for name in INSTRUMENTS:
        kind = name.split("-", 1)[1]
        parts += [
            "[[instruments]]",
            f'id = "{name}"',
            f'display_name = "Bench {kind}"',
            "context_length = 32000",
            "max_input_tokens = 28000",
            "max_completion_tokens = 4096",
            "",
            "[[suppliers]]",
            f'name = "{name}"',
            'wire = "openai"',
            f'base_url = "{upstream}/{kind}/v1"',
            "",
            "[[offers]]",
            f'supplier = "{name}"',
            f'instrument = "{name}"',
            'model = "bench-model"',
            'input_usd_per_m = "0.10"',
            'output_usd_per_m = "0.40"',
            "quality = 50",
            "context = 32000",
            "max_output = 4096",
            'capabilities = ["tools", "json_schema", "logprobs", "vision"]',
            "",
        ]
    return "\n".join(parts)


def _cli(
    command: Sequence[str], env: Mapping[str, str] | None, config: Path, *args: str
) -> dict[str, Any]:
    done = subprocess.run(
        [*command, "--config", str(config), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(env) if env is not None else None,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gridgate {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_gateway(
    command: Sequence[str],
    env: Mapping[str, str] | None,
    workdir: Path,
    port: int,
    upstream: str,
    workers: int,
) -> Gateway:
    """``command`` runs the gridgate CLI (``.venv/bin/gridgate``, or ``python -m gridgate``
    with ``PYTHONPATH`` in ``env`` naming an exported source tree)."""
    data_dir = workdir / "gridgate-data"
    config = workdir / "gridgate.toml"
    config.write_text(config_toml(data_dir, port, upstream, workers))
    _cli(command, env, config, "migrate")
    account = _cli(command, env, config, "accounts", "create", "--name", "bench")
    _cli(
        command,
        env,
        config,
        "accounts",
        "credit",
        account["id"],
        CREDIT_USD,
        "--idempotency-key",
        "bench-credit",
    )
    key = _cli(
        command, env, config, "keys", "create", "--account", account["id"], "--name", "bench"
    )
    service = Service(
        "gridgate", [*command, "--config", str(config), "serve"], workdir / "gridgate.log", env=env
    )
    pids = wait_listening(service, port, workers, deadline_s=60)
    return Gateway(
        service=service,
        config=config,
        db_path=data_dir / "gridgate.db",
        account_id=account["id"],
        key=key["key"],
        port=port,
        worker_pids=pids,
    )


def ledger_check(db_path: Path, account_id: str) -> dict[str, Any]:
    """Read once the gateway has stopped (its usage writer flushed): usage records, balance,
    the ledger's sum, holds by status."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        records = db.execute("SELECT count(*) FROM usage_records").fetchone()[0]
        by_outcome = db.execute(
            "SELECT outcome, status, stream, count(*) FROM usage_records "
            "GROUP BY outcome, status, stream ORDER BY 4 DESC"
        ).fetchall()
        billed = db.execute(
            "SELECT count(*), coalesce(sum(cost), 0), coalesce(sum(input_tokens), 0), "
            "coalesce(sum(output_tokens), 0) FROM usage_records WHERE billed"
        ).fetchone()
        balance = db.execute("SELECT balance FROM accounts WHERE id = ?", (account_id,)).fetchone()[
            0
        ]
        ledger_sum = db.execute(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = ?",
            (account_id,),
        ).fetchone()[0]
        holds = db.execute("SELECT status, count(*) FROM holds GROUP BY status").fetchall()
        recorded = db.execute("SELECT coalesce(sum(cost), 0) FROM usage_records").fetchone()[0]
        # informational: a hold (or lease) no usage record points at
        unrecorded = db.execute(
            "SELECT count(*), coalesce(sum(h.charged), 0) FROM holds h WHERE NOT EXISTS "
            "(SELECT 1 FROM usage_records u WHERE u.hold_id = h.id)"
        ).fetchone()
    return {
        "usage_records": records,
        "usage_by_outcome": [
            {"outcome": o, "status": s, "stream": bool(st), "count": n}
            for o, s, st, n in by_outcome
        ],
        "billed_records": billed[0],
        "billed_nanos": billed[1],
        "billed_input_tokens": billed[2],
        "billed_output_tokens": billed[3],
        "balance_nanos": balance,
        "ledger_sum_nanos": ledger_sum,
        "holds_by_status": dict(holds),
        "recorded_cost_nanos": recorded,
        "holds_without_record": unrecorded[0],
        "holds_without_record_charged_nanos": unrecorded[1],
    }
