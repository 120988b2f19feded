"""Stored responses (``ResponseStore``): a response row and its item rows, written, read and
deleted together in one transaction each.

A response and its items are deleted response row first, then its items, both by a deleter and
by the sweep, so they lock in the same order. The sweep takes its batch with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so processes sweeping at once take disjoint batches; SQLite serialises
its writers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    delete,
    insert,
    literal,
    select,
)

from gridgate.storage.ports.responses import ItemsPage, Order, StoredItem
from gridgate.storage.schema import response_items, responses
from gridgate.storage.sql.base import SqlBase

_r = responses.c
_i = response_items.c


def _live(account_id: str, response_id: str, now_us: int) -> ColumnElement[bool]:
    """The account's response ``response_id``, not expired at ``now_us``."""
    return and_(_r.id == response_id, _r.account_id == account_id, _r.expires_us > now_us)


def _delete_items(conn: Connection, ids: Sequence[str]) -> None:
    if ids:
        conn.execute(delete(response_items).where(_i.response_id.in_(ids)))


class SqlResponses(SqlBase):
    """``ResponseStore`` in SQL."""

    async def save_response(
        self,
        *,
        response_id: str,
        account_id: str,
        key_id: str | None,
        previous_response_id: str | None,
        response: str,
        items: Sequence[StoredItem],
        created_us: int,
        expires_us: int,
    ) -> None:
        row = {
            "id": response_id,
            "account_id": account_id,
            "key_id": key_id,
            "created_us": created_us,
            "expires_us": expires_us,
            "previous_response_id": previous_response_id,
            "response": response,
        }
        item_rows = [
            {
                "response_id": response_id,
                "position": position,
                "kind": item.kind,
                "item_id": item.item_id,
                "item": item.item,
            }
            for position, item in enumerate(items)
        ]

        def save(conn: Connection) -> None:
            gone = conn.execute(
                delete(responses)
                .where(_r.id == response_id, _r.account_id == account_id)
                .returning(_r.id)
            ).all()
            _delete_items(conn, [response_id] if gone else [])
            conn.execute(insert(responses), row)
            if item_rows:
                conn.execute(insert(response_items), item_rows)

        await self._write(save)

    async def get_response(self, account_id: str, response_id: str, now_us: int) -> str | None:
        stmt = select(_r.response).where(_live(account_id, response_id, now_us))
        found = await self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return None if found is None else str(found)

    async def response_chain(
        self, account_id: str, response_id: str, now_us: int, *, max_depth: int
    ) -> list[str] | None:
        # one statement: the chain walked back by a recursive CTE (depth 0 is response_id),
        # each link live and the account's, then every link's items, oldest link first
        head = (
            select(_r.id, _r.previous_response_id, literal(0, Integer).label("depth"))
            .where(_live(account_id, response_id, now_us))
            .cte("chain", recursive=True)
        )
        older = responses.alias("older")
        link = older.c
        chain = head.union_all(
            select(link.id, link.previous_response_id, head.c.depth + 1).where(
                link.id == head.c.previous_response_id,
                link.account_id == account_id,
                link.expires_us > now_us,
                head.c.depth < max_depth - 1,
            )
        )
        stmt = (
            select(chain.c.depth, _i.item)
            .select_from(chain.outerjoin(response_items, _i.response_id == chain.c.id))
            .order_by(chain.c.depth.desc(), _i.position)
        )

        def read(conn: Connection) -> list[str] | None:
            rows = conn.execute(stmt).all()
            return [str(item) for _, item in rows if item is not None] if rows else None

        return await self._read(read)

    async def delete_response(self, account_id: str, response_id: str, now_us: int) -> bool:
        def remove(conn: Connection) -> bool:
            gone = conn.execute(
                delete(responses)
                .where(_r.id == response_id, _r.account_id == account_id)
                .returning(_r.expires_us)
            ).all()
            _delete_items(conn, [response_id] if gone else [])
            return any(int(expires) > now_us for (expires,) in gone)

        return await self._write(remove)

    async def list_input_items(
        self,
        account_id: str,
        response_id: str,
        now_us: int,
        *,
        after: str | None,
        limit: int,
        order: Order,
    ) -> ItemsPage | None:
        inputs = (_i.response_id == response_id, _i.kind == "input")

        def page(conn: Connection) -> ItemsPage | None:
            live = select(_r.id).where(_live(account_id, response_id, now_us))
            if conn.execute(live).one_or_none() is None:
                return None
            stmt = select(_i.kind, _i.item_id, _i.item).where(*inputs)
            if after is not None:
                cursor = conn.execute(
                    select(_i.position)
                    .where(*inputs, _i.item_id == after)
                    .order_by(_i.position)
                    .limit(1)
                ).scalar_one_or_none()
                if cursor is None:
                    return ItemsPage(items=[], has_more=False)
                stmt = stmt.where(_i.position > cursor if order == "asc" else _i.position < cursor)
            by = _i.position.asc() if order == "asc" else _i.position.desc()
            rows = conn.execute(stmt.order_by(by).limit(limit + 1)).all()
            return ItemsPage(
                items=[StoredItem(kind=k, item_id=i, item=item) for k, i, item in rows[:limit]],
                has_more=len(rows) > limit,
            )

        return await self._read(page, snapshot=True)

    async def delete_expired_responses(self, now_us: int, *, batch: int) -> int:
        def sweep(conn: Connection) -> int:
            due = (
                select(_r.id)
                .where(_r.expires_us <= now_us)
                .order_by(_r.expires_us)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
            ids = [str(rid) for rid in conn.execute(due).scalars()]
            if not ids:
                return 0
            gone = conn.execute(
                delete(responses).where(_r.id.in_(ids), _r.expires_us <= now_us).returning(_r.id)
            ).scalars()
            removed = [str(rid) for rid in gone]
            _delete_items(conn, removed)
            return len(removed)

        return await self._write(sweep)
