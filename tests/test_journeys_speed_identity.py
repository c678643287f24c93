"""People and journeys are exactly those before their hot paths were written out (issue #3).

Every emulator's answers and the fixtures derive from ``World.person`` and the journeys, so a faster
version must build the same values, and ``_base_events`` (which emulators read directly) the same
events in the same order. The digests below were taken from the tree before that work (66af9ba,
the plain versions); bench/bench_journeys.py --hash compares two trees over larger worlds. A
deliberate change of the journeys updates them (and the fixtures and emulators it changes).
"""

from __future__ import annotations

import hashlib

import pytest

from sandbox.journeys import Journeys
from sandbox.world import World, parse_time

T0 = parse_time("2026-01-01T00:00:00Z")
HOUR = 3_600_000

#: (seed, size, ticks after tick 0, growing world) -> SHA-256 of :func:`_digest`
EXPECTED = {
    (7, 300, 0, False): "f182d4f269fbe8b4d990c93481bf84691bee0283c55179c36eea2fa583ab3c30",
    (7, 2000, 3, False): "0f512a4aa2fb7ac4f9c10b9105231c3f34c4440ecbfd15a10fb5dffcc9a0de6f",
    (11, 2000, 3, True): "e3b7537da0011499f5bed933dc22fb31c74df47c75acb5d29f4fc4972f1dcdb1",
    (5, 5000, 3, True): "0401dd5c4b0be5a08995d79d6111e1b6fe2d555869c38382b712a73eb72e2047",
}


def _digest(seed: int, size: int, ticks: int, grow: bool) -> str:
    w = World(seed=seed, size=size, ticks=[T0 + k * HOUR for k in range(ticks + 1)], grow=grow)
    j = Journeys(w)
    t = w.tick
    digest = hashlib.sha256()

    def put(x: object) -> None:
        digest.update(repr(x).encode())
        digest.update(b"\n")

    put([j.campaign(c) for c in range(j.campaign_count())])
    for i in range(w.people.count(t)):
        p = w.person(i)
        put(p)
        if t and i < w.people.base_count:
            put(w.person(i, 0))
        put(j._base_events(p))  # the order emulators read them in, before any sort
        put(j._tick_events(p, t))
        touches = j._touches(p, t)
        put(touches)
        put(j._orders(p, t, touches))
        put((j.email_system(i), j.social_handle(i), j.is_guest_buyer(i)))
    put(sorted(j.base_mentions_between(w.ticks[0] - 300 * 86_400_000, w.ticks[0])))
    return digest.hexdigest()


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda k: "seed{}-size{}-ticks{}-grow{}".format(*k))
def test_people_and_journeys_are_unchanged(key: tuple[int, int, int, bool]) -> None:
    assert _digest(*key) == EXPECTED[key]
