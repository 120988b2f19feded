"""gridgate under test: a generated config (two bench instruments, two suppliers on the fake
upstream, SQLite in a temp dir or a fresh PostgreSQL database), a funded account and a key,
``gridgate serve``, and the post-run ledger sanity read straight from the database (the SQLite
file, or PostgreSQL with ``psql``)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Callable, Mapping, Sequence
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
    db_path: Path  # the SQLite file (unused when ``database_url`` is set)
    database_url: str | None  # a PostgreSQL URL, or None for SQLite
    account_id: str
    key: str
    port: int
    worker_pids: list[int]


# limits the benchmark never reaches: every request is checked and counted, none refused
UNREACHED_LIMITS = (
    "[limits.key]",
    "requests_per_minute = 1000000000",
    "tokens_per_minute = 1000000000000",
    "concurrent = 1000000",
    "[limits.account]",
    "tokens_per_minute = 1000000000000",
    "",
)


def config_toml(
    data_dir: Path,
    port: int,
    upstream: str,
    workers: int,
    database_url: str | None = None,
    *,
    limits: str = "off",
    redis_url: str = "",
    redis_client: str | None = None,
    auth_cache_seconds: float | None = None,
) -> str:
    """``limits``: ``off`` (no rate limits, as revisions before them), ``memory`` (checked in
    each worker) or ``redis`` (checked on ``redis_url``: one Lua round trip per request)."""
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
    if database_url:
        parts += ["[database]", f'url = "{database_url}"', ""]
    if auth_cache_seconds is not None:  # else gridgate's default
        parts += ["[auth]", f"cache_seconds = {auth_cache_seconds:g}", ""]
    if limits != "off":
        parts += list(UNREACHED_LIMITS)
    if limits == "redis":
        namespace = f"bench{port}"
        parts += ["[redis]", f'url = "{redis_url}"', f'namespace = "{namespace}"']
        if redis_client:  # written only when asked: revisions before the setting refuse it
            parts.append(f'client = "{redis_client}"')
        parts.append("")
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
    *,
    name: str = "gridgate",
    database_url: str | None = None,
    limits: str = "off",
    redis_url: str = "",
    redis_client: str | None = None,
    auth_cache_seconds: float | None = None,
) -> Gateway:
    """``command`` runs the gridgate CLI (``.venv/bin/gridgate``, or ``python -m gridgate``
    with ``PYTHONPATH`` in ``env`` naming an exported source tree). ``name`` names its files
    in ``workdir``; ``database_url`` (PostgreSQL) replaces the SQLite file."""
    data_dir = workdir / f"{name}-data"
    config = workdir / f"{name}.toml"
    config.write_text(
        config_toml(
            data_dir,
            port,
            upstream,
            workers,
            database_url,
            limits=limits,
            redis_url=redis_url,
            redis_client=redis_client,
            auth_cache_seconds=auth_cache_seconds,
        )
    )
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
        name, [*command, "--config", str(config), "serve"], workdir / f"{name}.log", env=env
    )
    pids = wait_listening(service, port, workers, deadline_s=60)
    return Gateway(
        service=service,
        config=config,
        db_path=data_dir / "gridgate.db",
        database_url=database_url,
        account_id=account["id"],
        key=key["key"],
        port=port,
        worker_pids=pids,
    )


# -- PostgreSQL -----------------------------------------------------------------------------------

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _psql(url: str, sql: str, timeout: float = 60.0) -> list[list[str]]:
    """Run one statement with ``psql`` against ``url``; rows of unaligned, tab-separated text."""
    done = subprocess.run(
        ["psql", url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({sql[:80]}…): {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def create_database(server_url: str, name: str) -> str:
    """``CREATE DATABASE name`` on the server at ``server_url`` (``postgresql://user@host:port``);
    returns the new database's URL."""
    if not _DB_NAME.match(name):
        raise ValueError(f"bad database name {name!r}")
    _psql(f"{server_url}/postgres", f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"


def drop_database(server_url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (closes what still connects to it)."""
    if not _DB_NAME.match(name):
        raise ValueError(f"bad database name {name!r}")
    _psql(f"{server_url}/postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def other_backends(server_url: str, ours: Sequence[str]) -> set[int]:
    """Pids of the server's backends connected to databases other than ``ours`` (another
    user's work on the same server: not the benchmark's)."""
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in ours) or "''"
    rows = _psql(
        f"{server_url}/postgres",
        f"SELECT pid FROM pg_stat_activity WHERE datname IS NOT NULL AND datname NOT IN ({names})",
        timeout=10.0,
    )
    return {int(row[0]) for row in rows}


def server_version(server_url: str) -> str:
    return _psql(f"{server_url}/postgres", "SHOW server_version")[0][0]


def _cell(text: str) -> Any:
    """psql's text back to Python: booleans, integers, else the string."""
    if text in ("t", "f"):
        return text == "t"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


# -- the ledger ------------------------------------------------------------------------------------


def ledger_check(db_path: Path, account_id: str) -> dict[str, Any]:
    """Read once the gateway has stopped (its usage writer flushed): usage records, balance,
    the ledger's sum, holds by status (SQLite)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return _ledger_queries(lambda sql: [tuple(row) for row in db.execute(sql)], account_id)


def ledger_check_postgres(url: str, account_id: str) -> dict[str, Any]:
    """The same as ``ledger_check``, from the PostgreSQL database at ``url`` (with ``psql``)."""

    def fetch(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(_cell(c) for c in row) for row in _psql(url, sql)]

    return _ledger_queries(fetch, account_id)


def _ledger_queries(
    fetch: Callable[[str], list[tuple[Any, ...]]], account_id: str
) -> dict[str, Any]:
    account = "'" + account_id.replace("'", "''") + "'"
    records = fetch("SELECT count(*) FROM usage_records")[0][0]
    by_outcome = fetch(
        "SELECT outcome, status, stream, count(*) FROM usage_records "
        "GROUP BY outcome, status, stream ORDER BY 4 DESC"
    )
    billed = fetch(
        "SELECT count(*), coalesce(sum(cost), 0), coalesce(sum(input_tokens), 0), "
        "coalesce(sum(output_tokens), 0) FROM usage_records WHERE billed"
    )[0]
    balance = fetch(f"SELECT balance FROM accounts WHERE id = {account}")[0][0]
    ledger_sum = fetch(
        f"SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account_id = {account}"
    )[0][0]
    holds = fetch("SELECT status, count(*) FROM holds GROUP BY status")
    recorded = fetch("SELECT coalesce(sum(cost), 0) FROM usage_records")[0][0]
    # informational: a hold (or lease) no usage record points at
    unrecorded = fetch(
        "SELECT count(*), coalesce(sum(h.charged), 0) FROM holds h WHERE NOT EXISTS "
        "(SELECT 1 FROM usage_records u WHERE u.hold_id = h.id)"
    )[0]
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
