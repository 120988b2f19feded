"""Build and run a simulator: an aiohttp application, or a server on a local port."""

from __future__ import annotations

from aiohttp import web

from gridgate.simulator import chat, control, messages, responses
from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.state import STATE, SimulatorState

_SHUTDOWN_TIMEOUT = 2.0


def build_simulator_app(options: SimulatorOptions) -> web.Application:
    """The simulator as an application (its state lives in ``app[STATE]``)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimulatorState(options)
    app.router.add_post("/v1/chat/completions", chat.chat_completions)
    app.router.add_post("/v1/messages", messages.create_message)
    app.router.add_post("/v1/responses", responses.create_response)
    app.router.add_get("/v1/models", chat.list_models)
    app.router.add_get("/sim/stats", control.get_stats)
    app.router.add_post("/sim/reset", control.reset_stats)
    app.router.add_post("/sim/faults", control.add_fault)
    app.router.add_get("/sim/faults", control.list_faults)
    app.router.add_delete("/sim/faults", control.clear_faults)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].shutdown()


class RunningSimulator:
    """A simulator serving on ``host:port`` until :meth:`close`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def app(self) -> web.Application:
        return self._runner.app

    @property
    def state(self) -> SimulatorState:
        return self._runner.app[STATE]

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` — the control endpoints live under ``/sim``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1`` — what an OpenAI client takes as ``base_url`` (an Anthropic
        client takes :attr:`root_url`: it adds ``/v1/messages`` itself)."""
        return f"{self.root_url}/v1"

    async def close(self) -> None:
        self.state.shutdown()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start_simulator(
    options: SimulatorOptions, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve a new simulator; ``port=0`` picks a free port (read it from ``.port``)."""
    runner = web.AppRunner(
        build_simulator_app(options),
        handler_cancellation=True,  # a client that goes away cancels its request at once
        access_log=None,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple):
            bound = int(address[1])
            break
    return RunningSimulator(runner, host, bound)
