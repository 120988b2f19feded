"""Keys: 256 random bits, only the hash stored, the secret never on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridgate.core.access import CLI
from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.accounts.auth import bearer_token
from gridgate.core.clock import SystemClock
from gridgate.core.credentials import hash_secret, looks_like_key, mint_key
from gridgate.errors import Unauthorized
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
