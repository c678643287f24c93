"""The read-ahead between connector, mapping and dlt: bounded, in order, errors surface in place."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipelines.load import prefetched


def _produced(n: int, log: list[int], fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"broken at {i}")
        log.append(i)
        yield i


def _settle(log: list[int]) -> int:
    """How many items the producer made once it stops making more."""
    last = -1
    while len(log) != last:
        last = len(log)
        time.sleep(0.2)
    return last


def test_the_byte_bound_holds_the_producer_back_and_order_is_kept() -> None:
    log: list[int] = []
    it = prefetched(_produced(100, log), max_bytes=25, size=lambda _i: 10)
    assert next(it) == 0
    # taken: 1; ahead: at most 25 bytes = 2 items of 10, plus the one waiting to be put
    assert _settle(log) <= 4
    assert list(it) == list(range(1, 100))


def test_at_least_one_item_goes_ahead_even_when_larger_than_the_bound() -> None:
    log: list[int] = []
    it = prefetched(_produced(3, log), max_bytes=5, size=lambda _i: 50)
    assert list(it) == [0, 1, 2]


def test_a_producer_error_surfaces_after_the_items_before_it() -> None:
    it = prefetched(_produced(10, [], fail_at=3), max_bytes=100, size=lambda _i: 1)
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(ValueError, match="broken at 3"):
        next(it)


def test_closing_the_consumer_stops_both_threads_of_a_chain() -> None:
    log: list[int] = []
    inner = prefetched(_produced(10_000, log), depth=2, name="t-inner")

    def doubled() -> Iterator[int]:  # as StreamLoad._mapped: closes what it reads when closed
        try:
            for i in inner:
                yield i * 2
        finally:
            inner.close()

    outer = prefetched(doubled(), max_bytes=3, size=lambda _i: 1, name="t-outer")
    assert next(outer) == 0
    outer.close()
    deadline = time.monotonic() + 5
    while any(t.name in ("t-inner", "t-outer") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name in ("t-inner", "t-outer")]
    assert len(log) < 100  # nothing read on after the stop
