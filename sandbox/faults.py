"""Fault injection: which request fails, and how.

A :class:`FaultRule` names a kind of failure and when it fires: on the N-th request matching its
route (``at=3``) or at a rate that is reproducible by seed (``rate=0.05, seed=1``). Rules are given
to :func:`sandbox.start_sandbox` or posted to ``/_sandbox/faults`` as JSON
(``{"rules": [{"kind": "rate_limit", "route": "/crm/v3/objects/contacts", "at": 3}]}``).

Kinds (the emulator renders the vendor's own status, headers and body where the vendor has one):

================  ==================================================================================
``rate_limit``    429 with ``Retry-After: <retry_after>`` and the vendor's rate-limit body
``server_error``  ``status`` (default 503) with the vendor's error body
``timeout``       the server waits ``delay`` seconds (default 30), then closes the connection
``drop``          headers and half the body are sent, then the connection is closed
``truncate``      200 with a complete HTTP message whose JSON body is cut in half
``expired_token`` 401 in the vendor's expired-token shape
``missing_id``    200, but one record of the page has no id
``bad_timestamp`` 200, but one record of the page has an unparseable timestamp
================  ==================================================================================
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast, get_args

__all__ = ["FAULT_KINDS", "FaultInjector", "FaultKind", "FaultRule"]

FaultKind = Literal["rate_limit", "server_error", "timeout", "drop", "truncate", "expired_token",
                    "missing_id", "bad_timestamp"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
#: kinds the emulator answers instead of handling the request
REPLACING_KINDS = frozenset({"rate_limit", "server_error", "expired_token"})
#: kinds that alter the records of a normal answer
RECORD_KINDS = frozenset({"missing_id", "bad_timestamp"})


@dataclass(frozen=True)
class FaultRule:
    """One kind of failure and when it fires.

    ``route`` matches a path prefix (``/crm/v3/objects/contacts``) or a route template as
    ``/_sandbox/stats`` names it (``POST /crm/v3/objects/{type}/search``); ``None`` matches every
    vendor route. Exactly one of ``at`` (1-based, counted over matching requests) and ``rate``
    should be set. ``times`` caps how often the rule fires (default: once for ``at``, unlimited
    for ``rate``).
    """

    kind: FaultKind
    vendor: str | None = None
    route: str | None = None
    method: str | None = None
    at: int | None = None
    rate: float = 0.0
    times: int | None = None
    seed: int = 0
    retry_after: float = 1.0
    status: int = 503
    delay: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (valid: {', '.join(FAULT_KINDS)})")
        if self.at is None and not self.rate:
            raise ValueError("a fault rule needs `at` (the N-th matching request) or `rate` (0..1)")
        if self.at is not None and self.at < 1:
            raise ValueError("`at` counts requests from 1")
        if not 0 <= self.rate <= 1:
            raise ValueError("`rate` is a probability between 0 and 1")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault rule fields {sorted(unknown)} (valid: {', '.join(sorted(names))})")
        return cls(**cast(dict[str, Any], dict(data)))

    def matches(self, vendor: str, method: str, path: str, template: str) -> bool:
        if self.vendor is not None and self.vendor != vendor:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.route is None:
            return True
        return path.startswith(self.route) or template == self.route or template.endswith(" " + self.route)


class _RuleState:
    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.seen = 0
        self.fired = 0
        self.rng = random.Random(rule.seed)


class FaultInjector:
    """The rules of one emulator and their counters. Thread-safe."""

    def __init__(self, vendor: str, rules: Iterable[FaultRule] = ()) -> None:
        self.vendor = vendor
        self._lock = threading.Lock()
        self._rules: list[_RuleState] = []
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules = [_RuleState(r) for r in rules if r.vendor in (None, self.vendor)]

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**s.rule.to_json(), "seen": s.seen, "fired": s.fired} for s in self._rules]

    def pick(self, method: str, path: str, template: str) -> tuple[FaultRule, random.Random] | None:
        """The rule that fires for this request, if any (every matching rule counts the request)."""
        chosen: tuple[FaultRule, random.Random] | None = None
        with self._lock:
            for state in self._rules:
                rule = state.rule
                if not rule.matches(self.vendor, method, path, template):
                    continue
                state.seen += 1
                limit = rule.times if rule.times is not None else (1 if rule.at is not None else None)
                if limit is not None and state.fired >= limit:
                    continue
                fire = state.seen >= rule.at if rule.at is not None else state.rng.random() < rule.rate
                if fire and chosen is None:
                    state.fired += 1
                    chosen = (rule, state.rng)
        return chosen
