"""Property: any sequence of credits, holds, usage recorded against holds, settles, releases,
extensions and expiries keeps every balance equal to the sum of its ledger entries and never
below zero, and matches a simple model — and so does ``account_balance``, whose ``effective``
is always the credits minus everything charged or recorded.

One database per test; each example works on a fresh account in it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgate.storage.records import UsageRecord
from gridgate.storage.sql import SqlStore

T0 = 1_700_000_000_000_000

amounts = st.integers(min_value=0, max_value=5_000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.integers(min_value=1, max_value=5_000)),
        st.tuples(st.just("adjust"), st.integers(min_value=-5_000, max_value=5_000)),
        st.tuples(st.just("hold"), amounts, st.integers(min_value=1, max_value=50)),
        st.tuples(st.just("settle"), st.integers(min_value=0, max_value=30), amounts),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("expire"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("usage"), st.integers(min_value=0, max_value=30), amounts),
        st.tuples(st.just("extend"), st.integers(min_value=0, max_value=30), amounts),
    ),
    max_size=20,
)


@dataclass
class _Model:
    balance: int = 0
    holds: dict[str, tuple[int, int, str, int]] = field(
        default_factory=dict
    )  # amount, expires, status, charged
    order: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)  # hold id → cost recorded against it
    credited: int = 0  # credits and adjustments
    charged: int = 0  # charged by closed holds

    def chargeable(self, hold_id: str) -> int:
        return min(self.holds[hold_id][0], self.usage.get(hold_id, 0))


_examples = itertools.count()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_ledger_invariants_hold_for_any_sequence(
    store: SqlStore, ops: list[tuple[object, ...]]
) -> None:
    account = await store.create_account("prop")
    prefix = f"ex{next(_examples)}-{account.id}"
    model = _Model()
    now = T0
    for op in ops:
        now += 10
        match op:
            case ("credit", int(amount)):
                await store.credit(account.id, amount)
                model.balance += amount
                model.credited += amount
            case ("adjust", int(amount)):
                if model.balance + amount < 0:
                    try:
                        await store.credit(account.id, amount, kind="adjustment")
                    except ValueError:
                        pass
                    else:
                        raise AssertionError("an adjustment took the balance below zero")
                else:
                    await store.credit(account.id, amount, kind="adjustment")
                    model.balance += amount
                    model.credited += amount
            case ("hold", int(amount), int(ttl)):
                hold_id = f"{prefix}-{len(model.order)}"
                result = await store.place_hold(
                    hold_id=hold_id,
                    account_id=account.id,
                    key_id=None,
                    amount=amount,
                    expires_us=now + ttl,
                    now_us=now,
                )
                if amount <= model.balance:
                    assert result.hold is not None
                    model.balance -= amount
                    model.holds[hold_id] = (amount, now + ttl, "held", 0)
                    model.order.append(hold_id)
                else:
                    assert result.refused == "insufficient_balance"
                assert result.balance == model.balance
            case ("settle" | "release" as verb, int(index), *rest):
                if not model.order:
                    continue
                hold_id = model.order[index % len(model.order)]
                amount, expires, status, charged = model.holds[hold_id]
                if verb == "settle":
                    charge = int(rest[0])  # type: ignore[call-overload]
                    settled = await store.settle_hold(hold_id, charge, now_us=now)
                    new_charge = min(charge, amount)
                else:
                    settled = await store.release_hold(hold_id, now_us=now)
                    new_charge = 0
                if status == "held":
                    assert not settled.already_settled
                    model.balance += amount - new_charge
                    model.charged += new_charge
                    model.holds[hold_id] = (amount, expires, "closed", new_charge)
                    assert (settled.charged, settled.released) == (new_charge, amount - new_charge)
                else:
                    assert settled.already_settled
                    assert (settled.charged, settled.released) == (charged, amount - charged)
            case ("expire", int(ahead)):
                results = await store.expire_holds(now + ahead)
                ours = {r.hold_id: r for r in results if r.hold_id.startswith(prefix + "-")}
                due = {
                    h
                    for h, (_, expires, status, _) in model.holds.items()
                    if status == "held" and expires <= now + ahead
                }
                assert set(ours) == due
                for hold_id in due:
                    amount, expires, _, _ = model.holds[hold_id]
                    charge = model.chargeable(hold_id)
                    assert (ours[hold_id].charged, ours[hold_id].released) == (
                        charge,
                        amount - charge,
                    )
                    model.holds[hold_id] = (amount, expires, "closed", charge)
                    model.balance += amount - charge
                    model.charged += charge
            case ("usage", int(index), int(cost)):
                if not model.order:
                    continue
                hold_id = model.order[index % len(model.order)]  # open or not: a late write
                request_id = f"{prefix}-u{next(_examples)}"
                await store.insert_usage([_usage(request_id, now, account.id, hold_id, cost)])
                model.usage[hold_id] = model.usage.get(hold_id, 0) + cost
            case ("extend", int(index), int(ttl)):
                if not model.order:
                    continue
                hold_id = model.order[index % len(model.order)]
                amount, expires, status, charged = model.holds[hold_id]
                moves = status == "held" and now + ttl > expires
                assert await store.extend_holds([hold_id], now + ttl) == int(moves)
                if moves:
                    model.holds[hold_id] = (amount, now + ttl, status, charged)
            case _:
                raise AssertionError(f"unknown op {op!r}")
        current = await store.get_account(account.id)
        assert current is not None
        assert current.balance == model.balance >= 0
        seen = await store.account_balance(account.id)
        assert seen is not None
        open_holds = [h for h, (_, _, status, _) in model.holds.items() if status == "held"]
        assert seen.ledger == model.balance
        assert seen.held == sum(model.holds[h][0] for h in open_holds)
        assert seen.recorded == sum(model.chargeable(h) for h in open_holds)
        assert seen.effective == model.credited - model.charged - seen.recorded
    entries = await store.entries(account.id)
    assert sum(e.amount for e in entries) == model.balance
    report = await store.verify_ledger()
    assert report.ok, report


def _usage(request_id: str, now: int, account_id: str, hold_id: str, cost: int) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        created_us=now,
        account_id=account_id,
        key_id="key_x",
        instrument="text-prime",
        supplier=None,
        offer_id=None,
        upstream_model=None,
        stream=False,
        cost=cost,
        hold_id=hold_id,
    )
