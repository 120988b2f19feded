"""The limiter's transport on redis-py's asyncio client (with hiredis): the same interface as
``resp.py``'s ``RespClient`` (``call``, ``call_prepared``, ``send_nowait``, ``send_prepared``,
``take_ignored_errors``, ``close``) so ``redis.py`` runs either, chosen by ``[redis] client``
(issue 17 asks for this A/B: keep the hand-written client only if the library costs more than
noise). A prepared command is sent whole: redis-py takes no pre-encoded bytes through
``execute_command``, so here only the limiter's list building is saved, not the encoding.

redis-py as it is ordinarily used: a connection pool, one connection per command in flight
(no batching across concurrent callers), its own URL parsing, encoding and hiredis parser. What
is set to match ``RespClient``:

- no retries in redis-py (``redis.py`` retries once after a dropped connection itself; a
  timeout is never retried) and no ``CLIENT SETINFO`` round trips on connect;
- at most ``max_connections`` commands in flight, a caller waiting at most ``timeout`` for a
  turn (an ``asyncio.Semaphore``: redis-py's ``BlockingConnectionPool`` cost more per call);
- errors come out as ``RespClient``'s do: an error reply ``RespError`` (``NOSCRIPT …`` keeps its
  code, which redis-py strips), a lost or refused connection ``ConnectionError``, no answer in
  time ``TimeoutError``;
- a command sent without awaiting is a task; its error reply is kept for
  ``take_ignored_errors``. On ``RespClient``'s one pipelined connection Redis runs it before any
  later call, and its answer comes back first: a release not awaited has freed its slot for the
  next admission (the contract's tests hold both). Across a pool of connections nothing orders
  them, so the tasks are chained (each is done only when the ones before it are) and a call
  waits for the last one before it is sent: an admission after releases not awaited waits a
  round trip for them, which ``RespClient`` does not;
- ``close`` lets the commands not awaited finish (``RespClient`` has written them already).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gridgate.storage.limiter.resp import Arg, Prepared, Reply, RespError


class RedisPyClient:
    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 1.0,
        timeout: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            driver_info=None,
        )
        self._redis = Redis.from_pool(pool)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._turns = asyncio.Semaphore(max_connections)
        self._up = False  # the last command got an answer (``send_nowait`` needs one)
        self._last_nowait: asyncio.Task[None] | None = None
        self._nowait: set[asyncio.Task[None]] = set()
        self._ignored_errors: list[RespError] = []

    async def call(self, *args: Arg) -> Reply:
        """Send one command and await its reply: an error reply raises ``RespError``; a lost
        connection ``ConnectionError``; no reply in time ``TimeoutError``."""
        before = self._last_nowait
        if before is not None and not before.done():
            await before  # what was sent before, not awaited, runs first (see the docstring)
        return await self._execute(args)

    async def call_prepared(self, command: Prepared, *middle: Arg) -> Reply:
        """``call`` of the whole command: redis-py encodes every argument itself."""
        return await self.call(*command.args(middle))

    def send_prepared(self, command: Prepared, *middle: Arg) -> bool:
        """``send_nowait`` of the whole command (redis-py encodes every argument itself)."""
        return self.send_nowait(*command.args(middle))

    def send_nowait(self, *args: Arg) -> bool:
        """Send one command whose reply nobody awaits (its error replies are kept for
        ``take_ignored_errors``); False while the last command found no connection."""
        if not self._up:
            return False
        task = asyncio.get_running_loop().create_task(self._run_nowait(args, self._last_nowait))
        self._last_nowait = task
        self._nowait.add(task)
        task.add_done_callback(self._nowait.discard)
        return True

    def take_ignored_errors(self) -> list[RespError]:
        """The error replies to ``send_nowait`` commands since the last call."""
        errors, self._ignored_errors = self._ignored_errors, []
        return errors

    async def sent(self) -> None:
        """Best effort: the tasks sending this turn's commands get one turn to write them."""
        await asyncio.sleep(0)

    async def close(self) -> None:
        if self._nowait:
            await asyncio.wait(set(self._nowait), timeout=self._connect_timeout)
        self._up = False
        await self._redis.aclose()

    async def _run_nowait(self, args: tuple[Arg, ...], before: asyncio.Task[None] | None) -> None:
        try:
            await self._execute(args)
        except RespError as exc:
            self._ignored_errors.append(exc)
        except (OSError, TimeoutError):
            pass  # like a reply lost with its connection on RespClient
        if before is not None and not before.done():
            await before

    async def _execute(self, args: tuple[Arg, ...]) -> Reply:
        turns = self._turns
        if turns.locked():
            async with asyncio.timeout(self._timeout):
                await turns.acquire()
        else:
            await turns.acquire()  # free: does not suspend
        try:
            reply = await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]
        except NoScriptError as exc:
            raise RespError(f"NOSCRIPT {exc}") from exc
        except ResponseError as exc:
            raise RespError(str(exc)) from exc
        except RedisTimeoutError as exc:
            self._up = False
            raise TimeoutError(str(exc)) from exc
        except RedisConnectionError as exc:
            self._up = False
            raise ConnectionError(str(exc)) from exc
        except RedisError as exc:  # a reply out of step: the connection is dropped
            self._up = False
            raise ConnectionError(f"bad reply from Redis: {exc}") from exc
        finally:
            turns.release()
        self._up = True
        return reply
