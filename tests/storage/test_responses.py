"""``ResponseStore`` on SQLite and PostgreSQL: save and replace, reads scoped to the account and
the time, the chain of a conversation, input-item pages, delete with the items, and the sweep
(in batches, and by several stores at once)."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from pathlib import Path

import pytest

from gridgate.storage.ports.errors import StorageError
from gridgate.storage.ports.responses import StoredItem
from gridgate.storage.sql import SqlStore
from tests.storage.conftest import raw_sql

NOW = 1_000_000_000


def _item(kind: str, item_id: str) -> StoredItem:
    body = {"id": item_id, "type": "message", "role": "user", "content": item_id}
    return StoredItem(kind=kind, item_id=item_id, item=json.dumps(body))  # type: ignore[arg-type]


async def _save(
    store: SqlStore,
    response_id: str,
    *,
    account: str = "acct_a",
    previous: str | None = None,
    inputs: int = 1,
    outputs: int = 1,
    expires_us: int = NOW + 100,
) -> None:
    items = [_item("input", f"{response_id}_in{i}") for i in range(inputs)]
    items += [_item("output", f"{response_id}_out{i}") for i in range(outputs)]
    await store.save_response(
        response_id=response_id,
        account_id=account,
        key_id="key_1",
        previous_response_id=previous,
        response=json.dumps({"id": response_id, "object": "response"}),
        items=items,
        created_us=NOW,
        expires_us=expires_us,
    )


def _ids(items: list[str]) -> list[str]:
    return [json.loads(i)["id"] for i in items]


async def _count(url: str, table: str) -> int:
    [(n,)] = await raw_sql(url, f"SELECT count(*) FROM {table}")
    return int(n)


async def test_saved_response_is_read_by_its_account_until_it_expires(store: SqlStore) -> None:
    await _save(store, "resp_1", expires_us=NOW + 10)
    assert json.loads(await store.get_response("acct_a", "resp_1", NOW) or "") == {
        "id": "resp_1",
        "object": "response",
    }
    assert await store.get_response("acct_b", "resp_1", NOW) is None
    assert await store.get_response("acct_a", "resp_2", NOW) is None
    assert await store.get_response("acct_a", "resp_1", NOW + 10) is None  # expired


async def test_saving_again_replaces_the_response_and_its_items(
    store: SqlStore, db_url: str
) -> None:
    await _save(store, "resp_1", inputs=3, outputs=2)
    await _save(store, "resp_1", inputs=1, outputs=1)
    assert await _count(db_url, "response_items") == 2
    assert _ids(await store.response_chain("acct_a", "resp_1", NOW, max_depth=10) or []) == [
        "resp_1_in0",
        "resp_1_out0",
    ]


async def test_a_failed_save_never_quotes_the_content(store: SqlStore) -> None:
    """A database error is logged with its traceback: no part of it may carry what a customer
    stored (the driver's statement parameters are hidden)."""
    await _save(store, "resp_1", account="acct_b")
    secret = "the customer's private words"
    with pytest.raises(StorageError) as info:  # the id is another account's: the insert fails
        await store.save_response(
            response_id="resp_1",
            account_id="acct_a",
            key_id=None,
            previous_response_id=None,
            response=json.dumps({"text": secret}),
            items=[StoredItem(kind="input", item_id="msg_1", item=json.dumps({"text": secret}))],
            created_us=NOW,
            expires_us=NOW + 100,
        )
    logged = "".join(traceback.format_exception(info.value))
    assert "IntegrityError" in logged or "UniqueViolation" in logged
    assert "private words" not in logged
    assert await store.get_response("acct_b", "resp_1", NOW) is not None


async def test_chain_is_the_conversation_oldest_first(store: SqlStore) -> None:
    await _save(store, "resp_1", inputs=2)
    await _save(store, "resp_2", previous="resp_1")
    await _save(store, "resp_3", previous="resp_2")
    chain = await store.response_chain("acct_a", "resp_3", NOW, max_depth=10)
    assert _ids(chain or []) == [
        "resp_1_in0",
        "resp_1_in1",
        "resp_1_out0",
        "resp_2_in0",
        "resp_2_out0",
        "resp_3_in0",
        "resp_3_out0",
    ]
    assert _ids(await store.response_chain("acct_a", "resp_3", NOW, max_depth=2) or []) == [
        "resp_2_in0",
        "resp_2_out0",
        "resp_3_in0",
        "resp_3_out0",
    ]
    assert await store.response_chain("acct_b", "resp_3", NOW, max_depth=10) is None
    assert await store.response_chain("acct_a", "resp_9", NOW, max_depth=10) is None


async def test_a_long_chain_and_one_without_items(store: SqlStore) -> None:
    previous = None
    for n in range(40):
        await _save(store, f"resp_{n}", previous=previous, outputs=0)
        previous = f"resp_{n}"
    chain = await store.response_chain("acct_a", "resp_39", NOW, max_depth=100)
    assert _ids(chain or []) == [f"resp_{n}_in0" for n in range(40)]
    chain = await store.response_chain("acct_a", "resp_39", NOW, max_depth=3)
    assert _ids(chain or []) == ["resp_37_in0", "resp_38_in0", "resp_39_in0"]
    await _save(store, "resp_empty", previous="resp_0", inputs=0, outputs=0)
    assert await store.response_chain("acct_a", "resp_empty", NOW, max_depth=1) == []
    chain = await store.response_chain("acct_a", "resp_empty", NOW, max_depth=5)
    assert _ids(chain or []) == ["resp_0_in0"]


async def test_a_chain_never_crosses_accounts(store: SqlStore) -> None:
    await _save(store, "resp_theirs", account="acct_b")
    await _save(store, "resp_mine", previous="resp_theirs")
    chain = await store.response_chain("acct_a", "resp_mine", NOW, max_depth=10)
    assert _ids(chain or []) == ["resp_mine_in0", "resp_mine_out0"]


async def test_chain_stops_at_a_link_that_is_gone(store: SqlStore) -> None:
    await _save(store, "resp_1", expires_us=NOW + 5)
    await _save(store, "resp_2", previous="resp_1")
    await _save(store, "resp_3", previous="resp_2")
    chain = await store.response_chain("acct_a", "resp_3", NOW + 5, max_depth=10)
    assert _ids(chain or []) == ["resp_2_in0", "resp_2_out0", "resp_3_in0", "resp_3_out0"]
    assert await store.delete_response("acct_a", "resp_2", NOW)
    chain = await store.response_chain("acct_a", "resp_3", NOW, max_depth=10)
    assert _ids(chain or []) == ["resp_3_in0", "resp_3_out0"]


async def test_input_items_page_both_ways(store: SqlStore) -> None:
    await _save(store, "resp_1", inputs=5, outputs=3)

    async def page(after: str | None, limit: int, order: str) -> tuple[list[str], bool]:
        found = await store.list_input_items(
            "acct_a",
            "resp_1",
            NOW,
            after=after,
            limit=limit,
            order=order,  # type: ignore[arg-type]
        )
        assert found is not None
        assert {i.kind for i in found.items} <= {"input"}
        return [i.item_id for i in found.items], found.has_more

    assert await page(None, 20, "asc") == ([f"resp_1_in{i}" for i in range(5)], False)
    assert await page(None, 2, "asc") == (["resp_1_in0", "resp_1_in1"], True)
    assert await page("resp_1_in1", 2, "asc") == (["resp_1_in2", "resp_1_in3"], True)
    assert await page("resp_1_in3", 2, "asc") == (["resp_1_in4"], False)
    assert await page(None, 2, "desc") == (["resp_1_in4", "resp_1_in3"], True)
    assert await page("resp_1_in3", 5, "desc") == (
        ["resp_1_in2", "resp_1_in1", "resp_1_in0"],
        False,
    )
    assert await page("resp_1_out0", 5, "asc") == ([], False)  # not an input item
    assert await page("nope", 5, "asc") == ([], False)
    other = await store.list_input_items("acct_b", "resp_1", NOW, after=None, limit=5, order="asc")
    assert other is None


async def test_delete_removes_the_response_and_its_items(store: SqlStore, db_url: str) -> None:
    await _save(store, "resp_1", inputs=4, outputs=2)
    await _save(store, "resp_2")
    assert not await store.delete_response("acct_b", "resp_1", NOW)  # another account's
    assert await _count(db_url, "response_items") == 8
    assert await store.delete_response("acct_a", "resp_1", NOW)
    assert not await store.delete_response("acct_a", "resp_1", NOW)
    assert await store.get_response("acct_a", "resp_1", NOW) is None
    assert await _count(db_url, "responses") == 1
    assert await _count(db_url, "response_items") == 2


async def test_sweep_deletes_expired_in_batches(store: SqlStore, db_url: str) -> None:
    for i in range(7):
        await _save(store, f"resp_old{i}", inputs=2, expires_us=NOW + i)
    await _save(store, "resp_new", expires_us=NOW + 1000)
    assert await store.delete_expired_responses(NOW + 100, batch=3) == 3
    assert await store.delete_expired_responses(NOW + 100, batch=3) == 3
    assert await store.delete_expired_responses(NOW + 100, batch=3) == 1
    assert await store.delete_expired_responses(NOW + 100, batch=3) == 0
    assert await _count(db_url, "responses") == 1
    assert await _count(db_url, "response_items") == 2
    assert await store.get_response("acct_a", "resp_new", NOW) is not None


async def test_stores_sweeping_at_once_each_delete_once(store: SqlStore, db_url: str) -> None:
    for i in range(60):
        await _save(store, f"resp_{i}", expires_us=NOW)
    others = [SqlStore(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in others))

        async def sweep_all(s: SqlStore) -> int:
            total = 0
            while n := await s.delete_expired_responses(NOW, batch=7):
                total += n
            return total

        counts = await asyncio.gather(*(sweep_all(s) for s in [store, *others]))
    finally:
        await asyncio.gather(*(s.close() for s in others))
    assert sum(counts) == 60
    assert await _count(db_url, "responses") == 0
    assert await _count(db_url, "response_items") == 0


WORKER = str(Path(__file__).with_name("hold_worker.py"))


async def test_processes_sweeping_at_once_each_delete_once(store: SqlStore, db_url: str) -> None:
    """Every gateway process runs the sweep: four OS processes sweeping one database at once
    fail nowhere and delete each expired response exactly once, items with it."""
    for i in range(120):
        await _save(store, f"resp_{i}", inputs=2, expires_us=NOW + (i % 2) * 1000)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            "sweep",
            db_url,
            str(NOW + 1),
            "5",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    swept = 0
    for proc in procs:
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        swept += json.loads(out.decode().strip().splitlines()[-1])["swept"]
    assert swept == 60
    assert await _count(db_url, "responses") == 60
    assert await _count(db_url, "response_items") == 60 * 3
