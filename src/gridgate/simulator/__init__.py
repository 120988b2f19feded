"""A supplier simulator: a real HTTP server speaking OpenAI Chat Completions
(``/v1/chat/completions``), OpenAI Responses (``/v1/responses``) and Anthropic Messages
(``/v1/messages``) exactly.

It is the upstream the demo, the tests and the benchmark run against: deterministic text,
tool calls and structured outputs that validate, realistic timing (TTFT, tokens/s), and fault
injection (``[[sim:...]]`` directives or ``POST /sim/faults``, see :mod:`.faults`). All wires
plan the same answer for the same conversation, so a test can compare the paths through a
gateway fact by fact.
"""

from gridgate.simulator.options import SimulatorOptions
from gridgate.simulator.server import RunningSimulator, build_simulator_app, start_simulator

__all__ = ["RunningSimulator", "SimulatorOptions", "build_simulator_app", "start_simulator"]
