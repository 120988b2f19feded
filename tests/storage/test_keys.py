"""The ``KeyStore`` contract, run against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from gridgate.storage.ports.errors import NotFoundInStore, StorageError
from gridgate.storage.sql import SqlStore
from tests.storage.helpers import LATER, NOW, _key

# -- keys -------------------------------------------------------------------------------------


async def test_keys_create_get_list(store: SqlStore) -> None:
    a = await store.create_account("a")
    b = await store.create_account("b")
    k1 = await store.create_key(
        account_id=a.id, name="prod", prefix="gg-AbCd", secret_hash="h1", expires_us=LATER
    )
    k2 = await store.create_key(
        account_id=b.id, name="dev", prefix="gg-EfGh", secret_hash="h2", expires_us=None
    )
    assert re.fullmatch(r"key_[0-9a-f]{24}", k1.id)
    assert (k1.account_id, k1.name, k1.prefix, k1.expires_us) == (a.id, "prod", "gg-AbCd", LATER)
    assert k1.revoked_us is None
    assert k1.last_used_us is None
    assert await store.get_key(k1.id) == k1
    assert await store.get_key_by_hash("h2") == k2
    assert await store.get_key_by_hash("nope") is None
    assert await store.get_key("key_nope") is None
    assert await store.list_keys(a.id) == [k1]
    assert await store.list_keys() == [k1, k2]
    with pytest.raises(NotFoundInStore):
        await _key(store, "acct_nope")


async def test_key_lookup_sees_another_stores_writes_at_once(store: SqlStore, db_url: str) -> None:
    a = await store.create_account("a")
    k = await _key(store, a.id)
    assert await store.get_key_by_hash(k.secret_hash) == k
    async with SqlStore(db_url) as other:
        revoked = await other.revoke_key(k.id)
        assert await store.get_key_by_hash(k.secret_hash) == revoked
        created = await _key(other, a.id)
        assert await store.get_key_by_hash(created.secret_hash) == created
        await other.touch_keys({created.id: NOW})
        touched = await store.get_key_by_hash(created.secret_hash)
        assert touched is not None
        assert touched.last_used_us == NOW


async def test_sqlite_key_lookup_runs_in_the_calling_thread(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        a = await store.create_account("a")
        k = await _key(store, a.id)
        for secret_hash, expected in [(k.secret_hash, k), ("unknown", None)]:
            lookup = store.get_key_by_hash(secret_hash)
            with pytest.raises(StopIteration) as done:  # finished without ever suspending
                lookup.send(None)
            assert done.value.value == expected

        # No read transaction outlives a lookup (it would pin an old snapshot and keep the WAL
        # from being reset): a TRUNCATE checkpoint, which waits for every reader, goes through.
        def truncate_checkpoint_is_blocked() -> bool:
            probe = sqlite3.connect(path, isolation_level=None)
            try:
                probe.execute("PRAGMA busy_timeout = 0")
                busy, _, _ = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                return bool(busy)
            finally:
                probe.close()

        await store.revoke_key(k.id)  # something in the WAL
        pinned = sqlite3.connect(path, isolation_level=None)  # the control: a lingering reader
        try:
            pinned.execute("BEGIN")
            pinned.execute("SELECT count(*) FROM api_keys").fetchall()
            assert truncate_checkpoint_is_blocked()
        finally:
            pinned.close()
        assert (await store.get_key_by_hash(k.secret_hash)) is not None
        assert await store.get_key_by_hash("unknown") is None
        assert not truncate_checkpoint_is_blocked()


async def test_sqlite_key_lookup_falls_back_to_the_workers_when_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Busy:
        def execute(self, *_: object) -> None:
            raise sqlite3.OperationalError("database is locked")

    class Broken:
        def execute(self, *_: object) -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

    async with SqlStore(f"sqlite:///{tmp_path / 'busy.db'}") as store:
        a = await store.create_account("a")
        k = await _key(store, a.id)
        monkeypatch.setattr(store, "_reader", Busy())
        assert await store.get_key_by_hash(k.secret_hash) == k
        monkeypatch.setattr(store, "_reader", Broken())
        with pytest.raises(StorageError, match="malformed"):
            await store.get_key_by_hash(k.secret_hash)
    with pytest.raises(StorageError, match="not open"):
        await store.get_key_by_hash(k.secret_hash)


async def test_revoke_key_is_idempotent(store: SqlStore) -> None:
    a = await store.create_account("a")
    k = await _key(store, a.id)
    first = await store.revoke_key(k.id)
    assert first.revoked_us is not None
    assert not first.active_at(NOW)
    again = await store.revoke_key(k.id)
    assert again.revoked_us == first.revoked_us
    assert await store.get_key(k.id) == first
    with pytest.raises(NotFoundInStore):
        await store.revoke_key("key_nope")


async def test_touch_keys_only_moves_forward(store: SqlStore) -> None:
    a = await store.create_account("a")
    k1, k2 = await _key(store, a.id), await _key(store, a.id)
    await store.touch_keys({})
    await store.touch_keys({k1.id: 200, k2.id: 100, "key_unknown": 5})
    await store.touch_keys({k1.id: 150, k2.id: 300})
    got1, got2 = await store.get_key(k1.id), await store.get_key(k2.id)
    assert got1 is not None
    assert got2 is not None
    assert (got1.last_used_us, got2.last_used_us) == (200, 300)
