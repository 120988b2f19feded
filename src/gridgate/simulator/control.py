"""The control endpoints tests drive (no auth): stats and standing faults.

- ``GET /sim/stats``: counters and the last request (see :class:`.stats.Stats`).
- ``POST /sim/reset``: zero the counters, forget the last request, empty the prompt cache.
- ``POST /sim/faults``: add a standing fault (see :mod:`.faults`); answers the list.
- ``GET /sim/faults``: the standing faults with their remaining counts.
- ``DELETE /sim/faults``: clear them.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.faults import parse_standing
from gridgate.simulator.state import STATE

_encode = msgspec.json.Encoder().encode


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


async def get_stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE].stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stats = state.stats
    stats.reset()
    state.prompt_cache.clear()
    return _json(stats.snapshot())


async def add_fault(request: web.Request) -> web.Response:
    board = request.app[STATE].faults
    try:
        fault = parse_standing(await request.read())
    except SimulatorError as exc:
        return exc.response()
    board.add(fault)
    return _json({"faults": board.snapshot()}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": request.app[STATE].faults.snapshot()})


async def clear_faults(request: web.Request) -> web.Response:
    board = request.app[STATE].faults
    board.clear()
    return _json({"faults": board.snapshot()})
