"""Webhooks (``WebhookStore``) in SQL: endpoints, the outbox's fan-out into deliveries, the
claim of due deliveries, their outcomes, the event list and replays, and balance thresholds.

A claim is an ``UPDATE … WHERE status = 'pending' AND next_attempt_us <= :now`` per delivery,
which moves ``next_attempt_us`` to the claim's expiry and names the claimant: on PostgreSQL a
concurrent claimant re-checks that WHERE after waiting and finds it false, on SQLite writers
are serialised. An outcome is recorded only under the same claim, so a claimant whose claim
expired (and was taken by another) changes nothing."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import BigInteger, Connection, Row, bindparam, delete, false, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gridgate.storage.ports.errors import NotFoundInStore
from gridgate.storage.ports.webhooks import (
    ClaimedDelivery,
    DeliveryStatus,
    EventDeliveries,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from gridgate.storage.records import AuditNote
from gridgate.storage.schema import (
    accounts,
    balance_thresholds,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from gridgate.storage.sql.audit import _note
from gridgate.storage.sql.base import SqlBase, _now_us
from gridgate.storage.sql.webhook_outbox import insert_event_once

_D = webhook_deliveries.c
_UNFANNED = webhook_events.c.fanned_out == false()
# read before a write transaction: an idle round takes no write lock (SQLite's is the hot path's)
_ANY_UNFANNED = select(webhook_events.c.id).where(_UNFANNED).limit(1)
_ANY_DUE = (
    select(_D.event_id)
    .where(_D.status == "pending", _D.next_attempt_us <= bindparam("p_now", type_=BigInteger))
    .limit(1)
)


def _endpoint(row: Row[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        account_id=row.account_id,
        url=row.url,
        secret=row.secret,
        events=tuple(json.loads(row.events)),
        enabled=bool(row.enabled),
        created_us=int(row.created_us),
    )


def _event(row: Row[Any]) -> WebhookEvent:
    return WebhookEvent(
        id=row.id,
        type=row.type,
        account_id=row.account_id,
        payload=row.payload,
        created_us=int(row.created_us),
    )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return WebhookDelivery(
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        status=cast(DeliveryStatus, row.status),
        attempts=int(row.attempts),
        next_attempt_us=int(row.next_attempt_us),
        last_error=row.last_error,
        last_status=row.last_status,
        delivered_us=row.delivered_us,
    )


def _fan_out(conn: Connection, limit: int) -> int:
    events = [
        _event(r)
        for r in conn.execute(
            select(webhook_events)
            .where(_UNFANNED)
            .order_by(webhook_events.c.created_us)
            .limit(limit)
        )
    ]
    if not events:
        return 0
    endpoints = [
        _endpoint(r)
        for r in conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.enabled))
    ]
    rows = [
        {
            "event_id": event.id,
            "endpoint_id": endpoint.id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_us": event.created_us,
            "claim": None,
            "last_error": None,
            "last_status": None,
            "delivered_us": None,
        }
        for event in events
        for endpoint in endpoints
        if endpoint.created_us <= event.created_us and endpoint.wants(event.type, event.account_id)
    ]
    made = 0
    if rows:
        dialect = conn.dialect.name
        stmt = _ignoring_insert(dialect)
        for row in rows:  # a rival process fanning out the same event made it first: ignored
            made += conn.execute(stmt, row).rowcount or 0
    conn.execute(
        update(webhook_events)
        .where(webhook_events.c.id.in_([e.id for e in events]))
        .values(fanned_out=True)
    )
    return made


def _ignoring_insert(dialect: str) -> Any:
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    return make(webhook_deliveries).on_conflict_do_nothing(
        index_elements=["event_id", "endpoint_id"]
    )


def _claim(
    conn: Connection, now_us: int, lease_us: int, claim: str, limit: int
) -> list[ClaimedDelivery]:
    due = conn.execute(
        select(webhook_deliveries, webhook_events, webhook_endpoints)
        .join(webhook_events, webhook_events.c.id == _D.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == _D.endpoint_id)
        .where(_D.status == "pending", _D.next_attempt_us <= now_us, webhook_endpoints.c.enabled)
        .order_by(_D.next_attempt_us, _D.event_id, _D.endpoint_id)  # one order: no deadlock
        .limit(limit)
        # PostgreSQL: rival claimers skip each other's rows (SQLite serialises writers anyway)
        .with_for_update(skip_locked=True, of=webhook_deliveries)
    ).all()
    claimed: list[ClaimedDelivery] = []
    for row in due:
        m = row._mapping
        taken = conn.execute(
            update(webhook_deliveries)
            .where(
                _D.event_id == m[_D.event_id],
                _D.endpoint_id == m[_D.endpoint_id],
                _D.status == "pending",
                _D.next_attempt_us <= now_us,
            )
            .values(next_attempt_us=now_us + lease_us, claim=claim, attempts=_D.attempts + 1)
            .returning(_D.attempts)
        ).first()
        if taken is None:
            continue  # another process claimed it first
        ev, ep = webhook_events.c, webhook_endpoints.c
        claimed.append(
            ClaimedDelivery(
                event=WebhookEvent(
                    id=m[ev.id],
                    type=m[ev.type],
                    account_id=m[ev.account_id],
                    payload=m[ev.payload],
                    created_us=int(m[ev.created_us]),
                ),
                endpoint=WebhookEndpoint(
                    id=m[ep.id],
                    account_id=m[ep.account_id],
                    url=m[ep.url],
                    secret=m[ep.secret],
                    events=tuple(json.loads(m[ep.events])),
                    enabled=bool(m[ep.enabled]),
                    created_us=int(m[ep.created_us]),
                ),
                attempt=int(taken.attempts),
                claim=claim,
            )
        )
    return claimed


class SqlWebhooks(SqlBase):
    """``WebhookStore`` in SQL."""

    async def create_endpoint(
        self, endpoint: WebhookEndpoint, *, audit: AuditNote | None = None
    ) -> None:
        values = {
            "id": endpoint.id,
            "account_id": endpoint.account_id,
            "url": endpoint.url,
            "secret": endpoint.secret,
            "events": json.dumps(list(endpoint.events)),
            "enabled": endpoint.enabled,
            "created_us": endpoint.created_us,
        }
        account = select(accounts.c.id).where(accounts.c.id == endpoint.account_id)

        def tx(conn: Connection) -> None:
            if endpoint.account_id is not None and conn.execute(account).first() is None:
                raise NotFoundInStore(f"no account {endpoint.account_id!r}")
            conn.execute(insert(webhook_endpoints), values)
            _note(conn, audit, endpoint.id, endpoint.created_us)

        await self._write(tx)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        stmt = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _endpoint(row)

    async def list_endpoints(self, account_id: str | None = None) -> list[WebhookEndpoint]:
        stmt = select(webhook_endpoints).order_by(
            webhook_endpoints.c.created_us, webhook_endpoints.c.id
        )
        if account_id is not None:
            stmt = stmt.where(webhook_endpoints.c.account_id == account_id)
        return await self._read(lambda conn: [_endpoint(r) for r in conn.execute(stmt)])

    async def delete_endpoint(self, endpoint_id: str, *, audit: AuditNote | None = None) -> bool:
        def tx(conn: Connection) -> bool:
            gone = conn.execute(
                delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            ).rowcount
            if not gone:
                return False
            conn.execute(delete(webhook_deliveries).where(_D.endpoint_id == endpoint_id))
            _note(conn, audit, endpoint_id, _now_us())
            return True

        return await self._write(tx)

    async def add_event(self, event: WebhookEvent) -> bool:
        data = json.loads(event.payload)

        def tx(conn: Connection) -> bool:
            return insert_event_once(
                conn, event.type, event.account_id, data, event.created_us, event_id=event.id
            )

        return await self._write(tx)

    async def fan_out(self, *, limit: int = 200) -> int:
        if await self._read(lambda conn: conn.execute(_ANY_UNFANNED).first()) is None:
            return 0
        return await self._write(lambda conn: _fan_out(conn, limit))

    async def claim_due(
        self, now_us: int, *, lease_us: int, claim: str, limit: int
    ) -> list[ClaimedDelivery]:
        due = await self._read(lambda conn: conn.execute(_ANY_DUE, {"p_now": now_us}).first())
        if due is None:
            return []
        return await self._write(lambda conn: _claim(conn, now_us, lease_us, claim, limit))

    async def finish_delivery(
        self,
        claimed: ClaimedDelivery,
        *,
        status: DeliveryStatus,
        now_us: int,
        next_attempt_us: int,
        http_status: int | None,
        error: str | None,
    ) -> bool:
        stmt = (
            update(webhook_deliveries)
            .where(
                _D.event_id == claimed.event.id,
                _D.endpoint_id == claimed.endpoint.id,
                _D.claim == claimed.claim,
                _D.status == "pending",
            )
            .values(
                status=status,
                next_attempt_us=next_attempt_us,
                claim=None,
                last_status=http_status,
                last_error=error,
                delivered_us=now_us if status == "delivered" else None,
            )
        )
        done = await self._write(lambda conn: conn.execute(stmt).rowcount)
        return bool(done)

    async def list_events(
        self, account_id: str | None, *, limit: int = 100, event_type: str | None = None
    ) -> list[EventDeliveries]:
        stmt = select(webhook_events).order_by(
            webhook_events.c.created_us.desc(), webhook_events.c.id.desc()
        )
        if account_id is not None:
            stmt = stmt.where(webhook_events.c.account_id == account_id)
        if event_type is not None:
            stmt = stmt.where(webhook_events.c.type == event_type)
        stmt = stmt.limit(limit)

        def tx(conn: Connection) -> list[EventDeliveries]:
            events = [_event(r) for r in conn.execute(stmt)]
            if not events:
                return []
            q = select(webhook_deliveries).where(_D.event_id.in_([e.id for e in events]))
            if account_id is not None:
                mine = select(webhook_endpoints.c.id).where(
                    webhook_endpoints.c.account_id == account_id
                )
                q = q.where(_D.endpoint_id.in_(mine))
            by_event: dict[str, list[WebhookDelivery]] = {}
            for r in conn.execute(q.order_by(_D.endpoint_id)):
                by_event.setdefault(r.event_id, []).append(_delivery(r))
            return [
                EventDeliveries(event=e, deliveries=tuple(by_event.get(e.id, ()))) for e in events
            ]

        return await self._read(tx)

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        stmt = select(webhook_events).where(webhook_events.c.id == event_id)
        row = await self._read(lambda conn: conn.execute(stmt).first())
        return None if row is None else _event(row)

    async def replay_event(
        self,
        event_id: str,
        now_us: int,
        *,
        account_id: str | None = None,
        audit: AuditNote | None = None,
    ) -> int:
        stmt = (
            update(webhook_deliveries)
            .where(_D.event_id == event_id)
            .values(status="pending", attempts=0, next_attempt_us=now_us, claim=None)
        )
        if account_id is not None:
            mine = select(webhook_endpoints.c.id).where(
                webhook_endpoints.c.account_id == account_id
            )
            stmt = stmt.where(_D.endpoint_id.in_(mine))

        def tx(conn: Connection) -> int:
            count = int(conn.execute(stmt).rowcount or 0)
            if count:
                _note(conn, audit, event_id, now_us)
            return count

        return await self._write(tx)

    async def set_balance_threshold(
        self, account_id: str, below: int | None, *, audit: AuditNote | None = None
    ) -> None:
        now = _now_us()
        exists = select(accounts.c.id).where(accounts.c.id == account_id)
        gone = delete(balance_thresholds).where(balance_thresholds.c.account_id == account_id)

        def tx(conn: Connection) -> None:
            if conn.execute(exists).first() is None:
                raise NotFoundInStore(f"no account {account_id!r}")
            conn.execute(gone)
            if below is not None:
                conn.execute(
                    insert(balance_thresholds),
                    {"account_id": account_id, "below": below, "armed": True, "updated_us": now},
                )
            _note(conn, audit, account_id, now)

        await self._write(tx)

    async def balance_threshold(self, account_id: str) -> int | None:
        stmt = select(balance_thresholds.c.below).where(
            balance_thresholds.c.account_id == account_id
        )
        value = await self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return None if value is None else int(value)
