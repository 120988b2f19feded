"""Keys: 256 random bits, only the hash stored, the secret never on disk."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.accounts.auth import Authenticator, bearer_token
from gridgate.core.clock import SystemClock
from gridgate.core.credentials import hash_secret, looks_like_key, mint_key
from gridgate.errors import Unauthorized
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.records import KeyRecord
from gridgate.storage.sql import SqlStore


def test_minted_keys_are_long_random_and_hashed() -> None:
    keys = {mint_key().secret for _ in range(100)}
    assert len(keys) == 100
    key = mint_key()
    assert looks_like_key(key.secret)
    assert len(key.secret) == 46  # gg_ + 43 base64url chars = 32 bytes = 256 bits
    assert key.secret_hash == hash_secret(key.secret) != key.secret
    assert key.secret.startswith(key.prefix) and len(key.prefix) == 11


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("BEARER\tabc") == "abc"
    assert bearer_token(None) is None
    assert bearer_token("") is None
    for malformed in ("Basic abc", "Bearer", "Bearerabc", "Bearer abc def"):
        with pytest.raises(Unauthorized) as refused:
            bearer_token(malformed)
        assert refused.value.code == "malformed_authorization"


async def test_the_secret_is_shown_once_and_never_stored(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    store = SqlStore(f"sqlite:///{db}")
    await store.open()
    try:
        accounts = Accounts(store, SystemClock())
        account = await accounts.create(CLI, "a")
        keys = ApiKeys(store, SystemClock())
        new = await keys.create(CLI, account.id, "k")
        listed = await keys.list(CLI, account.id)
        assert [k.id for k in listed] == [new.record.id]
        assert not hasattr(listed[0], "secret")
        assert (await store.get_key_by_hash(hash_secret(new.secret))) is not None
    finally:
        await store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # noqa: ASYNC240 (after close)
    assert new.secret.encode() not in raw
    assert new.record.secret_hash.encode() in raw


class _CountingReads:
    """A store that counts the key reads it serves (the cache's misses)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads = 0

    def keys_changed(self) -> int | None:
        return self.store.keys_changed()

    async def get_key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        self.reads += 1
        return await self.store.get_key_by_hash(secret_hash)


async def test_a_cached_key_is_not_read_again_while_nothing_is_committed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = SqlStore(url)
    await store.open()
    try:
        account = await Accounts(store, SystemClock()).create(CLI, "a")
        new = await ApiKeys(store, SystemClock()).create(CLI, account.id, "k")
        counting = _CountingReads(store)
        auth = Authenticator(cast(KeyStore, counting), SystemClock(), cache_seconds=30)
        for _ in range(5):
            assert (await auth.authenticate(new.secret)).id == new.record.id
        assert counting.reads == 1
    finally:
        await store.close()


async def test_a_key_revoked_by_another_process_fails_the_next_request_despite_the_cache(
    tmp_path: Path,
) -> None:
    """SQLite: a revocation by any process grows the marker file beside the database, which
    every request checks, so a revocation committed elsewhere (the CLI, another worker) fails
    the very next request; commits of anything else leave cached keys alone."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    serving, other = SqlStore(url), SqlStore(url)
    await serving.open()
    await other.open()
    try:
        account = await Accounts(serving, SystemClock()).create(CLI, "a")
        new = await ApiKeys(serving, SystemClock()).create(CLI, account.id, "k")
        spare = await ApiKeys(serving, SystemClock()).create(CLI, account.id, "spare")
        counting = _CountingReads(serving)
        auth = Authenticator(cast(KeyStore, counting), SystemClock(), cache_seconds=3600)
        assert (await auth.authenticate(new.secret)).id == new.record.id
        await other.credit(account.id, 1_000, idempotency_key="more", memo=None)
        assert (await auth.authenticate(new.secret)).id == new.record.id
        assert counting.reads == 1  # a commit that revokes nothing: still from the cache
        await other.revoke_key(spare.record.id)
        await other.revoke_key(new.record.id)
        with pytest.raises(Unauthorized) as refused:
            await auth.authenticate(new.secret)
        assert refused.value.code == "revoked_api_key"
    finally:
        await other.close()
        await serving.close()
