"""Mailchimp Marketing API 3.0 emulator for the sandbox: root/ping, audiences (lists), members,
campaigns and campaign email activity, in Mailchimp's wire format, over the shared sandbox world.

The audience holds the world's people who have an email and whose company (or, without one, the
person) mails through Mailchimp (``Journeys.email_system``), whether or not a send happened yet; the
first person to hold an address owns it (duplicate addresses are one member, as Mailchimp keys
members by address). Membership is a pure function of the person index (the world's and the
journeys' hashes, no person built), so the plain member listing pages by index: members are counted
per block of 10,000 indexes (lazily; base blocks once, the hashes in numpy: ~0.2 s for 1,000,000 people) and a page
computes only the block it falls in; members pages are written as JSON text and computed one
ahead. Filtered or sorted listings (``status``, ``since_last_changed`` before tick 0,
``sort_field``) and lookups by subscriber hash still scan the audience (``since_last_changed``
after tick 0 visits only the people touched since). List stats, campaign reports and email
activity come from a summary of the audience, numbers only (per member its status, times and
counts; per campaign its recipients and their opens, clicks and bounces): one pass over the
members the first time (~22 s CPU and ~40 MB at 1,000,000 people), then updated from the people
each tick touched or archived. Answers whose ``fields`` leave the counts out (the connector's list
and campaign ids) never build it; members pages read once it is built (the connector reads lists
and campaigns first) build no journey, and before, a page's members walk only their base emails'
draws, all at once in numpy (``_base_mail``), with no touch built. Member ids are the MD5 of the lower-cased address.
Campaigns are the journeys' campaigns run by ``mailchimp``; their reports' email activity is the
members' opens, clicks and bounces of that campaign.

Routes (under ``/3.0``): ``/`` and ``/ping``; ``/lists`` and ``/lists/{list_id}``;
``/lists/{list_id}/members`` (``status``, ``since_last_changed``/``before_last_changed``,
``sort_field`` last_changed|timestamp_opt, ``sort_dir``; archived members only with
``status=archived``) and ``/lists/{list_id}/members/{subscriber_hash or address}``; ``/campaigns``
(``since_send_time``/``before_send_time``, ``since_create_time``/``before_create_time``, ``status``,
``sort_field`` create_time|send_time) and ``/campaigns/{id}``; ``/reports/{id}/email-activity``
(``since``). Every route takes ``fields``/``exclude_fields`` (dotted paths).

Wire format: ``count`` (default 10, max 1000) and ``offset`` paging with ``total_items``; times as
``2026-01-02T03:04:05+00:00``; errors as ``application/problem+json`` ``{type, title, status,
detail, instance}``. Auth: HTTP basic (any user name, the API key as password) or ``Bearer <key>``;
the key's ``-us21`` suffix must name this data centre. At most 10 requests are served at once: the
11th concurrent one gets 429.

Sandbox-only: a request header ``X-Sandbox-Delay-Ms`` makes the emulator hold the request that
long while it counts as in flight (to exercise the connection limit).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
import re
import threading
import time
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from itertools import chain, islice
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson

from sandbox.faults import FaultRule
from sandbox.journeys import (
    _S_HANDLE,
    _S_SYSTEM,
    _S_TOUCH,
    _STAGE_RANK,
    ACTIVE_MS,
    BOUNCE_PER_MILLE,
    CLICK_PCT,
    HANDLE_PCT,
    HOUR_MS,
    MINUTE_MS,
    OPEN_PCT,
    UNSUB_PER_MILLE,
    Campaign,
    Journeys,
    Touch,
    _Ev,
)
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.readahead import ReadAhead
from sandbox.routing import Routes
from sandbox.world import (
    _FIRST,
    _LAST,
    _N_FIRST,
    _N_LAST,
    _SECOND_OF_DAY,
    _STAGE_OF_ROLL,
    ARCHIVE_MODULUS,
    CHANGE_MODULUS,
    DAY_MS,
    MAX_BASE_EDIT_MS,
    YEAR_MS,
    Person,
    World,
    _phone,
    _place,
    _stage_dates,
    format_ms,
    parse_time,
)
from sandbox.world import _h as _world_h

try:  # CPython's own MD5: a third of OpenSSL's cost on short inputs (EVP set-up), same digests
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - a build without it
    _md5 = hashlib.md5

__all__ = ["API_KEY", "DATA_CENTER", "MailchimpEmulator", "emulator_spec", "member_id"]

DATA_CENTER = "us21"
API_KEY = f"0123456789abcdef0123456789abcdef-{DATA_CENTER}"
MAX_CONNECTIONS = 10
MAX_COUNT = 1000
DEFAULT_COUNT = 10
SYSTEM = "mailchimp"
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PUBLIC_BASE = f"https://{DATA_CENTER}.api.mailchimp.com/3.0"
PROBLEM = "application/problem+json; charset=utf-8"
_BAD_TIME = "2026-02-31T25:61:00+00:00"
_ACTIONS = {"email_open": "open", "email_click": "click", "email_bounce": "bounce"}
BLOCK = 10_000  # members are counted per block of person indexes (lazily, cached: bounded memory)
_M64 = (1 << 64) - 1
_SHARE_SPAN = 20  # an address is shared only with the next 20 people (sandbox.world)
_EMAIL_INDEX = re.compile(r"(\d+)@")
_AT = itemgetter(0)
_KIND = itemgetter(1)
#: (status, status set ms, opt-in ms, sends (at least 1), opens, clicks) of a member
_Facts = tuple[str, int, int, int, int, int]
_UNSUB_REASON = orjson.dumps("N/A (Unsubscribed by the subscriber)").decode()
#: a member's constant fields between ``last_changed`` and ``list_id``, as JSON
_MEMBER_TAIL = orjson.dumps({
    "language": "", "vip": False, "email_client": "", "location": {
        "latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": "", "region": ""},
    "source": "API - Generic", "tags_count": 0, "tags": []}).decode()[1:-1] + ","
_RECIPIENT_KINDS = frozenset({"email_send", "email_delivered", "email_open", "email_click", "email_bounce",
                              "unsubscribe"})


def emulator_spec() -> EmulatorSpec:
    """The Mailchimp emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(
        name="mailchimp", factory=MailchimpEmulator,
        description="Mailchimp Marketing API 3.0 (lists, members, campaigns, email activity)",
        notes={"auth": "basic anystring:<api_key> or Bearer <api_key>",
               "docs": "https://mailchimp.com/developer/marketing/api/"})


def member_id(email: str) -> str:
    """Mailchimp's subscriber hash: the MD5 of the lower-cased address."""
    return _md5(email.strip().lower().encode()).hexdigest()


def _dt(ms: int | None) -> str:
    """``format_ms(ms)[:19] + "+00:00"`` (two per member: the day's prefix is cached)."""
    if ms is None:
        return ""
    day, sod = divmod(ms // 1000, 86_400)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = format_ms(day * 86_400_000)[:11]
        if len(_DAYS) < 100_000:
            _DAYS[day] = prefix
    return f"{prefix}{_SECOND_OF_DAY[sod][:8]}+00:00"


_DAYS: dict[int, str] = {}
_new_person = object.__new__


def _sec(ms: int) -> int:
    return ms - ms % 1000


def _js(text: str) -> str:
    """A JSON string, as orjson writes it."""
    return orjson.dumps(text).decode()


def _safe_js(text: str) -> str:
    """``_js(text)``, without orjson for text that needs no escape (no quote, backslash or
    control character: addresses and phone numbers)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _js(text)


def _inner(text: str) -> str:
    """``_js(text)`` without its quotes, kept for names (a small vocabulary)."""
    found = _INNER.get(text)
    if found is None:
        found = _js(text)[1:-1]
        if len(_INNER) < 4096:
            _INNER[text] = found
    return found


_INNER: dict[str, str] = {}


@functools.lru_cache(maxsize=1024)
def _rate(n: int, sends: int) -> str:
    """A member's open or click rate as JSON (as orjson writes the float)."""
    return orjson.dumps(round(min(1.0, n / sends), 2)).decode()


def _packed(facts: _Facts) -> tuple[int, ...]:
    """``_Summary.facts`` numbers of a member's ``_facts``."""
    return (_STATUS_CODE[facts[0]], *facts[1:])


def _first(base: list[_Ev], ticked: list[_Ev], kind: str) -> int:
    """Time of the first touch of ``kind`` (one exists) among base events (any order) then tick events."""
    found = [e[0] for e in base if e[1] == kind]
    return min(found) if found else next(e[0] for e in ticked if e[1] == kind)


def _rolled_status(idx: int) -> str:
    """The status of a member who neither unsubscribed nor bounced."""
    roll = int.from_bytes(_md5(b"status:%d" % idx).digest()[:2], "big") % 100
    return "pending" if roll < 3 else "transactional" if roll < 5 else "subscribed"


#: CPython's tuple hash (64-bit xxHash lanes): a journey's draws for a page of members in numpy
_XP1, _XP2, _XP5 = 11400714785074694791, 14029467366897019727, 2870177450012600261
#: draws a member's base emails take at most: 14 for the stages, 1 + 8 for the times, 8 emails of 8
_DRAWS = 88
_U31, _U33 = np.uint64(31), np.uint64(33)
_BIG = 1 << 62  # an email slot past a member's last (sorts last, no overflow when added to)


def _lane(acc: int, item: int) -> int:
    acc = (acc + (hash(item) & _M64) * _XP2) & _M64
    acc = ((acc << 31) | (acc >> 33)) & _M64
    return acc * _XP1 & _M64


def _hashes(*lanes: int | np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """``hash(tuple) & _M64`` of tuples of ints, element-wise, as CPython computes a tuple's hash;
    ``lanes``: each item's own hash, one for all (an int) or one per tuple (an array)."""
    acc: Any = _XP5
    k = 0
    while k < len(lanes) and isinstance(lanes[k], int):  # the common prefix, in Python
        acc = _lane(acc, lanes[k])  # type: ignore[arg-type]  # an int, by the test
        k += 1
    acc = np.uint64(acc)
    for lane in lanes[k:]:
        acc = acc + np.asarray(lane, dtype=np.uint64) * np.uint64(_XP2)
        acc = ((acc << _U31) | (acc >> _U33)) * np.uint64(_XP1)
    out = np.asarray(acc + np.uint64(len(lanes) ^ _XP5 ^ 3527539), dtype=np.uint64)
    out[out == np.uint64(_M64)] = 1546275796
    return out


def _own_hashes(values: range) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """``hash(v) & _M64`` of a range of ints between -2**61 + 2 and 2**61 - 2 (-1 hashes as -2)."""
    a = np.arange(values.start, values.stop, values.step, dtype=np.int64)
    a[a == -1] = -2
    return a.view(np.uint64)


def _draw_matrix(seed: int, salt: int, idxs: Sequence[int]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """``hash((seed, salt, idx, n)) & _M64`` for each idx (rows) and n = 0 .. ``_DRAWS - 1``
    (columns), as CPython computes a tuple's hash (indexes and n are their own hashes)."""
    acc = _lane(_lane(_XP5, seed), salt)
    a = np.asarray(idxs, dtype=np.uint64) * np.uint64(_XP2) + np.uint64(acc)
    a = ((a << _U31) | (a >> _U33)) * np.uint64(_XP1)
    m = a[:, None] + _N_XP2[None, :]
    m = ((m << _U31) | (m >> _U33)) * np.uint64(_XP1) + np.uint64(4 ^ _XP5 ^ 3527539)
    m[m == np.uint64(_M64)] = 1546275796
    return m


_N_XP2 = np.arange(_DRAWS, dtype=np.uint64) * np.uint64(_XP2)
#: numpy gives CPython's hashes (checked once; else members take the journey's own path)
_VECTOR = all(int(_draw_matrix(s, _S_TOUCH, [i])[0, n]) == hash((s, _S_TOUCH, i, n)) & _M64
              for s in (7, -3, 1 << 40) for i in (0, 1, 99_999, 10**9) for n in (0, 1, 5, _DRAWS - 1))


def _base_mail(people: Sequence[Person], seed: int, end: int, base_n: int) -> list[tuple[int, ...]]:
    """Members' Mailchimp base touches (``Journeys._base_events``, system ``mailchimp``: a member's
    email system), reduced to what ``_facts`` needs: (sends, opens, clicks, first touch ms, first
    bounce ms, unsubscribe ms; -1: none) each. The journey's n-th draw is ``hash((seed, _S_TOUCH,
    idx, n))``: the draws come from ``_draw_matrix``, the stages are walked per member (how many
    draws each takes) and the emails for all members at once (numpy, one email slot at a time); no
    event, URL or campaign is built, and nothing after the emails (other systems' touches).
    ``end``: ``ticks[0] - DAY_MS``; ``base_n``: the people created before tick 0.
    tests/test_mailchimp_emulator_speed_identity.py compares the members with ``Journeys.touches``."""
    draws = _draw_matrix(seed, _S_TOUCH, [p.idx for p in people])
    out: list[tuple[int, ...]] = []
    rows: list[int] = []  # members with background emails, and their walk so far
    taken: list[int] = []
    ranks: list[int] = []
    los: list[int] = []
    horizons: list[int] = []
    firsts: list[int] = []
    mql: list[int] = []
    for row, p in enumerate(people):
        idx = p.idx
        created = p.created_ms
        grown = idx >= base_n
        if grown:
            cutoff = horizon = created
        else:
            cutoff = end
            horizon = created + ACTIVE_MS
            if horizon > cutoff:
                horizon = cutoff
        has_email = p.email is not None
        sent = -1
        prev = created
        first_code = -1
        rank = n = 0
        for stage, at in p.stage_dates.items():  # how many draws each stage trigger takes
            if at > cutoff:
                continue
            code = _STAGE_RANK[stage]
            if code > rank and code != 7:
                rank = code
            if first_code < 0:
                first_code = code
                n += 1 if code == 7 or code == 0 else 2
            elif code == 1 or code == 4 or code == 5:
                n += 2
            elif code == 2:
                if has_email:  # send, delivered, click
                    sent = at - HOUR_MS - int(draws[row, n + 1]) % (2 * DAY_MS - HOUR_MS + 1)
                    n += 4
                    if prev > sent:
                        sent = prev
                    if sent > at - 2_000:
                        sent = at - 2_000
                    if created > sent:
                        sent = created
            elif code == 3 or (code == 6 and (hash((seed, _S_HANDLE, idx, 0)) & _M64) % 100 < HANDLE_PCT):
                n += 1
            prev = at
        mails = 0 if sent < 0 else 1
        out.append((mails, 0, mails, sent, -1, -1))
        if not grown and has_email and first_code >= 0 and first_code != 7:
            rows.append(row)
            taken.append(n)
            ranks.append(rank if rank < 4 else 4)
            los.append(created + MINUTE_MS)
            horizons.append(horizon)
            firsts.append(sent)
            mql.append(mails)
    if not rows:
        return out
    d = draws[rows].ravel()  # row k's draw n at k * _DRAWS + n
    r = np.arange(0, len(rows) * _DRAWS, _DRAWS)
    pos = np.asarray(taken, dtype=np.int64) + 1
    n_mails = (d[r + pos] % np.uint64(4)).astype(np.int64) + 1 + np.asarray(ranks, dtype=np.int64)
    lo = np.asarray(los, dtype=np.int64)
    ends = np.asarray(horizons, dtype=np.int64)
    spread = ends > lo
    width = np.where(spread, ends - lo + 1, 1).astype(np.uint64)
    times = np.full((len(rows), 8), _BIG, dtype=np.int64)
    for j in range(8):  # the emails' times (sorted below), drawn only over a window
        when = np.where(spread, lo + (d[r + np.minimum(pos + 1 + j, _DRAWS - 1)] % width).astype(np.int64), lo)
        times[:, j] = np.where(j < n_mails, when, _BIG)
    times.sort(axis=1)
    pos += np.where(spread, n_mails, 0)
    first = np.asarray(firsts, dtype=np.int64)
    first = np.where((first < 0) | (times[:, 0] < first), times[:, 0], first)
    mql_n = np.asarray(mql, dtype=np.int64)
    sends, opens, clicks = mql_n.copy(), np.zeros(len(rows), dtype=np.int64), mql_n.copy()
    bounced = np.full(len(rows), -1, dtype=np.int64)
    unsub = bounced.copy()
    live = np.ones(len(rows), dtype=bool)  # not unsubscribed
    for j in range(8):  # email j of each member: its campaign, bounce or (delivered,) open, click, unsubscribe
        when = times[:, j]
        act = live & (j < n_mails)
        if not act.any():
            break
        sends += act
        pos += 2 * act
        bounce = act & (d[r + pos] % np.uint64(1000) < BOUNCE_PER_MILLE)
        bounced = np.where(bounce & (bounced < 0) & (when + 5_000 <= ends), when + 5_000, bounced)
        act &= ~bounce
        pos += act
        act &= d[r + pos] % np.uint64(100) < OPEN_PCT
        pos += act
        opened = when + 5 * MINUTE_MS + (d[r + pos] % np.uint64(36 * HOUR_MS - 5 * MINUTE_MS + 1)).astype(np.int64)
        act &= opened <= ends
        opens += act
        pos += act
        click = act & (d[r + pos] % np.uint64(100) < CLICK_PCT) & (opened + 20 * MINUTE_MS <= ends)
        pos += 2 * click  # its time and page
        clicks += click
        pos += act
        gone = act & (d[r + pos] % np.uint64(1000) < UNSUB_PER_MILLE) & (opened + MINUTE_MS <= ends)
        unsub = np.where(gone, opened + MINUTE_MS, unsub)
        live &= ~gone
    for row, numbers in zip(rows, zip(sends.tolist(), opens.tolist(), clicks.tolist(), first.tolist(),
                                      bounced.tolist(), unsub.tolist(), strict=True), strict=True):
        out[row] = numbers
    return out


def _hex(*parts: object, n: int = 10) -> str:
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()[:n]


class _MailchimpError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"type": ERROR_TYPE, "title": title, "status": status, "detail": detail,
                             "instance": str(uuid.uuid4())}, headers or {}, content_type=PROBLEM)


def _paths(request: Request, name: str) -> list[list[str]]:
    return [p.strip().split(".") for raw in request.query.get(name, []) for p in raw.split(",") if p.strip()]


def _partial(body: Any, fields: list[list[str]], exclude: list[list[str]]) -> Any:
    """Mailchimp's partial responses: ``fields`` keeps, ``exclude_fields`` drops dotted paths
    (``members.email_address``); a path into a list applies to each item."""

    def keep(node: Any, paths: list[list[str]]) -> Any:
        if isinstance(node, list):
            return [keep(x, paths) for x in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            sub = [p[1:] for p in paths if p[0] == key]
            if not sub:
                continue
            out[key] = value if any(not p for p in sub) else keep(value, [p for p in sub if p])
        return out

    def drop(node: Any, paths: list[list[str]]) -> Any:
        if isinstance(node, list):
            return [drop(x, paths) for x in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            sub = [p[1:] for p in paths if p[0] == key]
            if any(not p for p in sub):
                continue
            out[key] = drop(value, sub) if sub else value
        return out

    if fields:
        body = keep(body, fields)
    return drop(body, exclude) if exclude else body


def _sort(request: Request, allowed: tuple[str, ...]) -> tuple[str | None, bool]:
    """(sort field or None, descending) from ``sort_field`` and ``sort_dir``."""
    field_name = request.arg("sort_field")
    if field_name and field_name not in allowed:
        raise _MailchimpError(400, "Invalid Resource", f"sort_field must be one of {', '.join(allowed)}")
    direction = (request.arg("sort_dir") or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise _MailchimpError(400, "Invalid Resource", "sort_dir must be ASC or DESC")
    return field_name, direction == "DESC"


#: the parts of a list and of a campaign that need the whole audience counted (``_wanted``)
_LIST_SUMMARY = (["stats"],)
_CAMPAIGN_SUMMARY = (["emails_sent"], ["recipients", "recipient_count"], ["report_summary"])


def _wanted(request: Request, prefix: list[str], parts: tuple[list[str], ...]) -> bool:
    """Whether any of ``parts`` (paths in a record, found under ``prefix`` in the body) is left
    in the answer by its ``fields`` / ``exclude_fields`` (``_partial``); True when unsure."""
    fields, exclude = _paths(request, "fields"), _paths(request, "exclude_fields")
    for part in parts:
        path = prefix + part
        kept = not fields or any(f[:len(path)] == path or path[:len(f)] == f for f in fields)
        if kept and not any(path[:len(x)] == x for x in exclude):
            return True
    return False


def _link(rel: str, href: str, method: str = "GET") -> dict[str, str]:
    return {"rel": rel, "href": f"{PUBLIC_BASE}{href}", "method": method}


@dataclass
class _Summary:
    """What list stats, campaign reports and email activity need of the whole audience at one
    tick: a few numbers per member and campaign, never a member's touches (flat per member)."""

    tick: int
    #: status -> members (archived included)
    statuses: dict[str, int]
    #: campaign -> its recipients (ascending person index) and, for each, the time of their last
    #: open, click or bounce of it (-1: none)
    recipients: dict[int, tuple[array[int], array[int]]]
    #: campaign -> [opens, clicks, unique opens, subscribers who clicked]
    reports: dict[int, list[int]]
    #: campaign -> its opens, clicks and bounces as (recipient, at ms, ``_act_code``), by
    #: recipient, each recipient's in the order of their touches
    acts: dict[int, tuple[array[int], array[int], array[int]]] = dataclass_field(default_factory=dict)
    #: every member (ascending person index) and, ``FACTS`` numbers each, their ``_facts`` (the
    #: status as its index in ``_STATUSES``): a members page read after the summary is built (the
    #: connector reads lists and campaigns first) builds no journey
    members: array[int] = dataclass_field(default_factory=lambda: array("q"))
    facts: array[int] = dataclass_field(default_factory=lambda: array("q"))

    def facts_of(self, idx: int) -> _Facts | None:
        """Member ``idx``'s ``_facts`` (None: not a member)."""
        k = bisect_left(self.members, idx)
        if k == len(self.members) or self.members[k] != idx:
            return None
        status, status_ms, opt_in, sends, opens, clicks = self.facts[FACTS * k:FACTS * k + FACTS]
        return _STATUSES[status], status_ms, opt_in, sends, opens, clicks


#: an open, click or bounce of a campaign: (at ms, ``_act_code``)
_Act = tuple[int, int]
#: a member's part of a summary: (facts, campaign -> (opens, clicks, last open/click/bounce ms or
#: -1, the opens, clicks and bounces in touch order))
_Part = tuple[_Facts, dict[int, tuple[int, int, int, tuple[_Act, ...]]]]
_ACT_KINDS = ("email_open", "email_click", "email_bounce")
_ACT_KIND = {k: n for n, k in enumerate(_ACT_KINDS)}
_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
_STATUS_CODE = {s: n for n, s in enumerate(_STATUSES)}
FACTS = 6


class _PageKey(NamedTuple):
    """A members page: the listing (tick and filters), the slice, and which ``_links`` it has."""

    tick: int
    since: int | None
    before: int | None
    status: str | None
    sort_field: str | None
    desc: bool
    offset: int
    limit: int
    links: bool
    top_links: bool


class _Gate:
    """At most ``MAX_CONNECTIONS`` requests in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0

    def enter(self) -> bool:
        with self._lock:
            if self.in_flight >= MAX_CONNECTIONS:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


_ROUTE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("GET", r"^/3\.0/?$", "root"),
    ("GET", r"^/3\.0/ping/?$", "ping"),
    ("GET", r"^/3\.0/lists/?$", "lists"),
    ("GET", r"^/3\.0/lists/(?P<list_id>[^/]+)/?$", "list"),
    ("GET", r"^/3\.0/lists/(?P<list_id>[^/]+)/members/?$", "members"),
    ("GET", r"^/3\.0/lists/(?P<list_id>[^/]+)/members/(?P<hash>[^/]+)/?$", "member_get"),
    ("GET", r"^/3\.0/campaigns/?$", "campaigns_route"),
    ("GET", r"^/3\.0/campaigns/(?P<campaign_id>[^/]+)/?$", "campaign_get"),
    ("GET", r"^/3\.0/reports/(?P<campaign_id>[^/]+)/email-activity/?$", "email_activity"),
)
_TEMPLATES = {
    "root": "GET /3.0/", "ping": "GET /3.0/ping", "lists": "GET /3.0/lists", "list": "GET /3.0/lists/{list_id}",
    "members": "GET /3.0/lists/{list_id}/members", "member_get": "GET /3.0/lists/{list_id}/members/{subscriber_hash}",
    "campaigns_route": "GET /3.0/campaigns", "campaign_get": "GET /3.0/campaigns/{campaign_id}",
    "email_activity": "GET /3.0/reports/{campaign_id}/email-activity",
}
_ROUTES = Routes(*((m, p, name, _TEMPLATES[name]) for m, p, name in _ROUTE_ROWS))


class MailchimpEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        self.world = world
        self.journeys = Journeys(world)
        self._end = world.ticks[0] - DAY_MS  # base touches end there (``_base_mail``)
        self._base_n = world.people.base_count
        self.rate_limits = options.rate_limits
        self.gate = _Gate()
        self.list_id = _hex("list", world.seed)
        self._company_names: dict[int, str] = {}
        #: members pages are computed one ahead (serving overlaps the client's parsing); a page a
        #: request already asked for (the connector asks for several at once) is not prefetched
        self._pages: ReadAhead[_PageKey, tuple[bytes, int, int]] = ReadAhead(self._member_page,
                                                                             name="mailchimp-readahead")
        self._claimed: dict[_PageKey, None] = {}
        self._members_href = f"{PUBLIC_BASE}/lists/{self.list_id}/members"
        self._member_tail = f'{_MEMBER_TAIL}"list_id":"{self.list_id}"'
        self._members_parent = orjson.dumps(_link("parent", f"/lists/{self.list_id}/members")).decode()
        self._members_links = orjson.dumps([_link("self", f"/lists/{self.list_id}/members"),
                                            _link("parent", f"/lists/{self.list_id}")]).decode()
        self._summary: _Summary | None = None
        #: click URLs by ``_act_code`` (append-only: a few per campaign)
        self._urls: list[str | None] = [None]
        self._url_ids: dict[str | None, int] = {None: 0}
        self._campaign_list: tuple[int, list[Campaign]] | None = None
        self._campaign_idxs: tuple[list[Campaign], frozenset[int]] | None = None
        self._summary_lock = threading.Lock()
        self._lock = threading.Lock()
        #: block -> members in it (archived included), for blocks of base people (tick-independent)
        self._raw_counts: dict[int, int] = {}
        #: tick -> (archived members by block, members not archived per block); the latest tick only
        self._live: tuple[int, dict[int, list[int]], list[int]] | None = None
        #: (tick, filters) -> matching rows: the last few filtered or sorted listings (they scan)
        self._listings: dict[tuple[Any, ...], list[tuple[int, str, int]]] = {}
        self._hashes: tuple[int, dict[str, int]] | None = None
        self._last_block: tuple[tuple[int, int], list[int]] | None = None
        self._campaign_ids = {_hex("campaign", world.seed, c): c for c in range(self.journeys.campaign_count())}

    # -- Emulator protocol -----------------------------------------------------------------------

    def close(self) -> None:
        self._pages.close()

    def settings(self, base_url: str) -> dict[str, str]:
        return {"base_url": base_url, "api_root": f"{base_url}/3.0", "api_key": API_KEY, "server": DATA_CENTER,
                "list_id": self.list_id}

    def _match(self, request: Request) -> tuple[str, dict[str, str]] | None:
        return _ROUTES.match(request)

    def route(self, request: Request) -> str:
        return _ROUTES.route(request)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind == "rate_limit":
            return _problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.",
                            {"Retry-After": f"{rule.retry_after:g}"})
        if rule.kind == "expired_token":
            return _problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access "
                                                    "the wrong datacenter.")
        title = "Service Unavailable" if rule.status == 503 else "Internal Server Error"
        return _problem(rule.status, title, "An unexpected internal error has occurred. Please contact Support "
                                            "for more information.")

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        if isinstance(response.body, bytes):  # a members page, written as JSON
            response.body = orjson.loads(response.body)
        body = response.body
        records: Any = None
        if isinstance(body, dict):
            for key in ("members", "emails", "campaigns", "lists"):
                if isinstance(body.get(key), list) and body[key]:
                    records = body[key]
                    break
        if not records:
            return response
        if kind == "bad_timestamp":  # email activity carries its times only in the activity items
            records = [r for r in records if "activity" not in r or r["activity"]] or records
        target = records[rng.randrange(len(records))]
        if kind == "missing_id":
            target.pop("id", None)
            target.pop("email_id", None)
        else:
            for key in ("last_changed", "send_time", "create_time", "date_created"):
                if key in target:
                    target[key] = _BAD_TIME
            for act in target.get("activity", ()):
                act["timestamp"] = _BAD_TIME
        return response

    def handle(self, request: Request) -> Response:
        if not self.gate.enter():
            return _problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
        try:
            delay = request.headers.get("x-sandbox-delay-ms")
            if delay:
                time.sleep(min(float(delay), 30_000) / 1000)
            self._authenticate(request)
            found = self._match(request)
            if found is None:
                raise _MailchimpError(404, "Resource Not Found", "The requested resource could not be found.")
            name, params = found
            resp: Response = getattr(self, f"_{name}")(request, **params)
            fields = _paths(request, "fields")
            exclude = _paths(request, "exclude_fields")
            if (fields or exclude) and name != "members":  # a members page comes cut already
                body = orjson.loads(resp.body) if isinstance(resp.body, bytes) else resp.body
                if isinstance(body, dict):
                    resp.body = _partial(body, fields, exclude)
        except _MailchimpError as exc:
            resp = _problem(exc.status, exc.title, exc.detail)
        finally:
            self.gate.leave()
        return resp

    # -- auth ------------------------------------------------------------------------------------

    @staticmethod
    def _authenticate(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        key: str | None = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(cred.strip()).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        elif scheme.lower() in ("bearer", "apikey", "oauth"):
            key = cred.strip()
        if not auth or key is None:
            raise _MailchimpError(401, "API Key Missing", "Your request did not include an API key.")
        if key != API_KEY:
            raise _MailchimpError(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to "
                                                          "access the wrong datacenter.")

    # -- paging ----------------------------------------------------------------------------------

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        try:
            count = int(request.arg("count") or DEFAULT_COUNT)
            offset = int(request.arg("offset") or 0)
        except ValueError as exc:
            raise _MailchimpError(400, "Invalid Resource", f"The resource submitted could not be validated: {exc}") \
                from exc
        if not 0 <= count <= MAX_COUNT:
            raise _MailchimpError(400, "Invalid Resource",
                                  f"The value you have specified for count ({count}) is greater than the maximum "
                                  f"of {MAX_COUNT}." if count > MAX_COUNT else "count must not be negative")
        if offset < 0:
            raise _MailchimpError(400, "Invalid Resource", "offset must not be negative")
        return count, offset

    @staticmethod
    def _time_arg(request: Request, name: str) -> int | None:
        raw = request.arg(name)
        if not raw:
            return None
        try:
            ms = parse_time(raw)
        except ValueError as exc:
            raise _MailchimpError(400, "Invalid Resource",
                                  f"The value for {name} must be an ISO 8601 date-time ('{raw}')") from exc
        return ms - ms % 1000  # Mailchimp keeps times to the second; so do the comparisons

    # -- audience --------------------------------------------------------------------------------

    def summary(self) -> _Summary:
        """The audience's numbers now: built in one pass over the members (O(audience) time, O(members
        + recipients) small numbers), then updated from the previous tick's as the clock advances
        (O(people touched or archived since))."""
        tick = self.world.tick
        with self._summary_lock:  # one builder; the others wait for its result
            old = self._summary
            if old is not None and old.tick == tick:
                return old
            if old is None or old.tick > tick:
                new = self._summarise(tick)
            else:
                new = self._advance_summary(old, tick)
            self._summary = new
            return new

    def _part(self, idx: int, tick: int) -> _Part | None:
        """A member's part of the summary at ``tick`` (None: not a member then)."""
        if idx >= self.world.people.count(tick) or not self._is_member(idx, tick):
            return None
        person = self.world.person(idx, tick)
        base, ticked = self._mine(person, tick)
        facts = self._facts_of(person, base, ticked)
        camps: dict[int, list[int]] = {}
        for _, kind, c, _, _ in chain(base, ticked):
            if c is None or kind not in _RECIPIENT_KINDS:
                continue
            got = camps.get(c)
            if got is None:
                got = camps[c] = [0, 0, -1]
            if kind == "email_open":
                got[0] += 1
            elif kind == "email_click":
                got[1] += 1
        # the touches' order (``_member_touches``): base events by time (a stable sort), then ticks'
        acts = [e for e in base if e[1] in _ACTIONS and e[2] is not None]
        acts.sort(key=_AT)
        acts += [e for e in ticked if e[1] in _ACTIONS and e[2] is not None]
        mine: dict[int, list[_Act]] = {}
        for at, kind, c, _, url in acts:
            assert c is not None
            mine.setdefault(c, []).append((at, self._act_code(kind, url)))
            camps[c][2] = max(camps[c][2], at)
        return facts, {c: (o, k, last, tuple(mine.get(c, ()))) for c, (o, k, last) in camps.items()}

    def _act_code(self, kind: str, url: str | None) -> int:
        """An open, click or bounce as a number: its kind and the index of its click URL."""
        if kind != "email_click":
            url = None
        found = self._url_ids.get(url)
        if found is None:
            with self._lock:
                found = self._url_ids.get(url)
                if found is None:
                    self._urls.append(url)
                    found = self._url_ids[url] = len(self._urls) - 1
        return _ACT_KIND[kind] | found << 2

    def _summarise(self, tick: int) -> _Summary:
        out = _Summary(tick, {}, {}, {})
        for idx in self._all_members(tick):
            part = self._part(idx, tick)
            if part is not None:  # members ascending: appending keeps the recipients sorted
                self._add_part(out, idx, part, append=True)
                out.members.append(idx)
                out.facts.extend(_packed(part[0]))
        return out

    def _advance_summary(self, old: _Summary, tick: int) -> _Summary:
        """``old`` moved to ``tick``: only the people a later tick touched, created or archived change."""
        w = self.world
        changed = set(self.journeys.people_touched_since(w.ticks[old.tick] + 1, tick))
        changed.update(w.archived_indexes(w.people, tick))
        new = _Summary(tick, dict(old.statuses), dict(old.recipients), {c: list(r) for c, r in old.reports.items()},
                       acts=dict(old.acts), members=array("q", old.members), facts=array("q", old.facts))
        copied: set[int] = set()  # campaigns whose arrays are this summary's own (the old one may be read)
        for idx in sorted(changed):
            before, after = self._part(idx, old.tick), self._part(idx, tick)
            if before == after:
                continue
            for c in {*(before[1] if before else ()), *(after[1] if after else ())}:
                if c in new.recipients and c not in copied:
                    ids, last = new.recipients[c]
                    new.recipients[c] = (array("q", ids), array("q", last))
                    owners, ats, codes = new.acts[c]
                    new.acts[c] = (array("q", owners), array("q", ats), array("q", codes))
                copied.add(c)
            if before is not None:
                self._add_part(new, idx, before, sign=-1)
            if after is not None:
                self._add_part(new, idx, after)
            k = bisect_left(new.members, idx)
            found = k < len(new.members) and new.members[k] == idx
            if after is None:
                if found:
                    del new.members[k], new.facts[FACTS * k:FACTS * k + FACTS]
            elif found:
                new.facts[FACTS * k:FACTS * k + FACTS] = array("q", _packed(after[0]))
            else:
                new.members.insert(k, idx)
                new.facts[FACTS * k:FACTS * k] = array("q", _packed(after[0]))
        return new

    @staticmethod
    def _add_part(out: _Summary, idx: int, part: _Part, sign: int = 1, append: bool = False) -> None:
        (status, *_), camps = part
        out.statuses[status] = out.statuses.get(status, 0) + sign
        for c, (opens, clicks, last, acts) in camps.items():
            report = out.reports.get(c)
            if report is None:
                report = out.reports[c] = [0, 0, 0, 0]
            report[0] += sign * opens
            report[1] += sign * clicks
            report[2] += sign * (opens > 0)
            report[3] += sign * (clicks > 0)
            found = out.recipients.get(c)
            if found is None:
                found = out.recipients[c] = (array("q"), array("q"))
                out.acts[c] = (array("q"), array("q"), array("q"))
            ids, lasts = found
            owners, ats, codes = out.acts[c]
            if append:
                ids.append(idx)
                lasts.append(last)
                owners.extend([idx] * len(acts))
                ats.extend([a for a, _ in acts])
                codes.extend([code for _, code in acts])
                continue
            at = bisect_left(ids, idx)
            lo = bisect_left(owners, idx)
            if sign < 0:
                del ids[at], lasts[at]
                del owners[lo:lo + len(acts)], ats[lo:lo + len(acts)], codes[lo:lo + len(acts)]
            else:
                ids.insert(at, idx)
                lasts.insert(at, last)
                owners[lo:lo] = array("q", [idx] * len(acts))
                ats[lo:lo] = array("q", [a for a, _ in acts])
                codes[lo:lo] = array("q", [code for _, code in acts])

    # -- membership: a pure function of the person index ------------------------------------------

    def _address_of(self, idx: int) -> int | None:
        """The index whose clean address person ``idx`` holds (``None``: no address), by the world's
        hashes: 3% have none, 2% share an address made for one of the 20 people before them."""
        h2 = _world_h(self.world.seed, 14, idx)
        roll = h2 % 100
        if roll < 3:
            return None
        if roll < 5 and idx > 0:
            return max(0, idx - 1 - (h2 >> 8) % _SHARE_SPAN)
        return idx

    def _mailchimp_mails(self, idx: int) -> bool:
        """Whether the person's company (or, without one, the person) mails through Mailchimp:
        ``Journeys.email_system`` by the same hash."""
        j = self.world.company_of(idx)
        return (hash((self.journeys.seed, _S_SYSTEM, -1 - idx if j is None else j, 0)) & _M64) % 100 >= 75

    def _is_member(self, idx: int, tick: int) -> bool:
        """Person ``idx`` (existing at ``tick``) is a member: has an address, their company mails
        through Mailchimp, and is the first such holder of the address (shared addresses belong to
        the lowest index). O(1), no person or journey built."""
        address = self._address_of(idx)
        if address is None or not self._mailchimp_mails(idx):
            return False
        return address == idx or not any(self._address_of(p) == address and self._mailchimp_mails(p)
                                         for p in range(address, idx))

    def _block_members(self, b: int, tick: int) -> list[int]:
        """Members (archived included) with indexes in block ``b``, ascending: ``_is_member`` over
        the block with the hashes taken in numpy (1,000,000 people in ~0.2 s, vs 0.7 s one by one)."""
        w = self.world
        seed, jseed, salt = w.seed, self.journeys.seed, _S_SYSTEM
        people = range(b * BLOCK, min(w.people.count(tick), (b + 1) * BLOCK))
        if not people:
            return []
        if (people.stop - 1) // 5 >= w.companies.count(w.tick) or people.start % 5:
            return [i for i in people if self._is_member(i, tick)]
        # company j employs people 5j .. 5j+4 (World.company_of); 12% have no company. The
        # hashes are CPython's tuple hashes, taken in numpy (``_hashes``)
        hundred = np.uint64(100)
        no_company = _hashes(seed, 12, _own_hashes(people)) % hundred < 12
        jobs = range(people.start // 5, (people.stop - 1) // 5 + 1)
        by_company = np.repeat(_hashes(jseed, salt, _own_hashes(jobs), 0) % hundred >= 75, 5)[:len(people)]
        own = _hashes(jseed, salt, _own_hashes(range(-1 - people.start, -1 - people.stop, -1)), 0) % hundred >= 75
        candidates = np.flatnonzero(np.where(no_company, own, by_company)) + people.start
        e = _hashes(seed, 14, candidates.astype(np.uint64)) % hundred
        keep = e >= 5
        for k in np.flatnonzero((e >= 3) & ~keep).tolist():  # 3..4: a shared address, maybe owned
            keep[k] = self._is_member(int(candidates[k]), tick)
        out: list[int] = candidates[keep].tolist()
        return out

    def _block_count(self, b: int, tick: int) -> int:
        space = self.world.people
        if (b + 1) * BLOCK > space.base_count:  # holds grown people: depends on the tick
            return len(self._block_members(b, tick))
        with self._lock:
            hit = self._raw_counts.get(b)
        if hit is None:
            hit = len(self._block_members(b, tick))
            with self._lock:
                self._raw_counts[b] = hit
        return hit

    def _live_counts(self, tick: int) -> tuple[dict[int, list[int]], list[int]]:
        """(archived members by block, members not archived per block) at ``tick``, cached for the tick:
        O(blocks + archived people)."""
        with self._lock:
            live = self._live
        if live is not None and live[0] == tick:
            return live[1], live[2]
        archived: dict[int, list[int]] = {}
        for idx in self.world.archived_indexes(self.world.people, tick):
            if self._is_member(idx, tick):
                archived.setdefault(idx // BLOCK, []).append(idx)
        blocks = -(-self.world.people.count(tick) // BLOCK)
        counts = [self._block_count(b, tick) - len(archived.get(b, ())) for b in range(blocks)]
        with self._lock:
            self._live = (tick, archived, counts)
        return archived, counts

    def _live_slice(self, lo: int, hi: int, tick: int) -> list[int]:
        """The not-archived members ranked ``lo`` .. ``hi - 1`` (ascending index order)."""
        archived, counts = self._live_counts(tick)
        out: list[int] = []
        seen = 0
        for b, n in enumerate(counts):
            if seen + n <= lo:
                seen += n
                continue
            if seen >= hi:
                break
            live = self._page_block(b, tick)
            gone = archived.get(b)
            if gone:
                dropped = set(gone)
                live = [idx for idx in live if idx not in dropped]
            out += live[max(0, lo - seen):hi - seen]  # the block's members ranked seen, seen + 1, ...
            seen += len(live)
        return out

    def _page_block(self, b: int, tick: int) -> list[int]:
        """``_block_members`` of the block the last page ended in: a 1,000-member page spans
        ~4,000 indexes of a 10,000-index block, so consecutive pages reuse it (one block held)."""
        with self._lock:
            hit = self._last_block
        if hit is not None and hit[0] == (b, tick):
            return hit[1]
        members = self._block_members(b, tick)
        with self._lock:
            self._last_block = ((b, tick), members)
        return members

    def _member_touches(self, idx: int, tick: int, person: Person | None = None) -> list[Touch]:
        """``[x for x in journeys.touches(idx, tick) if x.system == SYSTEM]``, from ``person`` when
        the caller has built it: the journey's events in ``Journeys._touches``'s order (``seq`` is
        the position among all of them), but only Mailchimp's made into :class:`Touch` records (a
        third of a member's serving time went to building the other systems' touches)."""
        j = self.journeys
        p = self.world.person(idx, tick) if person is None else person
        evs = j._base_events(p)
        evs.sort(key=_AT)  # stable: same-time events keep their causal order (as Journeys._touches)
        evs.extend(j._tick_events(p, tick))
        return [Touch(idx, n, kind, at, camp, system, url)
                for n, (at, kind, camp, system, url) in enumerate(evs) if system == SYSTEM]

    def _by_address(self, address: str, tick: int) -> int | None:
        """The member holding an address: addresses embed the index of the person they were made for."""
        email = address.strip().lower()
        m = _EMAIL_INDEX.search(email)
        if m is None:
            return None
        base, count = int(m.group(1)), self.world.people.count(tick)
        for i in range(base, min(count, base + _SHARE_SPAN + 1)):
            if (self.world.person(i, tick).email or "").strip().lower() == email and self._is_member(i, tick):
                return i
        return None

    def _mine(self, person: Person, tick: int) -> tuple[list[_Ev], list[_Ev]]:
        """The person's Mailchimp touches as (base events, in no order; tick events, in order):
        ``_member_touches`` without the sort and without making them :class:`Touch` records."""
        j = self.journeys
        base = [e for e in j._base_events(person) if e[3] == SYSTEM]
        ticked = j._tick_events(person, tick)
        if ticked:
            ticked = [e for e in ticked if e[3] == SYSTEM]
        return base, ticked

    def _facts(self, person: Person, tick: int) -> _Facts:
        """(status, time it was last set, opt-in time, sends, opens, clicks) of a member: from the
        summary when it is built for ``tick``, else from the journey."""
        return self._facts_many([person], tick)[0]

    def _facts_many(self, people: Sequence[Person], tick: int) -> list[_Facts]:
        """``_facts`` of several members: a page's base emails walked at once (``_base_mail``); a
        few members (a single read) through ``_mine``, which builds their touches."""
        summary = self._summary
        out: list[_Facts | None] = [None] * len(people)
        todo: list[int] = []
        for k, person in enumerate(people):
            found = summary.facts_of(person.idx) if summary is not None and summary.tick == tick else None
            if found is not None:
                out[k] = found
            elif len(people) < 8 or not _VECTOR:
                out[k] = self._facts_of(person, *self._mine(person, tick))
            else:
                todo.append(k)
        if todo:
            walked = _base_mail([people[k] for k in todo], self.world.seed, self._end, self._base_n)
            for k, numbers in zip(todo, walked, strict=True):
                out[k] = self._facts_from(people[k], tick, *numbers)
        return out  # type: ignore[return-value]  # every slot filled

    def _facts_from(self, person: Person, tick: int, sends: int, opens: int, clicks: int, opt_in: int,
                    bounced: int, unsub: int) -> _Facts:
        """``_facts_of`` from ``_base_mail``'s numbers and the person's tick events (a tick that
        changes a person sets its ``modified_ms`` to that tick's time: the others have none)."""
        ticks = self.world.ticks
        changed = tick and person.modified_ms >= ticks[1]
        for at, kind, _, system, _ in self.journeys._tick_events(person, tick) if changed else ():
            if system != SYSTEM:
                continue
            if opt_in < 0:
                opt_in = at
            if kind == "email_send":
                sends += 1
            elif kind == "email_open":
                opens += 1
            elif kind == "email_click":
                clicks += 1
            elif kind == "unsubscribe" and unsub < 0:
                unsub = at
            elif kind == "email_bounce" and bounced < 0:
                bounced = at
        if opt_in < 0:
            opt_in = person.created_ms
        if person.archived_ms is not None:
            status, status_ms = "archived", person.archived_ms
        elif unsub >= 0:
            status, status_ms = "unsubscribed", unsub
        elif bounced >= 0:
            status, status_ms = "cleaned", bounced
        else:
            status, status_ms = _rolled_status(person.idx), opt_in
        return status, status_ms, opt_in, sends or 1, opens, clicks

    @staticmethod
    def _facts_of(person: Person, base: list[_Ev], ticked: list[_Ev]) -> _Facts:
        """``_facts`` from ``_mine``: the touches are the base events in time order (a stable sort)
        then the tick events, so the first touch of a kind is the earliest base one, else the
        first tick one."""
        kinds = list(map(_KIND, base))
        if ticked:
            kinds += map(_KIND, ticked)
        opt_in = min(map(_AT, base)) if base else ticked[0][0] if ticked else person.created_ms
        if person.archived_ms is not None:
            status, status_ms = "archived", person.archived_ms
        elif "unsubscribe" in kinds:
            status, status_ms = "unsubscribed", _first(base, ticked, "unsubscribe")
        elif "email_bounce" in kinds:
            status, status_ms = "cleaned", _first(base, ticked, "email_bounce")
        else:
            status, status_ms = _rolled_status(person.idx), opt_in
        return (status, status_ms, opt_in, kinds.count("email_send") or 1, kinds.count("email_open"),
                kinds.count("email_click"))

    def _member_json(self, person: Person, facts: _Facts, tick: int, links: bool = True) -> str:
        """A member's record as JSON text, exactly ``orjson.dumps`` of the record (the keys in
        Mailchimp's order, compact), written as text: building the dict and encoding it cost
        more than the rest of the record. ``links``: with ``_links``."""
        idx = person.idx
        status, status_ms, opt_in, sends, opens, clicks = facts
        email = (person.email or "").strip()
        h = _md5(email.lower().encode()).hexdigest()
        j = person.company_idx
        company = '""' if j is None else self._company_json(j, tick)
        seed = self.world.seed
        last_changed = person.modified_ms
        if status_ms > last_changed:
            last_changed = status_ms
        if opt_in > last_changed:
            last_changed = opt_in
        first, last = person.first_name, person.last_name  # JSON-escaped (a small vocabulary)
        first = _INNER.get(first) or _inner(first)
        last = _INNER.get(last) or _inner(last)
        phone = person.phone or ""
        # ``_dt`` of both times, inlined (the day's prefix cached)
        day, sod = divmod(opt_in // 1000, 86_400)
        opt_day = _DAYS.get(day) or _dt(day * 86_400_000)[:11]
        opt_text = f"{opt_day}{_SECOND_OF_DAY[sod][:8]}+00:00"
        day, sod = divmod(last_changed // 1000, 86_400)
        changed_day = _DAYS.get(day) or _dt(day * 86_400_000)[:11]
        text = (f'{{"id":"{h}","email_address":{_safe_js(email)},'
                f'"unique_email_id":"{_md5(b"unique:%d:%d" % (seed, idx)).hexdigest()[:10]}",'
                f'"contact_id":"{_md5(b"contact:%d:%d" % (seed, idx)).hexdigest()}",'
                f'"full_name":"{first} {last}","web_id":{100_000 + idx},"email_type":"html",'
                f'"status":"{status}","unsubscribe_reason":'
                f'{_UNSUB_REASON if status == "unsubscribed" else "null"},'
                f'"consents_to_one_to_one_messaging":true,"merge_fields":{{"FNAME":"{first}",'
                f'"LNAME":"{last}","PHONE":{_safe_js(phone)},"COMPANY":{company}}},'
                f'"stats":{{"avg_open_rate":{_rate(opens, sends)},"avg_click_rate":{_rate(clicks, sends)}}},'
                f'"ip_signup":"","timestamp_signup":"","ip_opt":"198.51.100.{idx % 250 + 1}",'
                f'"timestamp_opt":"{opt_text}","member_rating":{2 + min(3, opens + clicks)},'
                f'"last_changed":"{changed_day}{_SECOND_OF_DAY[sod][:8]}+00:00",{self._member_tail}')
        if links:
            return f'{text},"_links":[{{"rel":"self","href":"{self._members_href}/{h}","method":"GET"}},' \
                   f'{self._members_parent}]}}'
        return text + "}"

    def _member_of(self, idx: int, tick: int) -> dict[str, Any]:
        """A member's record."""
        person = self.world.person(idx, tick)
        record: dict[str, Any] = orjson.loads(self._member_json(person, self._facts(person, tick), tick))
        return record

    def _company_json(self, j: int, tick: int) -> str:
        """``world.company(j, tick).name`` as JSON, without building the company (names never
        change; the last few kept: neighbours share a company)."""
        if not 0 <= j < self.world.companies.count(tick):
            raise IndexError(j)
        name = self._company_names.get(j)
        if name is None:
            if len(self._company_names) >= 1024:
                self._company_names.clear()
            name = self._company_names[j] = _js(self.world._company_name(j)[0])
        return name

    def _check_list(self, list_id: str) -> None:
        if list_id != self.list_id:
            raise _MailchimpError(404, "Resource Not Found", "The requested resource could not be found.")

    # -- routes ----------------------------------------------------------------------------------

    def _root(self, request: Request) -> Response:
        archived, counts = self._live_counts(self.world.tick)
        return Response(200, {
            "account_id": _hex("account", self.world.seed, n=25), "login_id": "100001",
            "account_name": "Factoryline Sandbox", "email": "marketing@factoryline.example",
            "first_name": "Factory", "last_name": "Line", "username": "factoryline-sandbox", "avatar_url": "",
            "role": "owner", "member_since": _dt(self.world.ticks[0] - 400 * 86_400_000), "pricing_plan_type":
                "monthly", "first_payment": "", "account_timezone": "UTC", "account_industry": "Software",
            "contact": {"company": "Factoryline", "addr1": "1 Main St", "addr2": "", "city": "Boston", "state": "MA",
                        "zip": "02110", "country": "US"},
            "pro_enabled": False, "last_login": _dt(self.world.ticks[self.world.tick]),
            "total_subscribers": sum(counts) + sum(len(ids) for ids in archived.values()),
            "industry_stats": {"open_rate": 0.21, "bounce_rate": 0.01, "click_rate": 0.03},
            "_links": [_link("self", "/"), _link("lists", "/lists"), _link("campaigns", "/campaigns")],
        })

    def _ping(self, request: Request) -> Response:
        return Response(200, {"health_status": "Everything's Chimpy!"})

    def _all_members(self, tick: int) -> Iterable[int]:
        for b in range(-(-self.world.people.count(tick) // BLOCK)):
            yield from self._block_members(b, tick)

    def _listing(self, tick: int, since: int | None, before: int | None, wanted: str | None,
                 sort_field: str | None, desc: bool) -> list[tuple[int, str, int]]:
        """The rows of a filtered or sorted member listing: from the people touched since ``since``
        (O(changed)) when it is after tick 0, from the archived members for ``status=archived``,
        else from every member (O(audience); the last few listings are cached)."""
        key = (tick, since, before, wanted, sort_field, desc)
        with self._lock:
            hit = self._listings.get(key)
        if hit is not None:
            return hit
        candidates: Iterable[int]
        archived, _ = self._live_counts(tick)
        if wanted == "archived":
            candidates = sorted(i for ids in archived.values() for i in ids)
        elif since is not None and since > self.world.ticks[0]:
            touched = (i for i in self.journeys.people_touched_since(since, tick) if self._is_member(i, tick))
            candidates = sorted({*touched, *(i for ids in archived.values() for i in ids)})
        else:
            candidates = self._all_members(tick)
        rows = []
        opt_ins: dict[int, int] = {}
        chunks = iter(candidates)
        while chunk := list(islice(chunks, MAX_COUNT)):  # (person, status, last changed to the second)
            people = [self.world.person(idx, tick) for idx in chunk]
            for person, (status, status_ms, opt_in, _, _, _) in zip(people, self._facts_many(people, tick),
                                                                     strict=True):
                if (wanted is not None and status != wanted) or (wanted is None and status == "archived"):
                    continue
                changed = _sec(max(status_ms, opt_in, person.modified_ms))
                if (since is not None and changed < since) or (before is not None and changed > before):
                    continue
                rows.append((person.idx, status, changed))
                opt_ins[person.idx] = opt_in
        if sort_field == "last_changed":
            rows.sort(key=lambda r: r[2], reverse=desc)
        elif sort_field is not None:  # opt-in time: the first Mailchimp touch
            rows.sort(key=lambda r: opt_ins[r[0]], reverse=desc)
        elif desc:
            rows.reverse()
        with self._lock:
            self._listings[key] = rows
            while len(self._listings) > 4:
                self._listings.pop(next(iter(self._listings)))
        return rows

    def _list_record(self, with_stats: bool = True) -> dict[str, Any]:
        """The list (``with_stats`` False: its member counts are zeros, for answers that leave
        them out: counting needs the whole audience)."""
        counts = self.summary().statuses if with_stats else {}
        return {
            "id": self.list_id, "web_id": 1001, "name": "Factoryline Newsletter",
            "contact": {"company": "Factoryline", "address1": "1 Main St", "address2": "", "city": "Boston",
                        "state": "MA", "zip": "02110", "country": "US", "phone": ""},
            "permission_reminder": "You signed up on factoryline.example.", "use_archive_bar": True,
            "campaign_defaults": {"from_name": "Factoryline", "from_email": "news@factoryline.example",
                                  "subject": "", "language": "en"},
            "notify_on_subscribe": "", "notify_on_unsubscribe": "",
            "date_created": _dt(self.world.ticks[0] - 380 * 86_400_000), "list_rating": 3,
            "email_type_option": False, "subscribe_url_short": "http://eepurl.com/sandbox",
            "subscribe_url_long": f"https://factoryline.us21.list-manage.com/subscribe?u=sandbox&id={self.list_id}",
            "beamer_address": "", "visibility": "prv", "double_optin": False, "has_welcome": False,
            "marketing_permissions": False, "modules": [],
            "stats": {"member_count": counts.get("subscribed", 0), "unsubscribe_count": counts.get("unsubscribed", 0),
                      "cleaned_count": counts.get("cleaned", 0), "member_count_since_send": 0,
                      "unsubscribe_count_since_send": 0, "cleaned_count_since_send": 0,
                      "campaign_count": len(self._campaigns()), "avg_sub_rate": 0, "avg_unsub_rate": 0,
                      "target_sub_rate": 0, "open_rate": 0.21, "click_rate": 0.03},
            "_links": [_link("self", f"/lists/{self.list_id}"), _link("members", f"/lists/{self.list_id}/members")],
        }

    def _lists(self, request: Request) -> Response:
        count, offset = self._paging(request)
        rows = [self._list_record(_wanted(request, ["lists"], _LIST_SUMMARY))] if offset == 0 and count else []
        return Response(200, {"lists": rows, "total_items": 1, "constraints": {
            "may_create": True, "max_instances": 5, "current_total_instances": 1},
            "_links": [_link("self", "/lists")]}, records=len(rows))

    def _list(self, request: Request, list_id: str) -> Response:
        self._check_list(list_id)
        return Response(200, self._list_record(_wanted(request, [], _LIST_SUMMARY)), records=1)

    def _members(self, request: Request, list_id: str) -> Response:
        self._check_list(list_id)
        count, offset = self._paging(request)
        since = self._time_arg(request, "since_last_changed")
        before = self._time_arg(request, "before_last_changed")
        wanted = request.arg("status")
        sort_field, desc = _sort(request, ("timestamp_opt", "timestamp_signup", "last_changed"))
        fields, exclude = _paths(request, "fields"), _paths(request, "exclude_fields")
        # the connector's partial response (no links) is written as such; any other one is cut
        # from the whole page (orjson gives the same dict back)
        fast = not fields and all(p in (["_links"], ["members", "_links"]) for p in exclude)
        key = _PageKey(self.world.tick, since, before, wanted, sort_field, desc, offset, count,
                       not fast or ["members", "_links"] not in exclude, not fast or ["_links"] not in exclude)
        if not fast:
            body, records, _ = self._member_page(key)
            return Response(200, _partial(orjson.loads(body), fields, exclude), records=records)
        with self._lock:  # pages being computed or served: not worth a prefetch
            self._claimed[key] = None
            while len(self._claimed) > 64:
                self._claimed.pop(next(iter(self._claimed)))
        body, records, matched = self._pages.get(key)
        nxt = key._replace(offset=offset + count)
        if count and nxt.offset < matched:
            with self._lock:
                if nxt not in self._claimed:
                    self._claimed[nxt] = None
                    self._pages.prefetch(nxt)
        return Response(200, body, records=records)

    def _member_page(self, key: _PageKey) -> tuple[bytes, int, int]:
        """(JSON body, members in it, total_items) of a members page: a pure function of the key.
        Encoded on the read-ahead worker too (as the HubSpot emulator's pages: encoding on the
        connection thread while the worker computed made the two take turns at the GIL)."""
        tick, offset, count, desc = key.tick, key.offset, key.limit, key.desc
        page: list[int]
        if key.since is None and key.before is None and key.status is None and key.sort_field is None:
            # the plain listing: by person index through the per-block counts (flat in the audience)
            _, counts = self._live_counts(tick)
            matched = sum(counts)
            if desc:
                page = self._live_slice(max(0, matched - offset - count), max(0, matched - offset), tick)[::-1]
            else:
                page = self._live_slice(offset, offset + count, tick)
        else:
            rows = self._listing(tick, key.since, key.before, key.status, key.sort_field, desc)
            matched = len(rows)
            page = [idx for idx, _, _ in rows[offset:offset + count]]
        people = self._page_people(page, tick)
        text = ",".join([self._member_json(person, facts, tick, key.links)
                         for person, facts in zip(people, self._facts_many(people, tick), strict=True)])
        tail = f',"_links":{self._members_links}' if key.top_links else ""
        body = f'{{"members":[{text}],"list_id":"{self.list_id}","total_items":{matched}{tail}}}'.encode()
        return body, len(page), matched

    def _page_people(self, idxs: Sequence[int], tick: int) -> list[Person]:
        """``[world.person(idx, tick) for idx in idxs]`` for what a members page reads of them: base
        people no tick changed or archived get only the fields ``_member_json``, ``_facts_from``
        and ``_base_mail`` read (idx, names, email, phone, company, stage dates, created,
        modified, archived), the same values as ``World.person`` computes (inlined, the page's
        hashes and times taken at once in numpy; its other fields cost a third of it); the rest
        (grown people, and those whose index a tick's change or archive residue names) are
        ``World.person``'s. The other fields are left unset (reading one raises AttributeError).
        tests/test_mailchimp_emulator_speed_identity.py compares them with ``World.person``."""
        w = self.world
        if not _VECTOR:  # numpy's hashes are not CPython's here
            return [w.person(idx, tick) for idx in idxs]
        space = w.people
        ticks = w.ticks
        seed = w.seed
        base_n = space.base_count
        salt5 = space.salt + 5
        slot = space.slot_ms
        start, end = w._start, w._end
        n_companies = w.companies.cum_count[len(ticks) - 1]
        # any residue a tick (up to now) named: those people take World.person (they are few)
        changes = space.change_ticks if tick else {}
        archives = space.archive_ticks if tick else {}
        new = _new_person
        out: list[Person] = []
        append = out.append
        # the hashes and times of all at once (numpy gives CPython's tuple hashes: ``_hashes``)
        a = np.asarray(idxs, dtype=np.int64)
        au = np.maximum(a, 0).view(np.uint64)
        hms = _hashes(seed, salt5, au)
        created_a = start + a * YEAR_MS // base_n + (hms % np.uint64(slot)).astype(np.int64)
        modified_a = np.minimum(created_a + ((hms >> np.uint64(32)) % np.uint64(MAX_BASE_EDIT_MS)).astype(np.int64),
                                end)
        rows = zip(idxs, _hashes(seed, 11, au).tolist(), _hashes(seed, 14, au).tolist(),
                   _hashes(seed, 15, au).tolist(), (_hashes(seed, 12, au) % np.uint64(100) < 12).tolist(),
                   created_a.tolist(), modified_a.tolist(), strict=True)
        for idx, h1, h2, h3, jobless, created, modified in rows:
            if idx >= base_n or idx < 0 or (tick and (idx % CHANGE_MODULUS in changes
                                                      or idx % ARCHIVE_MODULUS in archives)):
                append(w.person(idx, tick))
                continue
            fi = h1 % _N_FIRST
            li = (h1 >> 8) % _N_LAST
            j: int | None
            if jobless:
                j = None
            else:
                j = idx // 5
                if j >= n_companies:
                    j = None
            person = new(Person)
            person.idx = idx
            person.first_name = _FIRST[fi]
            person.last_name = _LAST[li]
            person.email = w._email(idx, h2, fi, li, j)
            person.phone = _phone(h1, h3, _place(h3)[2])
            person.company_idx = j
            person.stage_dates = _stage_dates(_STAGE_OF_ROLL[(h3 >> 48) % 1000], h1, created, modified)
            person.created_ms = created
            person.modified_ms = modified
            person.archived_ms = None
            append(person)
        return out

    def _member_get(self, request: Request, list_id: str, hash: str) -> Response:
        self._check_list(list_id)
        tick = self.world.tick
        if re.fullmatch(r"[0-9a-fA-F]{32}", hash):  # a subscriber hash: MD5 is one-way, so ask the index
            idx = self._hash_index(tick).get(hash.lower())
        else:
            idx = self._by_address(hash, tick)
        if idx is None:
            raise _MailchimpError(404, "Resource Not Found", "The requested resource could not be found.")
        return Response(200, self._member_of(idx, tick), records=1)

    def _hash_index(self, tick: int) -> dict[str, int]:
        """Subscriber hash -> member (O(audience), built on the first lookup by hash per tick)."""
        with self._lock:
            hit = self._hashes
        if hit is not None and hit[0] == tick:
            return hit[1]
        index = {member_id(self.world.person(i, tick).email or ""): i for i in self._all_members(tick)}
        with self._lock:
            self._hashes = (tick, index)
        return index

    def _campaigns(self) -> list[Campaign]:
        """Mailchimp's campaigns created by now (kept for the tick: every email activity request
        checks its campaign, and there are size / 400 of them)."""
        tick = self.world.tick
        with self._lock:
            hit = self._campaign_list
        if hit is not None and hit[0] == tick:
            return hit[1]
        now = self.world.ticks[tick]
        out = []
        for c in range(self.journeys.campaign_count()):
            campaign = self.journeys.campaign(c, tick)
            if campaign.system == SYSTEM and campaign.created_ms <= now:
                out.append(campaign)
        with self._lock:
            self._campaign_list = (tick, out)
        return out

    def _campaign_record(self, c: Campaign, summary: _Summary | None) -> dict[str, Any]:
        """A campaign (``summary`` None: its recipient numbers are zeros, for answers that leave
        them out: counting needs the whole audience)."""
        cid = _hex("campaign", self.world.seed, c.idx)
        now = self.world.ticks[self.world.tick]
        sent = c.start_ms <= now
        status = "canceled" if c.status == "aborted" else "sent" if sent else "schedule"
        n = opens = clicks = unique_opens = subscriber_clicks = 0
        if summary is not None:
            n = len(summary.recipients.get(c.idx, ((), ()))[0])
            opens, clicks, unique_opens, subscriber_clicks = summary.reports.get(c.idx, (0, 0, 0, 0))
        return {
            "id": cid, "web_id": 500_000 + c.idx, "parent_campaign_id": "", "type": "regular",
            "create_time": _dt(c.created_ms),
            "archive_url": f"http://eepurl.com/{cid[:6]}",
            "long_archive_url": f"https://us21.campaign-archive.com/?u=sandbox&id={cid}",
            "status": status, "emails_sent": n if sent else 0, "send_time": _dt(c.start_ms) if sent else "",
            "content_type": "template", "needs_block_refresh": False, "resendable": False,
            "recipients": {"list_id": self.list_id, "list_is_active": True, "list_name": "Factoryline Newsletter",
                           "segment_text": "", "recipient_count": n},
            "settings": {"subject_line": c.name, "preview_text": f"{c.kind.title()} news from Factoryline",
                         "title": c.name, "from_name": "Factoryline", "reply_to": "news@factoryline.example",
                         "use_conversation": False, "to_name": "*|FNAME|*", "folder_id": "", "authenticate": True,
                         "auto_footer": False, "inline_css": False, "auto_tweet": False, "fb_comments": True,
                         "timewarp": False, "template_id": 10_000 + c.idx % 7, "drag_and_drop": True},
            "tracking": {"opens": True, "html_clicks": True, "text_clicks": False, "goal_tracking": False,
                         "ecomm360": True, "google_analytics": self.journeys.campaign_slug(c.idx),
                         "clicktale": ""},
            "report_summary": {"opens": opens, "unique_opens": unique_opens,
                               "open_rate": round(unique_opens / n, 4) if n else 0, "clicks": clicks,
                               "subscriber_clicks": subscriber_clicks,
                               "click_rate": round(subscriber_clicks / n, 4) if n else 0,
                               "ecommerce": {"total_orders": 0, "total_spent": 0, "total_revenue": 0}},
            "delivery_status": {"enabled": False},
            "_links": [_link("self", f"/campaigns/{cid}"), _link("parent", "/campaigns")],
        }

    def _campaigns_route(self, request: Request) -> Response:
        count, offset = self._paging(request)
        since_send = self._time_arg(request, "since_send_time")
        before_send = self._time_arg(request, "before_send_time")
        since_create = self._time_arg(request, "since_create_time")
        before_create = self._time_arg(request, "before_create_time")
        status = request.arg("status")
        rows = []
        for c in self._campaigns():
            send, create = _sec(c.start_ms), _sec(c.created_ms)
            if (since_send is not None and send < since_send) or (before_send is not None and send > before_send):
                continue
            if (since_create is not None and create < since_create) or \
                    (before_create is not None and create > before_create):
                continue
            rows.append(c)
        sort_field, desc = _sort(request, ("create_time", "send_time"))
        if sort_field == "send_time":
            rows.sort(key=lambda c: c.start_ms, reverse=desc)
        elif sort_field == "create_time":
            rows.sort(key=lambda c: c.created_ms, reverse=desc)
        elif desc:
            rows.reverse()
        summary = self.summary() if _wanted(request, ["campaigns"], _CAMPAIGN_SUMMARY) else None
        records = [self._campaign_record(c, summary) for c in rows]
        if status:
            records = [r for r in records if r["status"] == status]
        if since_send is not None or before_send is not None:  # unsent campaigns have no send time
            records = [r for r in records if r["send_time"]]
        page = records[offset:offset + count]
        return Response(200, {"campaigns": page, "total_items": len(records),
                              "_links": [_link("self", "/campaigns")]}, records=len(page))

    def _campaign_idx(self, campaign_id: str) -> int:
        c = self._campaign_ids.get(campaign_id)
        if c is None or c not in self._campaign_set():
            raise _MailchimpError(404, "Resource Not Found", "The requested resource could not be found.")
        return c

    def _campaign_set(self) -> frozenset[int]:
        campaigns = self._campaigns()
        with self._lock:
            hit = self._campaign_idxs
            if hit is None or hit[0] is not campaigns:
                hit = self._campaign_idxs = (campaigns, frozenset(x.idx for x in campaigns))
        return hit[1]

    def _campaign_get(self, request: Request, campaign_id: str) -> Response:
        summary = self.summary() if _wanted(request, [], _CAMPAIGN_SUMMARY) else None
        return Response(200, self._campaign_record(self.journeys.campaign(self._campaign_idx(campaign_id)), summary),
                        records=1)

    def _email_activity(self, request: Request, campaign_id: str) -> Response:
        c = self._campaign_idx(campaign_id)
        count, offset = self._paging(request)
        since = self._time_arg(request, "since")
        summary, tick = self.summary(), self.world.tick
        ids, lasts = summary.recipients.get(c, ((), ()))
        owners, ats, codes = summary.acts.get(c, ((), (), ()))
        selected: Sequence[int] = ids
        if since is not None:  # the recipients with an open, click or bounce since
            selected = [idx for idx, last in zip(ids, lasts, strict=True) if last >= 0 and _sec(last) >= since]
        matched = len(selected)
        emails: list[dict[str, Any]] = []
        for idx in selected[offset:offset + count]:
            email = (self.world.person(idx, tick).email or "").strip()
            h = member_id(email)
            activity = []
            for k in range(bisect_left(owners, idx), bisect_right(owners, idx)):
                at, code = ats[k], codes[k]
                if since is not None and _sec(at) < since:
                    continue
                kind = _ACT_KINDS[code & 3]
                act: dict[str, Any] = {"action": _ACTIONS[kind], "type": "hard" if kind == "email_bounce"
                                       else "", "timestamp": _dt(at), "ip": f"198.51.100.{idx % 250 + 1}"}
                if kind == "email_click":
                    act["url"] = self._urls[code >> 2] or "https://www.factoryline.example/"
                activity.append(act)
            emails.append({"campaign_id": campaign_id, "list_id": self.list_id, "list_is_active": True,
                           "email_id": h, "email_address": email, "activity": activity,
                           "_links": [_link("parent", f"/reports/{campaign_id}/email-activity")]})
        return Response(200, {"emails": emails, "campaign_id": campaign_id, "total_items": matched,
                              "_links": [_link("self", f"/reports/{campaign_id}/email-activity"),
                                         _link("parent", f"/reports/{campaign_id}")]},
                        records=len(emails))


_: Callable[[World, EmulatorOptions], Emulator] = MailchimpEmulator
