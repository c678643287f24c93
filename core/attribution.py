"""Attribution models: pure functions from a conversion's touches to credit shares.

A model gets the touches of one conversion already inside the lookback window, sorted by
``(occurred_at, touch_id)`` (so ties in time resolve the same way everywhere), and returns one
share per touch; :func:`credit` checks the shares are non-negative and sum to 1. Built-in models
are registered through the same ``register_attribution_models`` hook a plugin uses.

Edge cases (every model): no touch -> no credit rows (the conversion is unattributed); one touch
-> it gets 1. ``position_based`` with two touches splits first/last weights renormalised (0.5 /
0.5 at the default 40/40). ``w_shaped`` gives ``milestone`` (0.3) to each of three milestone
slots -- first touch, lead-creation touch (last touch at or before the person's lead time, else
the first touch), opportunity-creation touch (last touch at or before the opportunity's
creation; for an order, the last touch) -- coinciding slots add up on one touch; the rest
(0.1) is shared by the other touches, or, when there are none, the slots are renormalised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.hookspecs import hookimpl

__all__ = ["BUILTIN_MODELS", "AttributionModel", "Conversion", "TouchPoint", "credit"]


@dataclass(frozen=True)
class TouchPoint:
    touch_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class Conversion:
    kind: str  # "opportunity" | "order"
    id: str
    converted_at: datetime
    #: earliest lead event of the converting people (W-shaped's second milestone)
    lead_created_at: datetime | None = None
    #: when the opportunity was created (W-shaped's third milestone); None for orders
    opportunity_created_at: datetime | None = None


ModelFn = Callable[[Sequence[TouchPoint], Conversion, Mapping[str, Any]], list[float]]


@dataclass(frozen=True)
class AttributionModel:
    """A named model; ``defaults`` are its parameters unless the definitions override them."""

    name: str
    fn: ModelFn
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


def credit(model: AttributionModel, touches: Sequence[TouchPoint], conversion: Conversion,
           params: Mapping[str, Any] | None = None) -> list[float]:
    """Shares of ``touches`` under ``model``; empty for no touches. Raises when a model breaks the contract."""
    if not touches:
        return []
    merged = {**model.defaults, **(params or {})}
    shares = [float(s) for s in model.fn(touches, conversion, merged)]
    if len(shares) != len(touches) or any(s < 0 or math.isnan(s) for s in shares) \
            or not math.isclose(sum(shares), 1.0, abs_tol=1e-9):
        raise ValueError(f"attribution model {model.name!r} returned {shares!r} for {len(touches)} touches: "
                         "it must return one non-negative share per touch, summing to 1")
    return shares


def _first(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    return [1.0] + [0.0] * (len(touches) - 1)


def _last(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    return [0.0] * (len(touches) - 1) + [1.0]


def _linear(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    return [1.0 / len(touches)] * len(touches)


def _position(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    n = len(touches)
    first, last = float(params["first"]), float(params["last"])
    if n == 1:
        return [1.0]
    if n == 2:
        return [first / (first + last), last / (first + last)]
    middle = (1.0 - first - last) / (n - 2)
    return [first] + [middle] * (n - 2) + [last]


def _time_decay(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    half_life = float(params["half_life_days"]) * 86400.0
    weights = [2.0 ** (-max(0.0, (conversion.converted_at - t.occurred_at).total_seconds()) / half_life)
               for t in touches]
    total = sum(weights)
    return [w / total for w in weights]


def _last_at_or_before(touches: Sequence[TouchPoint], when: datetime | None) -> int | None:
    if when is None:
        return None
    found = None
    for i, t in enumerate(touches):
        if t.occurred_at <= when:
            found = i
    return found


def _w_shaped(touches: Sequence[TouchPoint], conversion: Conversion, params: Mapping[str, Any]) -> list[float]:
    n = len(touches)
    milestone = float(params["milestone"])
    lead = _last_at_or_before(touches, conversion.lead_created_at)
    if conversion.kind == "opportunity":
        opp = _last_at_or_before(touches, conversion.opportunity_created_at)
    else:
        opp = n - 1
    slots = [0, 0 if lead is None else lead, n - 1 if opp is None else opp]
    shares = [0.0] * n
    for s in slots:
        shares[s] += milestone
    others = [i for i in range(n) if i not in slots]
    if others:
        rest = (1.0 - milestone * len(slots)) / len(others)
        for i in others:
            shares[i] = rest
        return shares
    total = sum(shares)
    return [s / total for s in shares]


BUILTIN_MODELS: tuple[AttributionModel, ...] = (
    AttributionModel("first_touch", _first, "All credit to the first touch in the window."),
    AttributionModel("last_touch", _last, "All credit to the last touch before the conversion."),
    AttributionModel("linear", _linear, "Equal credit to every touch in the window."),
    AttributionModel("position_based", _position,
                     "U-shaped: `first` to the first touch, `last` to the last, the rest shared by the middle.",
                     {"first": 0.4, "last": 0.4}),
    AttributionModel("time_decay", _time_decay,
                     "Weight 2^(-age / half-life) per touch, age = conversion time - touch time, normalised.",
                     {"half_life_days": 7}),
    AttributionModel("w_shaped", _w_shaped,
                     "`milestone` each to first touch, lead-creation touch and opportunity-creation touch; "
                     "the rest shared by the others.", {"milestone": 0.3}),
)


@hookimpl
def register_attribution_models(register: Callable[..., None]) -> None:
    for m in BUILTIN_MODELS:
        register(m)
