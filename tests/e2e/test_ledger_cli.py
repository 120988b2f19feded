"""The ledger commands as separate processes: ``ledger verify``, ``accounts adjust`` and
``accounts statement`` against a temporary ``--data-dir``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridgate.storage.records import UsageRecord
from gridgate.storage.sql import SqlStore
from tests.harness import run_cli

NANOS = 1_000_000_000


gridgate = run_cli


def ok_json(*args: str, data_dir: Path) -> Any:
    done = gridgate(*args, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def new_account(data_dir: Path, usd: str | None = None) -> str:
    account_id: str = ok_json("accounts", "create", "--name", "acme", "--json", data_dir=data_dir)[
        "id"
    ]
    if usd is not None:
        ok_json("accounts", "credit", account_id, usd, "--json", data_dir=data_dir)
    return account_id


def balance_nanos(data_dir: Path, account_id: str) -> int:
    shown = ok_json("accounts", "show", account_id, "--json", data_dir=data_dir)
    return int(shown["balance_nanos"])


def us(iso: str) -> int:
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000


def usage(request_id: str, account_id: str, at: str, cost: int, hold_id: str) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        created_us=us(at),
        account_id=account_id,
        key_id="key_test",
        instrument="text-prime",
        supplier="sim-a",
        offer_id="sim-a/text-prime",
        upstream_model="sim-large",
        stream=False,
        input_tokens=100,
        output_tokens=50,
        cost=cost,
        hold_id=hold_id,
    )


# -- ledger verify ----------------------------------------------------------------------------


def test_ledger_verify_ok_then_detects_a_tampered_balance(tmp_path: Path) -> None:
    empty = gridgate("ledger", "verify", data_dir=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "ledger ok" in empty.stdout

    tampered = new_account(tmp_path, "10")
    honest = new_account(tmp_path, "3")
    report = ok_json("ledger", "verify", "--json", data_dir=tmp_path)
    assert report == {
        "ok": True,
        "accounts_checked": 2,
        "mismatches": [],
        "negative_balances": [],
        "holds_checked": 0,
        "hold_mismatches": [],
    }

    with sqlite3.connect(tmp_path / "gridgate.db") as conn:
        conn.execute("UPDATE accounts SET balance = balance + 5 WHERE id = ?", (tampered,))
    conn.close()

    broken = gridgate("ledger", "verify", "--json", data_dir=tmp_path)
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False and report["accounts_checked"] == 2
    assert report["mismatches"] == [
        {
            "account_id": tampered,
            "balance_usd": "10.000000005",
            "balance_nanos": 10 * NANOS + 5,
            "sum_of_entries_usd": "10",
            "sum_of_entries_nanos": 10 * NANOS,
            "difference_usd": "0.000000005",
            "difference_nanos": 5,
        }
    ]
    assert tampered in broken.stderr and honest not in broken.stderr
    assert "ledger verification failed" in broken.stderr

    human = gridgate("ledger", "verify", data_dir=tmp_path)
    assert human.returncode == 1
    assert "NOT OK" in human.stdout and tampered in human.stdout

    with sqlite3.connect(tmp_path / "gridgate.db") as conn:
        conn.execute("UPDATE accounts SET balance = balance - 5 WHERE id = ?", (tampered,))
        conn.execute("UPDATE accounts SET balance = -1 WHERE id = ?", (honest,))
    conn.close()
    negative = gridgate("ledger", "verify", "--json", data_dir=tmp_path)
    assert negative.returncode == 1
    assert json.loads(negative.stdout)["negative_balances"] == [honest]
    assert honest in negative.stderr


def test_ledger_verify_finds_a_lease_charged_other_than_its_usage_records(tmp_path: Path) -> None:
    """A lease that charged for requests with no record behind them (a record lost), or whose
    records cost more than it charged (served free), fails verification, naming the lease —
    while every balance still equals its entries."""
    honest = new_account(tmp_path, "10")
    lost = new_account(tmp_path, "10")
    free = new_account(tmp_path, "10")

    async def leases() -> None:
        async with SqlStore(f"sqlite:///{tmp_path / 'gridgate.db'}") as store:
            for account_id, charged in ((honest, 500), (lost, 800), (free, 200)):
                hold_id = f"lease_{account_id[-8:]}"
                placed = await store.place_hold(
                    hold_id=hold_id,
                    account_id=account_id,
                    key_id=None,
                    amount=NANOS,
                    expires_us=us("2031-01-01T00:00:00"),
                    now_us=us("2030-01-01T00:00:00"),
                )
                assert placed.hold is not None
                await store.insert_usage(
                    [
                        usage(f"r1{account_id}", account_id, "2030-01-01T00:01:00", 300, hold_id),
                        usage(f"r2{account_id}", account_id, "2030-01-01T00:02:00", 200, hold_id),
                    ]
                )
                await store.settle_hold(hold_id, charged, now_us=us("2030-01-01T00:03:00"))

    asyncio.run(leases())
    done = gridgate("ledger", "verify", "--json", data_dir=tmp_path)
    assert done.returncode == 1, done.stdout
    report = json.loads(done.stdout)
    assert report["mismatches"] == [] and report["negative_balances"] == []
    assert report["holds_checked"] == 3
    found = {
        m["account_id"]: (m["charged_nanos"], m["recorded_nanos"])
        for m in report["hold_mismatches"]
    }
    assert found == {lost: (800, 500), free: (200, 500)}
    assert lost in done.stderr and free in done.stderr and honest not in done.stderr


# -- accounts adjust --------------------------------------------------------------------------


def test_adjust_is_idempotent_and_refuses_conflicts_and_overdrafts(tmp_path: Path) -> None:
    account_id = new_account(tmp_path, "10")

    for _ in range(2):  # a retried adjustment applies once
        adjusted = ok_json(
            "accounts",
            "adjust",
            account_id,
            "-1.5",
            "--idempotency-key",
            "fix-1",
            "--memo",
            "double-charged request",
            "--json",
            data_dir=tmp_path,
        )
        assert adjusted["entry"]["kind"] == "adjustment"
        assert adjusted["entry"]["amount_nanos"] == -1_500_000_000
        assert adjusted["entry"]["idempotency_key"] == "fix-1"
        assert adjusted["entry"]["memo"] == "double-charged request"
        assert adjusted["account"]["balance_usd"] == "8.5"
    assert balance_nanos(tmp_path, account_id) == 8_500_000_000

    # the same key with a different amount, or as a credit: a clear error, nothing applied
    conflict = gridgate(
        "accounts", "adjust", account_id, "-2", "--idempotency-key", "fix-1", data_dir=tmp_path
    )
    assert conflict.returncode == 1
    assert "idempotency key 'fix-1'" in conflict.stderr
    as_credit = gridgate(
        "accounts", "credit", account_id, "1.5", "--idempotency-key", "fix-1", data_dir=tmp_path
    )
    assert as_credit.returncode == 1 and "idempotency key 'fix-1'" in as_credit.stderr
    assert balance_nanos(tmp_path, account_id) == 8_500_000_000

    # never below zero; the exact balance can be taken out
    overdraft = gridgate(
        "accounts", "adjust", account_id, "-8.500000001", "--idempotency-key", "fix-2",
        data_dir=tmp_path,
    )  # fmt: skip
    assert overdraft.returncode == 1 and "below zero" in overdraft.stderr
    assert balance_nanos(tmp_path, account_id) == 8_500_000_000
    to_zero = ok_json(
        "accounts", "adjust", account_id, "-8.5", "--idempotency-key", "fix-2", "--json",
        data_dir=tmp_path,
    )  # fmt: skip
    assert to_zero["account"]["balance_nanos"] == 0
    up = ok_json(
        "accounts", "adjust", account_id, "0.25", "--idempotency-key", "fix-3", "--json",
        data_dir=tmp_path,
    )  # fmt: skip
    assert up["account"]["balance_usd"] == "0.25"

    # the key is required; zero, sub-nano and unknown accounts are refused
    missing_key = gridgate("accounts", "adjust", account_id, "1", data_dir=tmp_path)
    assert missing_key.returncode == 2 and "--idempotency-key" in missing_key.stderr
    for amount in ("0", "0.0000000001", "lots"):
        bad = gridgate(
            "accounts", "adjust", account_id, amount, "--idempotency-key", f"bad-{amount}",
            data_dir=tmp_path,
        )  # fmt: skip
        assert bad.returncode == 1 and "amount" in bad.stderr, amount
    unknown = gridgate(
        "accounts", "adjust", "acct_nope", "1", "--idempotency-key", "x", data_dir=tmp_path
    )
    assert unknown.returncode == 1 and "acct_nope" in unknown.stderr

    assert ok_json("ledger", "verify", "--json", data_dir=tmp_path)["ok"] is True


# -- accounts statement -----------------------------------------------------------------------


def _lease_history(data_dir: Path, account_id: str) -> None:
    """Behind the CLI's back, as a gateway process would: a lease (hold) whose two requests cost
    0.3 + 0.2 USD is settled a day later; a second lease is released unused. All in 2030."""

    async def run() -> None:
        async with SqlStore(f"sqlite:///{data_dir / 'gridgate.db'}") as store:
            far = us("2031-01-01T00:00:00")
            placed = await store.place_hold(
                hold_id="h1",
                account_id=account_id,
                key_id=None,
                amount=2 * NANOS,
                expires_us=far,
                now_us=us("2030-01-01T01:00:00"),
            )
            assert placed.hold is not None
            await store.insert_usage(
                [
                    usage("r1", account_id, "2030-01-01T02:00:00", 300_000_000, "h1"),
                    usage("r2", account_id, "2030-01-02T02:00:00", 200_000_000, "h1"),
                ]
            )
            await store.settle_hold("h1", 500_000_000, now_us=us("2030-01-02T03:00:00"))
            placed = await store.place_hold(
                hold_id="h2",
                account_id=account_id,
                key_id=None,
                amount=NANOS,
                expires_us=far,
                now_us=us("2030-01-03T00:00:00"),
            )
            assert placed.hold is not None
            await store.release_hold("h2", now_us=us("2030-01-03T01:00:00"))

    asyncio.run(run())


def _reconciles(statement: dict[str, Any]) -> None:
    totals = statement["totals"]
    net = sum(e["amount_nanos"] for e in statement["entries"])
    assert totals["net_nanos"] == net
    assert totals["closing_balance_nanos"] - totals["opening_balance_nanos"] == net
    assert totals["usage_cost_nanos"] == sum(u["cost_nanos"] for u in statement["usage"])
    assert totals["entries"] == len(statement["entries"])
    assert totals["requests"] == len(statement["usage"])


def test_statement_json_reconciles_with_the_balance(tmp_path: Path) -> None:
    account_id = new_account(tmp_path, "10")
    ok_json(
        "accounts", "adjust", account_id, "-1", "--idempotency-key", "a1", "--json",
        data_dir=tmp_path,
    )  # fmt: skip
    _lease_history(tmp_path, account_id)
    balance = balance_nanos(tmp_path, account_id)
    assert balance == 8_500_000_000  # 10 - 1 - 0.5

    everything = ok_json(
        "accounts", "statement", account_id, "--to", "2031-01-01", data_dir=tmp_path
    )
    _reconciles(everything)
    totals = everything["totals"]
    assert totals["opening_balance_nanos"] == 0
    assert totals["closing_balance_nanos"] == balance
    assert totals["closing_balance_usd"] == "8.5"
    assert totals["credits_nanos"] == 10 * NANOS
    assert totals["adjustments_nanos"] == -NANOS
    assert totals["lease_net_nanos"] == -500_000_000
    assert totals["usage_cost_nanos"] == 500_000_000 == -totals["lease_net_nanos"]
    assert [e["kind"] for e in everything["entries"]] == [
        "credit",
        "adjustment",
        "hold",
        "settle",
        "hold",
        "release",
    ]
    assert everything["entries"][2]["hold_id"] == "h1"
    assert everything["entries"][2]["created_at"] == "2030-01-01T01:00:00Z"
    assert [u["request_id"] for u in everything["usage"]] == ["r1", "r2"]  # oldest first
    first = everything["usage"][0]
    assert first["created_at"] == "2030-01-01T02:00:00Z"
    assert (first["cost_usd"], first["cost_nanos"], first["hold_id"]) == ("0.3", 300_000_000, "h1")
    assert (first["input_tokens"], first["output_tokens"], first["estimated"]) == (100, 50, False)
    assert everything["account"]["id"] == account_id
    assert everything["to"] == "2031-01-01T00:00:00Z"
    assert "lease" in everything["notes"] and "usage records" in everything["notes"]

    # --json means the same document; the default window ends now (before the 2030 leases)
    now = ok_json("accounts", "statement", account_id, "--json", data_dir=tmp_path)
    _reconciles(now)
    assert [e["kind"] for e in now["entries"]] == ["credit", "adjustment"]
    assert now["usage"] == []
    assert now["totals"]["closing_balance_nanos"] == 9 * NANOS
    assert now["from"] == now["account"]["created_at"]


def test_statement_window_filters_by_from_and_to(tmp_path: Path) -> None:
    account_id = new_account(tmp_path, "10")
    _lease_history(tmp_path, account_id)

    def statement(*window: str) -> dict[str, Any]:
        document: dict[str, Any] = ok_json(
            "accounts", "statement", account_id, *window, data_dir=tmp_path
        )
        _reconciles(document)
        return document

    day1 = statement("--from", "2030-01-01", "--to", "2030-01-02")
    assert [e["kind"] for e in day1["entries"]] == ["hold"]
    assert [u["request_id"] for u in day1["usage"]] == ["r1"]
    assert day1["totals"]["opening_balance_nanos"] == 10 * NANOS
    assert day1["totals"]["closing_balance_nanos"] == 8 * NANOS
    assert day1["totals"]["usage_cost_nanos"] == 300_000_000
    assert (day1["from"], day1["to"]) == ("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")

    day2 = statement("--from", "2030-01-02T00:00:00Z", "--to", "2030-01-03T00:00:00")
    assert [e["kind"] for e in day2["entries"]] == ["settle"]  # --to is exclusive
    assert [u["request_id"] for u in day2["usage"]] == ["r2"]
    assert day2["totals"]["opening_balance_nanos"] == 8 * NANOS
    assert day2["totals"]["closing_balance_nanos"] == 9_500_000_000

    # --from is inclusive and honours a zone offset: 02:00+01:00 is the hold's 01:00Z
    from_hold = statement("--from", "2030-01-01T02:00:00+01:00", "--to", "2030-01-01T02:00:00Z")
    assert [e["hold_id"] for e in from_hold["entries"]] == ["h1"]
    assert from_hold["usage"] == []

    # a window with nothing in it still says where the balance stood
    later = statement("--from", "2030-01-04", "--to", "2030-01-05")
    assert later["entries"] == [] and later["usage"] == []
    assert later["totals"]["opening_balance_nanos"] == 9_500_000_000
    assert later["totals"]["closing_balance_nanos"] == 9_500_000_000

    # the default --to is now, so a --from in the future is a window that ends before it starts
    future = gridgate(
        "accounts", "statement", account_id, "--from", "2030-01-03", data_dir=tmp_path
    )
    assert future.returncode == 1 and "before" in future.stderr
    backwards = gridgate(
        "accounts", "statement", account_id, "--from", "2030-01-02", "--to", "2030-01-01",
        data_dir=tmp_path,
    )  # fmt: skip
    assert backwards.returncode == 1 and "before" in backwards.stderr
    garbage = gridgate("accounts", "statement", account_id, "--from", "soon", data_dir=tmp_path)
    assert garbage.returncode == 1 and "ISO 8601" in garbage.stderr
    unknown = gridgate("accounts", "statement", "acct_nope", data_dir=tmp_path)
    assert unknown.returncode == 1 and "acct_nope" in unknown.stderr


def test_statement_csv_has_both_sections(tmp_path: Path) -> None:
    account_id = new_account(tmp_path, "10")
    _lease_history(tmp_path, account_id)
    window = ("--from", "2030-01-01", "--to", "2030-01-03")

    done = gridgate(
        "accounts", "statement", account_id, *window, "--format", "csv", data_dir=tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    blank = rows.index([])
    entries = [dict(zip(rows[0], row, strict=True)) for row in rows[1:blank]]
    usage_rows = [dict(zip(rows[blank + 1], row, strict=True)) for row in rows[blank + 2 :]]
    assert rows[0] == [
        "id",
        "created_at",
        "kind",
        "amount_usd",
        "amount_nanos",
        "hold_id",
        "idempotency_key",
        "memo",
    ]
    assert rows[blank + 1][:2] == ["request_id", "created_at"]
    assert {"cost_usd", "cost_nanos", "input_tokens", "estimated", "billed"} <= set(rows[blank + 1])
    assert [(e["kind"], e["amount_usd"], e["hold_id"]) for e in entries] == [
        ("hold", "-2", "h1"),
        ("settle", "1.5", "h1"),
    ]
    assert entries[0]["idempotency_key"] == "" and entries[0]["created_at"].startswith("2030")
    assert [(u["request_id"], u["cost_usd"], u["billed"]) for u in usage_rows] == [
        ("r1", "0.3", "true"),
        ("r2", "0.2", "true"),
    ]

    # the CSV carries the same rows as the JSON document
    document = ok_json("accounts", "statement", account_id, *window, data_dir=tmp_path)
    assert [str(e["id"]) for e in document["entries"]] == [e["id"] for e in entries]
    net = sum(int(e["amount_nanos"]) for e in entries)
    totals = document["totals"]
    assert totals["closing_balance_nanos"] - totals["opening_balance_nanos"] == net

    contradiction = gridgate(
        "accounts", "statement", account_id, "--format", "csv", "--json", data_dir=tmp_path
    )
    assert contradiction.returncode == 2
