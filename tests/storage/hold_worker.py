"""A separate OS process for the cross-process tests (run as a script, not collected).

python hold_worker.py open URL
    open the store (migrating it), print the schema version, close.
python hold_worker.py hold URL ACCOUNT_ID KEY_ID AMOUNT ATTEMPTS TAG
    open the store, print "ready", wait for a line on stdin (the start signal), then place
    ATTEMPTS holds of AMOUNT concurrently and print a JSON summary.
python hold_worker.py revoke URL KEY_ID NEW_HASH
    open the store, revoke KEY_ID, create a key on the same account with secret hash NEW_HASH,
    print both as JSON, close.
python hold_worker.py sweep URL NOW_US BATCH
    open the store, print "ready", wait for the start signal, then delete expired stored
    responses in batches of BATCH until none is left and print {"swept": count}.
"""

from __future__ import annotations

import asyncio
import json
import sys

import msgspec

from gridgate.storage.sql import SqlStore

NOW = 1_700_000_000_000_000


async def _open(url: str) -> None:
    async with SqlStore(url, pool_size=1, max_overflow=0) as store:
        print(json.dumps({"version": await store.schema_version()}), flush=True)


async def _hold(
    url: str, account_id: str, key_id: str, amount: int, attempts: int, tag: str
) -> None:
    # a small pool: several of these run at once against one PostgreSQL server
    async with SqlStore(url, pool_size=3, max_overflow=0) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        results = await asyncio.gather(
            *(
                store.place_hold(
                    hold_id=f"{tag}-{i}",
                    account_id=account_id,
                    key_id=key_id,
                    amount=amount,
                    expires_us=NOW + 60_000_000,
                    now_us=NOW,
                )
                for i in range(attempts)
            )
        )
    refused: dict[str, int] = {}
    for r in results:
        if r.refused is not None:
            refused[r.refused] = refused.get(r.refused, 0) + 1
    held = [r.hold.id for r in results if r.hold is not None]
    print(json.dumps({"held": held, "refused": refused}), flush=True)


async def _revoke(url: str, key_id: str, new_hash: str) -> None:
    async with SqlStore(url, pool_size=1, max_overflow=0) as store:
        revoked = await store.revoke_key(key_id)
        created = await store.create_key(
            account_id=revoked.account_id,
            name="from another process",
            prefix="gg-other",
            secret_hash=new_hash,
            expires_us=None,
        )
    print(msgspec.json.encode({"revoked": revoked, "created": created}).decode(), flush=True)


async def _sweep(url: str, now_us: int, batch: int) -> None:
    async with SqlStore(url, pool_size=1, max_overflow=0) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        swept = 0
        while removed := await store.delete_expired_responses(now_us, batch=batch):
            swept += removed
    print(json.dumps({"swept": swept}), flush=True)


def main(argv: list[str]) -> None:
    match argv:
        case ["open", url]:
            asyncio.run(_open(url))
        case ["hold", url, account_id, key_id, amount, attempts, tag]:
            asyncio.run(_hold(url, account_id, key_id, int(amount), int(attempts), tag))
        case ["revoke", url, key_id, new_hash]:
            asyncio.run(_revoke(url, key_id, new_hash))
        case ["sweep", url, now_us, batch]:
            asyncio.run(_sweep(url, int(now_us), int(batch)))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
