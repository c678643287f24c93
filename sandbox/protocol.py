"""What a vendor emulator plugin provides, and the request/response it works with.

A plugin registers an :class:`EmulatorSpec` from its ``register_emulators(register)`` hook. The
sandbox builds one :class:`Emulator` per spec from the shared :class:`~sandbox.world.World`,
mounts it on its own port and hands it parsed requests; the server does sockets, keep-alive,
admin endpoints (``/_sandbox/...``), statistics and fault injection.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from sandbox.faults import FaultRule
from sandbox.world import World

__all__ = ["Emulator", "EmulatorOptions", "EmulatorSpec", "Request", "Response"]


@dataclass(slots=True)
class Request:
    method: str
    #: path without the query string, percent-decoded
    path: str
    #: the raw request target (path and query) as sent, for length checks
    target: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass(slots=True)
class Response:
    status: int = 200
    #: a JSON-serialisable object, or bytes sent as they are
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=utf-8"
    #: records this response served (for ``/_sandbox/stats``)
    records: int = 0


@dataclass(frozen=True)
class EmulatorOptions:
    rate_limits: bool = False


class Emulator(Protocol):
    """One vendor API over the shared world."""

    def settings(self, base_url: str) -> dict[str, str]:
        """What the vendor's connector needs to talk to this emulator (base URL, credentials)."""
        ...

    def route(self, request: Request) -> str:
        """The route template of a request (``GET /crm/v3/objects/{type}``), for stats and faults."""
        ...

    def handle(self, request: Request) -> Response:
        """Answer a request in the vendor's wire format."""
        ...

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        """The vendor's answer for ``rate_limit``, ``server_error`` and ``expired_token`` faults."""
        ...

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        """Alter one record of a normal answer (``missing_id``, ``bad_timestamp``)."""
        ...

    # Optional: ``close(self) -> None`` is called when the server stops, if the emulator has it.


@dataclass(frozen=True)
class EmulatorSpec:
    """What a plugin hands to ``register`` in its ``register_emulators`` hook."""

    #: lower-case vendor name, the same as the connector's (``hubspot``)
    name: str
    factory: Callable[[World, EmulatorOptions], Emulator]
    description: str = ""
    #: static extras shown by ``python -m sandbox serve`` (documentation links, notes)
    notes: Mapping[str, str] = field(default_factory=dict)
