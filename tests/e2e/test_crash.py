"""A gateway killed with SIGKILL mid-stream: after a restart and the lease's expiry, the ledger
verifies, the part delivered before the crash is charged, the rest is released, and the
stream's record is final (``interrupted``), not left ``in_progress``."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.harness import (
    BackgroundLoop,
    Offer,
    nanos,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

OFFERS = [Offer("sim-one", "text-prime", "sim/one", "0.10", "0.40", 40, 196_608, 131_072)]
QUICK_EXPIRY = """hold_ttl_seconds = 10
sweep_interval_seconds = 0.5
lease_tick_seconds = 0.25
checkpoint_seconds = 0.2
"""


def test_sigkill_mid_stream_charges_what_was_delivered(bg: BackgroundLoop, tmp_path: Path) -> None:
    with simulators(bg, ["sim-one"]) as sims:
        suppliers = {"sim-one": sims["sim-one"].base_url}
        first = start_gateway(tmp_path, bg, suppliers, OFFERS, billing=QUICK_EXPIRY)
        account_id, secret = first.new_account("1")
        body = {
            "model": "text-prime",
            "max_tokens": 2_000,
            "stream": True,
            "messages": [{"role": "user", "content": "go [[sim:mode=slow,tokens_per_second=50]]"}],
        }
        received = 0
        with httpx.stream(
            "POST",
            f"{first.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received += 1
                # a checkpoint has been written once a record for the request exists
                if received >= 20 and received % 5 == 0 and first.usage(account_id):
                    first.process.send_signal(signal.SIGKILL)
                    break
        assert first.process.wait(10) == -signal.SIGKILL
        checkpoint = first.usage(account_id)[0]
        assert checkpoint.outcome == "in_progress" and checkpoint.cost > 0
        lease = first.run(first.store.get_hold(checkpoint.hold_id or ""))
        assert lease is not None and lease.status == "held"  # stranded by the crash
        first.run(first.store.close())
        if first.process.stdout is not None:
            first.process.stdout.close()

        # a new process on the same database: its sweeper closes the lease once it expires
        second = start_gateway(tmp_path, bg, suppliers, OFFERS, billing=QUICK_EXPIRY)
        try:
            closed = wait_until(
                lambda: (
                    (h := second.run(second.store.get_hold(lease.id)))
                    and h.status == "expired"
                    and h
                ),
                timeout=30,
            )
            record = wait_until(
                lambda: (r := second.usage(account_id)[0]).outcome != "in_progress" and r
            )
            assert record.outcome == "interrupted"  # final: its process will never end it
            assert record.billed
            assert closed.charged == record.cost > 0  # the delivered part, by its last checkpoint
            assert record.cost < lease.amount  # the rest was released
            assert record.output_tokens >= 10
            balance = second.run(second.store.account_balance(account_id))
            assert balance is not None
            assert (balance.ledger, balance.held) == (nanos("1") - record.cost, 0)
            assert second.run(second.store.verify_ledger()).ok
        finally:
            stop_gateway(second)
