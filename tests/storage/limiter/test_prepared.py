"""The Redis limiter's encoded-once commands: a prepared command sends the same bytes as the
whole command encoded each time, replies split anywhere parse alike, and the commands of a
tuple of limits are kept for that very tuple only (no Redis needed: nothing connects)."""

from __future__ import annotations

import pytest

from gridgate.storage.limiter.port import Limit
from gridgate.storage.limiter.redis import RedisLimiter
from gridgate.storage.limiter.resp import Prepared, _Incomplete, _parse, encode


def test_a_prepared_command_is_the_whole_command_encoded() -> None:
    head = (b"EVALSHA", b"f" * 40, 2, "gg:key:k1:requests", "gg:key:k1:tokens")
    tail = (60_000, "r", 10, "t", 1_000)
    command = Prepared(head, 3, tail)
    middle = ("tïcket-1", 4_160, -1)
    assert command.encode(middle) == encode((*head, *middle, *tail))
    assert command.args(middle) == (*head, *middle, *tail)
    with pytest.raises(ValueError, match="3 arguments expected"):
        command.encode(("ticket", 1))


@pytest.mark.parametrize(
    "reply",
    [
        b"*6\r\n:1\r\n:0\r\n:-12\r\n$3\r\nabc\r\n*2\r\n:7\r\n$-1\r\n+OK\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b":42\r\n",
    ],
)
def test_a_reply_cut_anywhere_is_incomplete_until_it_is_whole(reply: bytes) -> None:
    whole = _parse(reply, 0)
    assert whole[1] == len(reply)
    for cut in range(len(reply)):
        with pytest.raises(_Incomplete):
            _parse(reply[:cut], 0)
    value, end = _parse(b"junk" + reply + b":1\r\n", 4)
    assert (value, end - 4) == whole


def test_the_commands_of_limits_are_kept_per_tuple_and_never_for_a_list() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0")
    first = (Limit("key", "k1", "requests", 10), Limit("key", "k1", "tokens", 100))
    twin = tuple(first)[:1] + tuple(first)[1:]  # equal, not the same tuple
    assert twin == first and twin is not first
    assert limiter._calls(first) is limiter._calls(first)
    assert limiter._calls(twin) is not limiter._calls(first)
    as_list = list(first)
    before = limiter._calls(as_list)
    as_list[0] = Limit("key", "k1", "requests", 5)
    after = limiter._calls(as_list)
    assert after is not before
    assert after.admit.args(("t", 1, -1))[-4:] == ("r", 5, "t", 100)
