"""Local emulators of vendor APIs over one seeded world; see docs/sandbox.md."""

from sandbox.api import RunningEmulator, Sandbox, SandboxError, load_emulators, serve_forever, start_sandbox
from sandbox.faults import FaultRule
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.world import World

__all__ = [
    "Emulator",
    "EmulatorOptions",
    "EmulatorSpec",
    "FaultRule",
    "Request",
    "Response",
    "RunningEmulator",
    "Sandbox",
    "SandboxError",
    "World",
    "load_emulators",
    "serve_forever",
    "start_sandbox",
]
