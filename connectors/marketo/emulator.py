"""Marketo Engage emulator for the sandbox: Identity, Lead Database (leads, activities, program
members) and the Asset API's programs, in Marketo's wire format, over the shared sandbox world.

Marketo knows the world's people who have at least one journey touch recorded by ``marketo``
(mostly email sends, opens and clicks); such a person is a lead from their first Marketo touch on.
Their Marketo touches are activities; the journeys' campaigns run by ``marketo`` are programs.

Ids: leads ``LEAD_OFFSET + i`` (person ``i``), programs ``PROGRAM_OFFSET + c`` (campaign ``c``),
smart campaigns ``SMART_CAMPAIGN_OFFSET + c``, email assets ``EMAIL_OFFSET + c``, activities
``(i + 1) * 1_000_000 + seq + 1`` (the "New Lead" activity of a lead is ``(i + 1) * 1_000_000``).

Routes: ``GET|POST /identity/oauth/token``; ``GET /rest/v1/leads/describe.json`` and
``describe2.json``; ``/rest/v1/leads.json`` (``filterType`` id or email, ``filterValues`` <= 300,
``fields``, ``batchSize`` <= 300, ``nextPageToken``; also ``POST ?_method=GET`` with the same
parameters as a form body, for field lists too long for a URL); ``/rest/v1/lead/{id}.json``; ``/rest/v1/activities/types.json``;
``/rest/v1/activities/pagingtoken.json?sinceDatetime=``; ``/rest/v1/activities.json``
(``nextPageToken``, ``activityTypeIds`` <= 10, ``leadIds``, ``batchSize``; ``moreResult`` paging, and the
last token resumes later with what happened since); ``/rest/v1/activities/deletedleads.json``
(archived people, type 37); ``/rest/asset/v1/programs.json`` (``maxReturn`` <= 200, ``offset``,
``earliestUpdatedAt``/``latestUpdatedAt``), ``/rest/asset/v1/program/{id}.json``;
``/rest/v1/programs/{id}/members.json`` (``filterType`` leadId|statusName|reachedSuccess) and
``/rest/v1/leads/programs/{id}.json`` (leads with ``membership``). Activities: 6/7/8/9/10/11 email,
104 webinar attended, 1/2 web visits and forms, 12 New Lead at the first Marketo touch, 13 Change
Data Value for lead score/status/title/stage changes at ticks, 46 for other touch kinds.

Scale: nothing is indexed up front. Whether Marketo knows a person is computed from that person's
journey (O(its touches), a small LRU), so a lead or a page costs the same at 1,000 or 1,000,000
people. The activity stream is a cursor over person indexes: ordered by (lead, date), the paging
token holds the window ``[since, until]`` (``until`` fixed by the first page to the clock) and the
last (date, lead, seq) served; a window after tick 0 visits only the people the journeys touched
since (``people_touched_since``, O(changed)), an older one every person from the cursor on (at most
20,000 per request: such a page may be empty with ``moreResult: true``). The last token opens the
window after ``until``. Email lookups use the index embedded in the address (``first.last{i}@``,
shared only with the next 20 people). Activity pages are computed one ahead on a worker thread
(``sandbox.readahead``), so serving overlaps the client's parsing. Program members scan, once per
batch of 1000 campaigns and tick (a bounded LRU of packed lists), the people whose journeys can meet
the batch's windows: the base people active in them and the people a tick inside them changed or
created (Marketo's emails only those mailed through Marketo). A scan is O(population) (~60% of the
people for one program's window already), so a full read of every program's members costs
campaigns / 1000 scans: one up to 100,000 people, ten at 1,000,000 (still the population squared
beyond, but a tenth of batches of 100), and its first page is one scan (~7 s CPU at 100,000 people,
up to ~50 s at 1,000,000: most of the 150 days of activity before a window, whatever the batch).

Wire format: every REST answer is ``{requestId, success, errors, warnings, result, nextPageToken?,
moreResult?}``; errors are HTTP 200 with ``success: false`` and ``errors: [{code, message}]``
(600 token missing, 601 token invalid, 602 token expired, 606 rate limit of 100 calls / 20 s and
607 daily quota of 50,000 with ``rate_limits``, 615 more than 10 concurrent requests, 610 unknown
resource, 701/1003 bad parameters). Identity (``/identity/oauth/token``) answers OAuth2 JSON and is
not counted against limits. Access tokens live ``expires_in`` seconds (3600; the environment
variable ``FACTORYLINE_SANDBOX_MARKETO_TOKEN_TTL`` shortens it for tests, and
``FACTORYLINE_SANDBOX_MARKETO_DAILY_QUOTA`` lowers the daily quota so tests can reach 607); asking again while one is
alive returns the same token with its remaining lifetime, like Marketo.

Sandbox-only: a request header ``X-Sandbox-Delay-Ms`` makes the emulator hold the request that
long while it counts as in flight (to exercise the concurrency limit).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import heapq
import os
import random
import re
import secrets
import threading
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, overload
from urllib.parse import parse_qs

import orjson

from sandbox.faults import FaultRule
from sandbox.journeys import _EMAIL_SLOTS, ACTIVE_MS, Campaign, Journeys
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.readahead import ReadAhead
from sandbox.routing import Routes
from sandbox.world import CHANGE_MODULUS, YEAR_MS, Person, World, format_ms, parse_time

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "LEAD_OFFSET", "PROGRAM_OFFSET", "MarketoEmulator", "emulator_spec"]

CLIENT_ID = "sandbox-marketo-client-0000"
CLIENT_SECRET = "sandbox-marketo-secret-0000"
MUNCHKIN_ID = "123-ABC-456"
TOKEN_TTL_ENV = "FACTORYLINE_SANDBOX_MARKETO_TOKEN_TTL"
#: sandbox-only: a smaller daily quota (with ``rate_limits``), so tests can reach the 607 answer
DAILY_QUOTA_ENV = "FACTORYLINE_SANDBOX_MARKETO_DAILY_QUOTA"
DEFAULT_TOKEN_TTL = 3600.0
LEAD_OFFSET = 100_000
PROGRAM_OFFSET = 1000
SMART_CAMPAIGN_OFFSET = 5000
EMAIL_OFFSET = 9000
ACTIVITY_STRIDE = 1_000_000
RATE_WINDOW_S = 20.0
RATE_LIMIT = 100
DAILY_QUOTA = 50_000
MAX_CONCURRENT = 10
MAX_BATCH = 300
MAX_FILTER_VALUES = 300
MAX_ACTIVITY_TYPES = 10
MAX_ASSET_RETURN = 200
SYSTEM = "marketo"
_TOUCH_CACHE = 4096
#: campaigns whose Marketo programs' members one scan finds (3 in 10 campaigns are Marketo's). A
#: scan walks the people active in any of their windows: each window's alone is ~60% of the
#: population (150 days of activity before it), so 1000 campaigns cost little more than 100
#: (every person at 100,000 people, ~7 s; ~73% at 1,000,000) and a full read takes a tenth of the
#: scans batches of 100 took. The lists (24 bytes a member) stay small: ~300 programs of ~800
#: members, ~6 MB
MEMBER_BATCH = 1000
#: program member lists kept: a batch's and some
_MEMBER_CACHE = 3 * MEMBER_BATCH // 10 + 20
_AT = itemgetter(0)
_AT_SEQ = itemgetter(0, 1)
#: campaign shapes (``c % 10``) whose touches only people mailed through Marketo get (Marketo's emails)
_EMAIL_SHAPES = frozenset(_EMAIL_SLOTS[SYSTEM])
_SCAN_LIMIT = 20_000  # people an activities page looks at before it answers (maybe empty, moreResult)
_SHARE_SPAN = 20  # an email is shared with at most the next 20 people (sandbox.world)
_EMAIL_INDEX = re.compile(r"(\d+)@")
_BAD_TIME = "2026-02-31T25:61:00Z"


def emulator_spec() -> EmulatorSpec:
    """The Marketo emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(
        name="marketo", factory=MarketoEmulator,
        description="Marketo Engage REST (identity, leads, activities, programs, program members)",
        notes={"auth": "GET /identity/oauth/token?grant_type=client_credentials&client_id=...&client_secret=...",
               "docs": "https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/rest-api"})


# -------------------------------------------------------------------------------------------
# formats
# -------------------------------------------------------------------------------------------


def _dt(ms: int | None) -> str | None:
    """Marketo REST datetimes: ``2026-01-02T03:04:05Z`` (seconds, UTC)."""
    return None if ms is None else format_ms(ms)[:19] + "Z"


def _asset_dt(ms: int) -> str:
    """The Asset API's datetimes: ``2026-01-02T03:04:05Z+0000``."""
    return format_ms(ms)[:19] + "Z+0000"


def _request_id() -> str:
    return f"{secrets.token_hex(2)[:4]}#{int(time.time() * 1000):x}"


class _MarketoError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _envelope(result: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"requestId": _request_id()}
    if result is not None:
        body["result"] = result
    body["success"] = True
    body.update(extra)
    body.setdefault("errors", [])
    body.setdefault("warnings", [])
    return body


def _error(code: str, message: str) -> Response:
    return Response(200, {"requestId": _request_id(), "success": False, "errors": [{"code": code, "message": message}],
                          "warnings": []})


# -------------------------------------------------------------------------------------------
# activity types and lead fields
# -------------------------------------------------------------------------------------------

#: id -> (name, description, primary attribute (name, dataType), secondary attributes)
_ACTIVITY_TYPES: dict[int, tuple[str, str, tuple[str, str], tuple[tuple[str, str], ...]]] = {
    1: ("Visit Webpage", "User visits a web page", ("Webpage ID", "integer"),
        (("Webpage URL", "string"), ("Query Parameters", "string"), ("Client IP Address", "string"),
         ("Referrer URL", "string"), ("User Agent", "string"))),
    2: ("Fill Out Form", "User fills out and submits a form on web page", ("Webform ID", "integer"),
        (("Webpage ID", "integer"), ("Query Parameters", "string"), ("Client IP Address", "string"),
         ("Referrer URL", "string"), ("User Agent", "string"), ("Form Fields", "text"))),
    6: ("Send Email", "Send Marketo Email to a person", ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Step ID", "integer"), ("Choice Number", "integer"))),
    7: ("Email Delivered", "Marketo Email is delivered to a person", ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Step ID", "integer"), ("Choice Number", "integer"))),
    8: ("Email Bounced", "Marketo Email is bounced for a person", ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Category", "string"), ("Details", "string"), ("Email", "string"),
         ("Subcategory", "string"), ("Step ID", "integer"), ("Choice Number", "integer"))),
    9: ("Unsubscribe Email", "Person unsubscribes from Marketo Emails", ("Mailing ID", "integer"),
        (("Campaign Run ID", "integer"), ("Client IP Address", "string"), ("Form Fields", "text"),
         ("User Agent", "string"), ("Webform ID", "integer"), ("Webpage ID", "integer"))),
    10: ("Open Email", "User opens Marketo Email", ("Mailing ID", "integer"),
         (("Campaign Run ID", "integer"), ("Device", "string"), ("Is Mobile Device", "boolean"),
          ("Platform", "string"), ("User Agent", "string"), ("Step ID", "integer"), ("Choice Number", "integer"))),
    11: ("Click Email", "User clicks on a link in a Marketo Email", ("Mailing ID", "integer"),
         (("Campaign Run ID", "integer"), ("Link", "string"), ("Device", "string"), ("Is Mobile Device", "boolean"),
          ("Platform", "string"), ("User Agent", "string"), ("Step ID", "integer"), ("Choice Number", "integer"))),
    12: ("New Lead", "New person/record is added to the lead database", ("Lead ID", "integer"),
         (("Source Type", "string"), ("Form Name", "string"), ("List Name", "string"), ("Created Date", "date"))),
    13: ("Change Data Value", "Changed attribute value for a person", ("Attribute Name", "integer"),
         (("New Value", "string"), ("Old Value", "string"), ("Reason", "string"), ("Source", "string"))),
    34: ("Add to Opportunity", "Add to an Opportunity", ("Opportunity ID", "integer"),
         (("Role", "string"), ("Is Primary", "boolean"))),
    37: ("Delete Lead", "Delete a person from the lead database", ("Lead ID", "integer"),
         (("Api Method Name", "string"), ("Modifying User", "string"), ("Request Id", "string"))),
    46: ("Interesting Moment", "Interesting moment", ("Milestone ID", "integer"),
         (("Type", "string"), ("Description", "string"), ("Source", "string"), ("Date", "datetime"))),
    104: ("Change Status in Progression", "Change a person's Program Status", ("Program ID", "integer"),
          (("New Status ID", "integer"), ("Old Status ID", "integer"), ("New Status", "string"),
           ("Old Status", "string"), ("Reason", "string"), ("Success", "boolean"),
           ("Program Member ID", "integer"), ("Acquired By", "boolean"))),
}
#: journey touch kind -> Marketo activity type id
_TOUCH_TYPE = {"page_view": 1, "form_submission": 2, "email_send": 6, "email_delivered": 7, "email_bounce": 8,
               "unsubscribe": 9, "email_open": 10, "email_click": 11, "webinar_attended": 104}
_MOMENT = 46  # every other kind Marketo records (calls, meetings, ad clicks, mentions)
_EMAIL_TYPES = frozenset({6, 7, 8, 9, 10, 11})
_DEVICES = (("Desktop", False, "Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            ("iPhone", True, "iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"),
            ("Desktop", False, "Mac OS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)"),
            ("Android", True, "Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8)"))


@dataclass(frozen=True)
class _Field:
    rest: str
    display: str
    data_type: str
    length: int | None = None
    read_only: bool = False


_LEAD_FIELDS: tuple[_Field, ...] = (
    _Field("id", "Id", "integer", read_only=True),
    _Field("email", "Email Address", "email", 255),
    _Field("firstName", "First Name", "string", 255),
    _Field("lastName", "Last Name", "string", 255),
    _Field("phone", "Phone Number", "phone", 255),
    _Field("title", "Job Title", "string", 255),
    _Field("company", "Company Name", "string", 255),
    _Field("city", "City", "string", 255),
    _Field("state", "State", "string", 255),
    _Field("country", "Country", "string", 255),
    _Field("leadSource", "Lead Source", "string", 255),
    _Field("leadStatus", "Lead Status", "string", 255),
    _Field("leadScore", "Lead Score", "integer"),
    _Field("unsubscribed", "Unsubscribed", "boolean"),
    _Field("emailInvalid", "Email Invalid", "boolean"),
    _Field("createdAt", "Created At", "datetime", read_only=True),
    _Field("updatedAt", "Updated At", "datetime", read_only=True),
    _Field("acquisitionProgramId", "Acquisition Program Id", "string", 255),
    # custom fields of this instance
    _Field("factoryPreferredChannel", "Factory Preferred Channel", "string", 255),
    _Field("factoryLifecycleStage", "Factory Lifecycle Stage", "string", 255),
)
_FIELD_NAMES = {f.rest.lower(): f.rest for f in _LEAD_FIELDS}
_DEFAULT_LEAD_FIELDS = ("id", "firstName", "lastName", "email", "updatedAt", "createdAt")
_SOURCES = {"ORGANIC_SEARCH": "Organic Search", "PAID_SEARCH": "Paid Search", "EMAIL_MARKETING": "Email",
            "SOCIAL_MEDIA": "Social Media", "REFERRALS": "Referral", "OTHER_CAMPAIGNS": "Other",
            "DIRECT_TRAFFIC": "Website", "OFFLINE": "List Import", "PAID_SOCIAL": "Paid Social"}

#: campaign kind -> (program type, channel, statuses with success flags)
_PROGRAM_KIND = {
    "email": ("Email", "Email Send"), "webinar": ("Event", "Webinar"), "event": ("Event", "Tradeshow"),
    "ads": ("Default", "Online Advertising"), "social": ("Default", "Social Media"),
    "content": ("Default", "Content Syndication"),
}
#: member status: (rank, name, reached success) by the touch kinds that lead to it
_STATUS_BY_KIND = {"email_send": (1, "Sent", False), "email_delivered": (2, "Delivered", False),
                   "email_bounce": (2, "Bounced", False), "email_open": (3, "Opened", False),
                   "unsubscribe": (3, "Unsubscribed", False), "page_view": (3, "Engaged", False),
                   "email_click": (4, "Clicked", True), "form_submission": (5, "Filled-out Form", True),
                   "webinar_attended": (6, "Attended", True), "call": (4, "Engaged", True),
                   "meeting": (6, "Attended", True)}
_MEMBER = (0, "Member", False)


# -------------------------------------------------------------------------------------------
# the request limiter
# -------------------------------------------------------------------------------------------


def _norm_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


class _Limiter:
    """100 calls per 20 s rolling and 50,000 a day (with ``rate_limits``); at most 10 in flight."""

    def __init__(self, enforce: bool, daily_quota: int = DAILY_QUOTA) -> None:
        self.enforce = enforce
        self.daily_quota = daily_quota
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._daily = 0
        self.in_flight = 0

    def enter(self) -> tuple[str, str] | None:
        """Count one request in; the refusal (code, message) if it must not proceed."""
        now = time.monotonic()
        with self._lock:
            if self.in_flight >= MAX_CONCURRENT:
                return "615", "Concurrent access limit reached"
            w = self._window
            while w and now - w[0] >= RATE_WINDOW_S:
                w.popleft()
            if self.enforce:
                if self._daily >= self.daily_quota:
                    return "607", "Daily quota reached"
                if len(w) >= RATE_LIMIT:
                    return "606", f"Max rate limit '{RATE_LIMIT}' exceeded with in '{RATE_WINDOW_S:g}' secs"
            w.append(now)
            self._daily += 1
            self.in_flight += 1
            return None

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


# -------------------------------------------------------------------------------------------
# routes
# -------------------------------------------------------------------------------------------

_ROUTE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("GET", r"^/identity/oauth/token/?$", "identity"),
    ("POST", r"^/identity/oauth/token/?$", "identity"),
    ("GET", r"^/rest/v1/leads/describe\.json$", "describe"),
    ("GET", r"^/rest/v1/leads/describe2\.json$", "describe2"),
    ("GET", r"^/rest/v1/leads\.json$", "leads"),
    ("POST", r"^/rest/v1/leads\.json$", "leads_post"),
    ("GET", r"^/rest/v1/lead/(?P<id>\d+)\.json$", "lead"),
    ("GET", r"^/rest/v1/activities/types\.json$", "activity_types"),
    ("GET", r"^/rest/v1/activities/pagingtoken\.json$", "paging_token"),
    ("GET", r"^/rest/v1/activities\.json$", "activities"),
    ("GET", r"^/rest/v1/activities/deletedleads\.json$", "deleted_leads"),
    ("GET", r"^/rest/v1/leads/programs/(?P<id>\d+)\.json$", "leads_by_program"),
    ("GET", r"^/rest/v1/programs/(?P<id>\d+)/members\.json$", "members"),
    ("GET", r"^/rest/asset/v1/programs\.json$", "programs"),
    ("GET", r"^/rest/asset/v1/program/(?P<id>\d+)\.json$", "program"),
)
_TEMPLATES = {
    "identity": "{method} /identity/oauth/token", "describe": "GET /rest/v1/leads/describe.json",
    "describe2": "GET /rest/v1/leads/describe2.json",
    "leads": "GET /rest/v1/leads.json", "leads_post": "POST /rest/v1/leads.json", "lead": "GET /rest/v1/lead/{leadId}.json",
    "activity_types": "GET /rest/v1/activities/types.json",
    "paging_token": "GET /rest/v1/activities/pagingtoken.json", "activities": "GET /rest/v1/activities.json",
    "deleted_leads": "GET /rest/v1/activities/deletedleads.json",
    "leads_by_program": "GET /rest/v1/leads/programs/{programId}.json",
    "members": "GET /rest/v1/programs/{programId}/members.json", "programs": "GET /rest/asset/v1/programs.json",
    "program": "GET /rest/asset/v1/program/{id}.json",
}
_ROUTES = Routes(*((m, p, name, _TEMPLATES[name]) for m, p, name in _ROUTE_ROWS))

#: an activity position: (activityDate ms, person index, seq; -1 for the New Lead activity,
#: CHANGE_SEQ + 8 * tick + field for a Change Data Value activity)
_Pos = tuple[int, int, int]


#: every member status, so a member list stores a status as its index
_STATUSES: tuple[tuple[int, str, bool], ...] = (_MEMBER, *dict.fromkeys(_STATUS_BY_KIND.values()))
_STATUS_CODE = {st: n for n, st in enumerate(_STATUSES)}


class _Member(NamedTuple):
    """A person's membership of one program, as few numbers as the members endpoints need."""

    idx: int
    joined_ms: int
    updated_ms: int
    #: (rank, statusName, reachedSuccess)
    status: tuple[int, str, bool]
    #: the program was the first the person was touched by
    acquired_by: bool
#: one Marketo touch of a person: (at ms, kind, campaign index or None, url or None, seq), seq
#: counting all the journey's touches (``Touch.seq``). Plain tuples: a Touch object per touch cost
#: a tenth of an activity's serving time
_Mt = tuple[int, str, int | None, str | None, int]
class _MemberList(Sequence["_Member"]):
    """A program's members, ascending by person index, packed as three int64 a member in an
    array (``idx << 8 | status << 1 | acquiredBy``, joined ms, updated ms): a NamedTuple a member
    took ~150 bytes, and a scan keeps a few hundred programs' lists."""

    __slots__ = ("_data",)

    def __init__(self, data: array[int]) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data) // 3

    def _at(self, i: int) -> _Member:
        d = self._data
        key, joined, updated = d[3 * i], d[3 * i + 1], d[3 * i + 2]
        return _Member(key >> 8, joined, updated, _STATUSES[(key >> 1) & 127], bool(key & 1))

    @overload
    def __getitem__(self, i: int) -> _Member: ...

    @overload
    def __getitem__(self, i: slice) -> list[_Member]: ...

    def __getitem__(self, i: int | slice) -> _Member | list[_Member]:
        if isinstance(i, slice):
            return [self._at(n) for n in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._at(i % len(self))

    def __iter__(self) -> Iterator[_Member]:
        return (self._at(n) for n in range(len(self)))


#: what an activity renders: a touch, None (New Lead) or a field change (field, old value, new value)
_Payload = _Mt | tuple[str, Any, Any] | None
CHANGE_SEQ = 500_000
_START: _Pos = (-1, -1, -2)  # before every activity
_FAR = 1 << 62
DELETE_SEQ = 999_998


def _status_label(status: str | None) -> str | None:
    return status.replace("_", " ").title() if status else None


#: lead fields whose changes are "Change Data Value" activities
_TRACKED: tuple[tuple[str, Callable[[Person], Any]], ...] = (
    ("leadScore", lambda p: p.lead_score), ("leadStatus", lambda p: _status_label(p.lead_status)),
    ("title", lambda p: p.job_title), ("factoryLifecycleStage", lambda p: p.lifecycle_stage),
)
_FIELD_IDS = {f.rest: (n, f.display) for n, f in enumerate(_LEAD_FIELDS, start=1)}


class _PageKey(NamedTuple):
    """What an activities page is a pure function of (its requestId aside)."""

    since: int
    upto: int
    #: the last activity served: (date, lead index, seq)
    pos: _Pos
    types: tuple[int, ...]
    #: asked lead indexes, ascending (empty: every lead)
    lead_ids: tuple[int, ...]
    batch: int
    tick: int


#: activity types whose JSON after ``activityDate`` is shared by every lead with the same
#: (type, campaign, device, link): email sends, deliveries, unsubscribes, opens, clicks, webinars
_SHARED_TAIL = frozenset({6, 7, 9, 10, 11, 104})
_TAIL_CACHE = 4096
#: ``_dt``'s pieces: day number -> "YYYY-MM-DDT" (bounded), "HH:MM:" by minute of the day, "SSZ"
_DAYS: dict[int, str] = {}
_HOUR_MINUTE = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECOND_Z = tuple(f"{s:02d}Z" for s in range(60))


def _day_prefix(day: int) -> str:
    prefix = format_ms(day * 86_400_000)[:11]
    if len(_DAYS) < 100_000:
        _DAYS[day] = prefix
    return prefix


class MarketoEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        self.world = world
        self.journeys = Journeys(world)
        self.limiter = _Limiter(options.rate_limits, int(os.environ.get(DAILY_QUOTA_ENV) or DAILY_QUOTA))
        self.token_ttl = float(os.environ.get(TOKEN_TTL_ENV) or DEFAULT_TOKEN_TTL)
        self._lock = threading.Lock()
        #: token -> expiry (monotonic seconds); expired tokens are kept so they answer 602, not 601
        self._tokens: dict[str, float] = {}
        self._current: str | None = None
        self._cache_lock = threading.Lock()
        #: (person, tick) -> that person's Marketo touches: a small LRU, so memory stays flat
        self._touch_cache: OrderedDict[tuple[int, int], list[_Mt]] = OrderedDict()
        #: an activity's JSON after its ``activityDate`` by (type, campaign, device, url): the part
        #: that does not depend on the lead (bounded: cleared when full)
        self._tails: dict[tuple[int, int | None, int, str | None], str] = {}
        #: activity pages are computed one ahead, so serving overlaps the client's parsing
        self._pages: ReadAhead[_PageKey, tuple[bytes, int, _PageKey | None]] = ReadAhead(
            self._activity_page, name="sandbox-marketo-readahead")
        #: (campaign, tick) -> its live members (ascending person index), a small LRU
        self._member_cache: OrderedDict[tuple[int, int], _MemberList] = OrderedDict()
        #: campaign -> name (bounded: cleared when full)
        self._names: dict[int, str] = {}

    # -- Emulator protocol -----------------------------------------------------------------------

    def close(self) -> None:
        self._pages.close()

    def settings(self, base_url: str) -> dict[str, str]:
        return {"base_url": base_url, "identity_url": f"{base_url}/identity", "endpoint": f"{base_url}/rest",
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "munchkin_id": MUNCHKIN_ID}

    def _match(self, request: Request) -> tuple[str, dict[str, str]] | None:
        return _ROUTES.match(request)

    def route(self, request: Request) -> str:
        return _ROUTES.route(request)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        # Marketo signals throttling and token expiry in the body of an HTTP 200, never with 429/401
        if rule.kind == "rate_limit":
            return _error("606", f"Max rate limit '{RATE_LIMIT}' exceeded with in '{RATE_WINDOW_S:g}' secs")
        if rule.kind == "expired_token":
            return _error("602", "Access token expired")
        return Response(rule.status, {"requestId": _request_id(), "success": False,
                                      "errors": [{"code": "611", "message": "System error"}], "warnings": []})

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        if isinstance(response.body, bytes):  # an activity page, encoded ahead
            response.body = orjson.loads(response.body)
        body = response.body
        records = body.get("result") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return response
        target = records[rng.randrange(len(records))]
        if isinstance(target, dict):
            if kind == "missing_id":
                target.pop("id", None)
                target.pop("marketoGUID", None)
            else:
                for key in ("activityDate", "updatedAt", "membershipDate"):
                    if key in target:
                        target[key] = _BAD_TIME
        return response

    def handle(self, request: Request) -> Response:
        found = self._match(request)
        if found is not None and found[0] == "identity":  # not counted against limits
            return self._identity(request)
        refused = self.limiter.enter()
        if refused is not None:
            return _error(*refused)
        try:
            delay = request.headers.get("x-sandbox-delay-ms")
            if delay:
                time.sleep(min(float(delay), 30_000) / 1000)
            self._authenticate(request)
            if found is None:
                raise _MarketoError("610", "Requested resource not found")
            name, params = found
            resp: Response = getattr(self, f"_{name}")(request, **params)
        except _MarketoError as exc:
            resp = _error(exc.code, exc.message)
        finally:
            self.limiter.leave()
        return resp

    # -- identity --------------------------------------------------------------------------------

    def _identity(self, request: Request) -> Response:
        if request.arg("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type",
                                  "error_description": f"Unsupported grant type: {request.arg('grant_type')}"})
        if request.arg("client_id") != CLIENT_ID or request.arg("client_secret") != CLIENT_SECRET:
            return Response(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        now = time.monotonic()
        with self._lock:
            token = self._current
            if token is None or self._tokens[token] <= now:
                token = f"{secrets.token_hex(16)[:8]}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-" \
                        f"{secrets.token_hex(2)}-{secrets.token_hex(6)}:ab"
                self._tokens[token] = now + self.token_ttl
                self._current = token
            remaining = max(0, int(self._tokens[token] - now))
        return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": remaining,
                              "scope": "sandbox-api-user@factoryline.example"})

    def _authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.arg("access_token")
        if not token:
            raise _MarketoError("600", "Access token not specified")
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            raise _MarketoError("601", "Access token invalid")
        if expiry <= time.monotonic():
            raise _MarketoError("602", "Access token expired")

    # -- what Marketo knows ----------------------------------------------------------------------

    def _marketo_touches(self, idx: int, tick: int, person: Person | None = None) -> list[_Mt]:
        """The person's Marketo touches at ``tick`` (empty: Marketo does not know the person)."""
        return self._known(idx, tick, person)[1]

    def _known(self, idx: int, tick: int, person: Person | None = None,
               keep: bool = True) -> tuple[Person | None, list[_Mt]]:
        """(person ``idx`` at ``tick`` when it was built, else None; their Marketo touches): the
        touches are a pure function of (person, tick), O(the person's touches), cached in a bounded
        LRU without the person (~1 KB each). ``person`` saves building it again; ``keep=False``: a
        scan's, not cached, so it does not push out the people pages ask for."""
        if not 0 <= idx < self.world.people.count(tick):
            return None, []
        key = (idx, tick)
        with self._cache_lock:
            hit = self._touch_cache.get(key)
            if hit is not None:
                self._touch_cache.move_to_end(key)
                return person, hit
        # ``[x for x in journeys.touches(idx, tick) if x.system == SYSTEM]``: the journey's events
        # in ``Journeys._touches``'s order (``seq`` counts all of them), but only Marketo's kept
        j = self.journeys
        p = self.world.person(idx, tick) if person is None else person
        evs = j._base_events(p)
        evs.sort(key=_AT)  # stable: same-time events keep their causal order
        evs.extend(j._tick_events(p, tick))
        mine = [(at, kind, camp, url, n) for n, (at, kind, camp, system, url) in enumerate(evs) if system == SYSTEM]
        if keep:
            with self._cache_lock:
                self._touch_cache[key] = mine
                while len(self._touch_cache) > _TOUCH_CACHE:
                    self._touch_cache.popitem(last=False)
        return p, mine

    def _by_email(self, email: str, tick: int) -> list[int]:
        """People whose (normalised) email is ``email``: addresses embed the index of the person
        they were made for (``first.last{i}@domain``) and are shared only with the next 20 people."""
        m = _EMAIL_INDEX.search(email)
        if m is None:
            return []
        base, count = int(m.group(1)), self.world.people.count(tick)
        return [i for i in range(base, min(count, base + _SHARE_SPAN + 1))
                if _norm_email(self.world.person(i, tick).email) == email]

    def _member(self, c: int, idx: int, tick: int) -> _Member | None:
        """The person's membership of campaign ``c`` (None: not a live member), from its touches."""
        if not 0 <= idx < self.world.people.count(tick):
            return None
        person = self._live(idx, tick)
        if person is None:
            return None
        touches = self._marketo_touches(idx, tick, person)
        mine = [x for x in touches if x[2] == c]
        if not mine:
            return None
        first = next((x[2] for x in touches if x[2] is not None), None)
        return _Member(idx, mine[0][0], mine[-1][0], self._member_status(mine), first == c)

    def _members_of(self, c: int, tick: int) -> _MemberList:
        """Live members of campaign ``c`` (ascending person index). One scan finds the members of
        the Marketo programs among campaigns ``c .. c + MEMBER_BATCH - 1`` together (their
        windows overlap, so the union of the people who can meet them is little more than ``c``'s
        own, and each person's journey is built once for all of them); the lists sit in a bounded
        LRU, so a connector reading the programs in order pays one scan per batch and every page
        of a program's members costs a slice. Each member is three numbers, never its touches."""
        key = (c, tick)
        with self._cache_lock:
            hit = self._member_cache.get(key)
            if hit is not None:
                self._member_cache.move_to_end(key)
                return hit
        j = self.journeys
        batch = {x: j.campaign(x, tick) for x in range(c, min(j.campaign_count(), c + MEMBER_BATCH))}
        batch = {x: camp for x, camp in batch.items() if x == c or camp.system == SYSTEM}
        found: dict[int, array[int]] = {x: array("q") for x in batch}
        # only people mailed through Marketo get its emails (a hash of their company: no person
        # built), so a batch of email programs alone skips everyone else
        mailed_only = all(x % 10 in _EMAIL_SHAPES for x in batch)
        status_code = _STATUS_CODE
        for idx in self._batch_candidates(list(batch.values()), tick):
            if mailed_only and j.email_system(idx) != SYSTEM:
                continue
            person = self._live(idx, tick)
            if person is None:
                continue
            touches = self._known(idx, tick, person, keep=False)[1]
            first = next((t[2] for t in touches if t[2] is not None), None)
            for x in {t[2] for t in touches if t[2] in found}:
                assert x is not None
                mine = [t for t in touches if t[2] == x]
                code = status_code[self._member_status(mine)]
                found[x].extend((idx << 8 | code << 1 | (first == x), mine[0][0], mine[-1][0]))
        lists = {x: _MemberList(data) for x, data in found.items()}
        with self._cache_lock:
            for x, members in lists.items():
                self._member_cache[(x, tick)] = members
                self._member_cache.move_to_end((x, tick))
            while len(self._member_cache) > _MEMBER_CACHE:
                self._member_cache.popitem(last=False)
        return lists[c]

    def _batch_candidates(self, campaigns: list[Campaign], tick: int) -> Iterator[int]:
        """Ascending unique indexes of the people who can have a touch in one of ``campaigns`` (a
        superset): a campaign's touches lie in its window ``[start, end]``
        (``Journeys._campaign_at``), so these are the base people whose active span (creation to
        150 days on, all before tick 0) meets a window, then the people a tick inside a window
        changed or created. O(the windows' people), where ``people_touched_since(start)`` also
        walked every later person."""
        w, j = self.world, self.journeys
        space = w.people
        base, count = space.base_count, space.count(tick)
        ranges: list[Iterable[int]] = []
        lo_all, hi_all = base, 0
        ticks: set[int] = set()
        for campaign in campaigns:
            start, end = campaign.start_ms, campaign.end_ms
            if start <= j._end:  # base journeys end a day before tick 0
                span = start - ACTIVE_MS - j._start  # the first base index as Journeys._candidates has it
                lo = 0 if span <= 0 else max(0, min(base, span * base // YEAR_MS - 1))
                # person i is created at or after _start + i * YEAR_MS // base (World._meta)
                after = end - j._start
                hi = 0 if after < 0 else min(base, after * base // YEAR_MS + 2)
                if hi > lo:  # the campaigns' ranges overlap (each spans 150 days and more): one range
                    lo_all, hi_all = min(lo_all, lo), max(hi_all, hi)
            ticks.update(k for k in range(1, tick + 1) if start <= w.ticks[k] <= end)
        if hi_all > lo_all:
            ranges.append(range(lo_all, hi_all))
        residues: set[int] = set()
        for k in sorted(ticks):
            r = space.change_res[k]
            if r not in residues:
                residues.add(r)
                ranges.append(range(r, count, CHANGE_MODULUS))
            ranges.append(range(space.cum_count[k - 1], space.cum_count[k]))
        last = -1
        for i in heapq.merge(*ranges):
            if i != last:
                last = i
                yield i

    def _live(self, idx: int, tick: int) -> Person | None:
        person = self.world.person(idx, tick)
        return None if person.archived_ms is not None else person

    # -- leads -----------------------------------------------------------------------------------

    @staticmethod
    def _fields(request: Request) -> tuple[str, ...]:
        raw = [f.strip() for v in request.query.get("fields", []) for f in v.split(",") if f.strip()]
        if not raw:
            return _DEFAULT_LEAD_FIELDS
        out: list[str] = []
        for name in raw:
            rest = _FIELD_NAMES.get(name.lower())
            if rest is None:
                raise _MarketoError("1006", f"Field '{name}' not found")
            if rest not in out:
                out.append(rest)
        if "id" not in out:
            out.insert(0, "id")
        return tuple(out)

    def _lead(self, request: Request, id: str) -> Response:
        tick = self.world.tick
        idx = int(id) - LEAD_OFFSET
        touches = self._marketo_touches(idx, tick)
        person = self._live(idx, tick) if touches else None
        rows = [] if person is None else [self._lead_record(person, touches, self._fields(request))]
        return Response(200, _envelope(rows), records=len(rows))

    def _lead_record(self, person: Person, touches: list[_Mt], wanted: tuple[str, ...]) -> dict[str, Any]:
        created = touches[0][0]
        unsub = next((x[0] for x in touches if x[1] == "unsubscribe"), None)
        bounce = next((x[0] for x in touches if x[1] == "email_bounce"), None)
        updated = max(created, person.modified_ms, unsub or 0, bounce or 0)
        first_program = next((x[2] for x in touches if x[2] is not None), None)
        rec: dict[str, Any] = {}
        for name in wanted:
            value: Any
            if name == "id":
                value = LEAD_OFFSET + person.idx
            elif name == "email":
                value = person.email
            elif name == "firstName":
                value = person.first_name
            elif name == "lastName":
                value = person.last_name
            elif name == "phone":
                value = person.phone
            elif name == "title":
                value = person.job_title
            elif name == "company":
                value = None if person.company_idx is None else self.world.company(person.company_idx).name
            elif name in ("city", "state", "country"):
                value = getattr(person, name)
            elif name == "leadSource":
                value = _SOURCES.get(person.source, person.source)
            elif name == "leadStatus":
                value = _status_label(person.lead_status)
            elif name == "leadScore":
                value = person.lead_score
            elif name == "unsubscribed":
                value = unsub is not None
            elif name == "emailInvalid":
                value = bounce is not None
            elif name == "createdAt":
                value = _dt(created)
            elif name == "updatedAt":
                value = _dt(updated)
            elif name == "acquisitionProgramId":
                value = None if first_program is None else str(PROGRAM_OFFSET + first_program)
            elif name == "factoryPreferredChannel":
                value = person.preferred_channel
            else:  # factoryLifecycleStage
                value = person.lifecycle_stage
            rec[name] = value
        return rec

    def _leads(self, request: Request) -> Response:
        filter_type = (request.arg("filterType") or "").strip()
        if not filter_type:
            raise _MarketoError("701", "'filterType' cannot be blank")
        values = [v.strip() for raw in request.query.get("filterValues", []) for v in raw.split(",") if v.strip()]
        if not values:
            raise _MarketoError("701", "'filterValues' cannot be blank")
        if len(values) > MAX_FILTER_VALUES:
            raise _MarketoError("1003", f"Too many values in filterValues, max {MAX_FILTER_VALUES}")
        batch = self._batch_size(request)
        wanted = self._fields(request)
        tick = self.world.tick
        matched: list[int] = []
        kind = filter_type.lower()
        if kind == "id":
            for v in values:
                try:
                    idx = int(v) - LEAD_OFFSET
                except ValueError as exc:
                    raise _MarketoError("1003", f"Invalid filterValues '{v}' for filterType 'id'") from exc
                if self._marketo_touches(idx, tick):
                    matched.append(idx)
        elif kind == "email":
            for v in values:
                matched.extend(i for i in self._by_email(v.lower(), tick) if self._marketo_touches(i, tick))
        else:
            raise _MarketoError("1003", f"Invalid filterType '{filter_type}'")
        matched = [i for i in dict.fromkeys(matched) if self._live(i, tick) is not None]
        start = self._offset_token(request.arg("nextPageToken"))
        page = matched[start:start + batch]
        rows = [self._lead_record(self.world.person(i, tick), self._marketo_touches(i, tick), wanted) for i in page]
        body = _envelope(rows)
        if start + batch < len(matched):
            body["nextPageToken"] = self._make_offset_token(start + batch)
            body["moreResult"] = True
        return Response(200, body, records=len(rows))

    @staticmethod
    def _batch_size(request: Request) -> int:
        raw = request.arg("batchSize")
        try:
            batch = int(raw) if raw else MAX_BATCH
        except ValueError as exc:
            raise _MarketoError("1003", f"Invalid batchSize '{raw}'") from exc
        if not 1 <= batch <= MAX_BATCH:
            raise _MarketoError("1003", f"batchSize must be between 1 and {MAX_BATCH}")
        return batch

    @staticmethod
    def _make_offset_token(offset: int) -> str:
        return base64.b32encode(f"o:{offset}".encode()).decode()

    @staticmethod
    def _offset_token(token: str | None) -> int:
        if not token:
            return 0
        try:
            kind, _, value = base64.b32decode(token.encode()).decode().partition(":")
            if kind != "o":
                raise ValueError(kind)
            return int(value)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise _MarketoError("1003", f"Invalid nextPageToken '{token}'") from exc

    def _leads_post(self, request: Request) -> Response:
        """``POST /rest/v1/leads.json?_method=GET`` with a form body: Get Leads by Filter Type for
        queries too long for a URL (Marketo's documented workaround); other POSTs (Sync Leads) are
        not served by the sandbox."""
        if (request.arg("_method") or "").upper() != "GET":
            raise _MarketoError("1003", "Sync Leads is not supported by the sandbox; use _method=GET")
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        query = {k: list(v) for k, v in request.query.items()}
        for k, v in form.items():
            query.setdefault(k, []).extend(v)
        return self._leads(dataclasses.replace(request, query=query))

    def _describe2(self, request: Request) -> Response:
        fields = [{"name": f.rest, "displayName": f.display, "dataType": f.data_type,
                   **({"length": f.length} if f.length is not None else {}),
                   "updateable": not f.read_only, "crmManaged": False} for f in _LEAD_FIELDS]
        row = {"name": "API Lead", "searchableFields": [["id"], ["email"]], "fields": fields}
        return Response(200, _envelope([row]), records=len(fields))

    def _describe(self, request: Request) -> Response:
        rows = []
        for n, f in enumerate(_LEAD_FIELDS, start=1):
            row: dict[str, Any] = {"id": n, "displayName": f.display, "dataType": f.data_type}
            if f.length is not None:
                row["length"] = f.length
            row["rest"] = {"name": f.rest, "readOnly": f.read_only}
            row["soap"] = {"name": f.rest[0].upper() + f.rest[1:] if f.rest != "id" else "Id",
                           "readOnly": f.read_only}
            rows.append(row)
        return Response(200, _envelope(rows), records=len(rows))

    # -- activities ------------------------------------------------------------------------------

    def _activity_types(self, request: Request) -> Response:
        rows = [{"id": tid, "name": name, "description": desc,
                 "primaryAttribute": {"name": primary[0], "dataType": primary[1]},
                 "attributes": [{"name": n, "dataType": d} for n, d in attrs]}
                for tid, (name, desc, primary, attrs) in _ACTIVITY_TYPES.items()]
        return Response(200, _envelope(rows), records=len(rows))

    @staticmethod
    def _make_activity_token(since: int, pos: _Pos, upto: int = -1) -> str:
        """A paging token: the window ``[since, upto]`` (``upto`` -1: fixed to the clock by the
        first page) and the position of the last activity served."""
        return base64.b32encode(f"a:{since}:{upto}:{pos[0]}:{pos[1]}:{pos[2]}".encode()).decode()

    @staticmethod
    def _activity_token(token: str) -> tuple[int, int, _Pos]:
        """(since, upto, position) of a paging token."""
        try:
            parts = base64.b32decode(token.encode()).decode().split(":")
            if len(parts) != 6 or parts[0] != "a":
                raise ValueError(token)
            since, upto, at, idx, seq = (int(p) for p in parts[1:])
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise _MarketoError("1003", f"Invalid nextPageToken '{token}'") from exc
        return since, upto, (at, idx, seq)

    def _paging_token(self, request: Request) -> Response:
        raw = request.arg("sinceDatetime")
        if not raw:
            raise _MarketoError("701", "'sinceDatetime' cannot be blank")
        try:
            since = parse_time(raw)
        except ValueError as exc:
            raise _MarketoError("1003", f"Invalid sinceDatetime '{raw}'") from exc
        return Response(200, _envelope(None, nextPageToken=self._make_activity_token(since, _START)))

    def _data_changes(self, idx: int, since: int, tick: int) -> list[tuple[int, int, _Payload]]:
        """"Change Data Value" activities, (date, seq, change): the lead's field changes at ticks at
        or after ``since``."""
        space = self.world.people
        out: list[tuple[int, int, _Payload]] = []
        for k in space.changes(idx, tick, space.created_tick(idx)):
            at = self.world.ticks[k]
            if at < since:
                continue
            old, new = self.world.person(idx, k - 1), self.world.person(idx, k)
            for n, (name, getter) in enumerate(_TRACKED):
                before, after = getter(old), getter(new)
                if before != after:
                    out.append((at, CHANGE_SEQ + k * 8 + n, (name, before, after)))
        return out

    def _person_activities(self, idx: int, touches: list[_Mt], since: int, upto: int, wanted: frozenset[int],
                           tick: int) -> list[tuple[int, int, _Payload]]:
        """The lead's activities of the wanted types in ``[since, upto]``, (date, seq, payload) in
        (date, seq) order; ``touches`` are the lead's Marketo touches (not empty)."""
        first_at = touches[0][0]
        found: list[tuple[int, int, _Payload]] = []
        if 12 in wanted and since <= first_at <= upto:
            found.append((first_at, -1, None))
        touch_type = _TOUCH_TYPE
        for x in touches:
            at = x[0]
            if since <= at <= upto and touch_type.get(x[1], _MOMENT) in wanted:
                found.append((at, x[4], x))
        if 13 in wanted:
            found.extend(c for c in self._data_changes(idx, max(since, first_at), tick) if c[0] <= upto)
        found.sort(key=_AT_SEQ)
        return found

    def _people_from(self, start: int, since: int, tick: int, lead_ids: tuple[int, ...]) -> Iterable[int]:
        """Ascending person indexes from ``start`` that may have activities at or after ``since``:
        the asked leads (ascending), every person for a window reaching before tick 0, else the
        people the journeys touched since (O(changed))."""
        if lead_ids:
            return (i for i in lead_ids if i >= start)
        if since <= self.world.ticks[0]:
            return range(max(0, start), self.world.people.count(tick))
        return (i for i in self.journeys.people_touched_since(since, tick) if i >= start)

    def _activities(self, request: Request) -> Response:
        token = request.arg("nextPageToken")
        if not token:
            raise _MarketoError("701", "'nextPageToken' cannot be blank")
        raw_types = [v.strip() for raw in request.query.get("activityTypeIds", []) for v in raw.split(",") if v.strip()]
        if not raw_types:
            raise _MarketoError("701", "'activityTypeIds' cannot be blank")
        try:
            types = tuple(sorted({int(v) for v in raw_types}))
        except ValueError as exc:
            raise _MarketoError("1003", f"Invalid activityTypeIds '{','.join(raw_types)}'") from exc
        if len(types) > MAX_ACTIVITY_TYPES:
            raise _MarketoError("1003", f"Too many activityTypeIds, max {MAX_ACTIVITY_TYPES}")
        unknown = [t for t in types if t not in _ACTIVITY_TYPES]
        if unknown:
            raise _MarketoError("1003", f"Invalid activityTypeIds '{unknown[0]}'")
        lead_ids = tuple(sorted({int(v) - LEAD_OFFSET for raw in request.query.get("leadIds", [])
                                 for v in raw.split(",") if v.strip().isdigit()}))
        batch = self._batch_size(request)
        since, upto, pos = self._activity_token(token)
        tick = self.world.tick
        if upto < 0:  # the first page fixes the window's end: later activities come with the last token
            upto = self.world.ticks[tick]
        body, records, following = self._pages.get(_PageKey(since, upto, pos, types, lead_ids, batch, tick))
        if following is not None:
            self._pages.prefetch(following)
        # the envelope's requestId is per answer: the page (a pure function of its key) follows it
        return Response(200, b'{"requestId":' + orjson.dumps(_request_id()) + b"," + body, records=records)

    def _activity_page(self, key: _PageKey) -> tuple[bytes, int, _PageKey | None]:
        """(the JSON of an activities answer after its requestId, activities, the next page's key
        or None at the end). The stream is ordered by (lead, date, seq); ``key.pos`` is the last
        activity served (date, lead, seq)."""
        since, upto, pos, types, lead_ids, batch, tick = key
        wanted = frozenset(types)
        render = self._render
        rows: list[str] = []
        last, more = pos, False
        at = seq = 0
        for scanned, idx in enumerate(self._people_from(max(pos[1], 0), since, tick, lead_ids), start=1):
            person, touches = self._known(idx, tick)
            if touches:
                items = self._person_activities(idx, touches, since, upto, wanted, tick)
                if idx == pos[1]:  # the lead the last page ended in: only what comes after
                    items = [x for x in items if (x[0], x[1]) > (pos[0], pos[2])]
                room = batch - len(rows)
                if len(items) > room:
                    del items[room:]
                    more = True
                for at, seq, payload in items:
                    rows.append(render(idx, at, seq, payload, person, tick))
                if items:
                    last = (at, idx, seq)
                if more:
                    break
            if scanned >= _SCAN_LIMIT:  # answer (maybe empty) rather than scan on: resume after this person
                last, more = max(last, (_FAR, idx, 0), key=lambda q: (q[1], q[0], q[2])), True
                break
        following = key._replace(pos=last) if more else None
        if more:
            next_token = self._make_activity_token(since, last, upto)
        else:  # the end: the last token resumes with what happens after the window
            next_token = self._make_activity_token(upto + 1, _START)
        # as orjson.dumps(_envelope(rows or None, nextPageToken=..., moreResult=...)) after requestId
        head = b'"result":[' + ",".join(rows).encode() + b"]," if rows else b""
        body = (head + b'"success":true,"nextPageToken":' + orjson.dumps(next_token) + b',"moreResult":'
                + (b"true" if more else b"false") + b',"errors":[],"warnings":[]}')
        return body, len(rows), following

    def _render(self, idx: int, at: int, seq: int, payload: _Payload, person: Person | None, tick: int) -> str:
        """One activity's JSON, the same as ``orjson.dumps(self._activity(...))``: the lead's own
        part formatted here, the rest (type, campaign, attributes) from ``_tails`` for the common
        types, whose records differ between leads only in that part."""
        aid = (idx + 1) * ACTIVITY_STRIDE + seq + 1
        day, sod = divmod(at // 1000, 86_400)
        prefix = _DAYS.get(day) or _day_prefix(day)
        head = (f'{{"id":{aid},"marketoGUID":"{aid}","leadId":{LEAD_OFFSET + idx},'
                f'"activityDate":"{prefix}{_HOUR_MINUTE[sod // 60]}{_SECOND_Z[sod % 60]}",')
        if payload is None:  # New Lead
            return (f'{head}"activityTypeId":12,"primaryAttributeValueId":{LEAD_OFFSET + idx},"attributes":'
                    f'[{{"name":"Source Type","value":"New lead"}},{{"name":"Created Date","value":"{prefix[:10]}"}}]}}')
        if len(payload) == 5:
            type_id = _TOUCH_TYPE.get(payload[1], _MOMENT)
            if type_id in _SHARED_TAIL:
                device = (idx * 31 + seq) % len(_DEVICES) if type_id in (10, 11) else 0
                tkey = (type_id, payload[2], device, payload[3] if type_id == 11 else None)
                tail = self._tails.get(tkey)
                if tail is None:
                    full = orjson.dumps(self._activity((at, idx, seq), payload, tick, person)).decode()
                    if not full.startswith(head):  # never expected: serve the record as built
                        return full
                    tail = full[len(head):]
                    if len(self._tails) >= _TAIL_CACHE:
                        self._tails.clear()
                    self._tails[tkey] = tail
                return head + tail
        return orjson.dumps(self._activity((at, idx, seq), payload, tick, person)).decode()

    def _activity(self, pos: _Pos, touch: _Payload, tick: int, person: Person | None = None) -> dict[str, Any]:
        at, idx, seq = pos
        lead_id = LEAD_OFFSET + idx
        aid = (idx + 1) * ACTIVITY_STRIDE + seq + 1
        rec: dict[str, Any] = {"id": aid, "marketoGUID": str(aid), "leadId": lead_id, "activityDate": _dt(at)}
        if touch is not None and len(touch) == 3:  # Change Data Value
            name, before, after = touch
            field_id, display = _FIELD_IDS[name]
            rec.update(activityTypeId=13, primaryAttributeValueId=field_id, primaryAttributeValue=display,
                       attributes=[{"name": "New Value", "value": after}, {"name": "Old Value", "value": before},
                                   {"name": "Reason", "value": "Sales stage sync"},
                                   {"name": "Source", "value": "Web service API"}])
            return rec
        if touch is None:  # New Lead
            rec.update(activityTypeId=12, primaryAttributeValueId=lead_id,  # no primaryAttributeValue
                       attributes=[{"name": "Source Type", "value": "New lead"},
                                   {"name": "Created Date", "value": format_ms(at)[:10]}])
            return rec
        _, kind, c, touch_url, _ = touch
        type_id = _TOUCH_TYPE.get(kind, _MOMENT)
        campaign = self._campaign_name(c) if c is not None else None
        h = (idx * 31 + seq) % len(_DEVICES)
        attrs: list[dict[str, Any]]
        if type_id in _EMAIL_TYPES:
            name = f"{campaign}.Email" if campaign is not None else "Operational.Email"
            rec.update(activityTypeId=type_id, primaryAttributeValueId=EMAIL_OFFSET + (c or 0),
                       primaryAttributeValue=name)
            attrs = [{"name": "Campaign Run ID", "value": (c or 0) * 10 + 1}]
            if type_id in (10, 11):
                device, mobile, platform, agent = _DEVICES[h]
                attrs += [{"name": "Device", "value": device}, {"name": "Is Mobile Device", "value": mobile},
                          {"name": "Platform", "value": platform}, {"name": "User Agent", "value": agent}]
                if type_id == 11:
                    attrs.append({"name": "Link", "value": touch_url or "https://www.factoryline.example/"})
            elif type_id == 8:
                p = self.world.person(idx, tick) if person is None else person
                attrs += [{"name": "Category", "value": "1"}, {"name": "Details", "value": "550 5.1.1 User unknown"},
                          {"name": "Email", "value": _norm_email(p.email)},
                          {"name": "Subcategory", "value": "1003"}]
            attrs += [{"name": "Step ID", "value": 1}, {"name": "Choice Number", "value": 0}]
        elif type_id == 1:
            url = touch_url or "https://www.factoryline.example/"
            rec.update(activityTypeId=1, primaryAttributeValueId=100 + (c or 0) % 50,
                       primaryAttributeValue=url.split("://", 1)[-1].split("/", 1)[-1].split("?")[0] or "index")
            attrs = [{"name": "Webpage URL", "value": url.split("?")[0]},
                     {"name": "Query Parameters", "value": url.partition("?")[2]},
                     {"name": "Client IP Address", "value": f"203.0.113.{idx % 250 + 1}"},
                     {"name": "User Agent", "value": _DEVICES[h][3]}]
        elif type_id == 2:
            rec.update(activityTypeId=2, primaryAttributeValueId=200 + (c or 0) % 20,
                       primaryAttributeValue=f"{campaign} Form" if campaign else "Contact Us")
            attrs = [{"name": "Webpage ID", "value": 100 + (c or 0) % 50},
                     {"name": "Client IP Address", "value": f"203.0.113.{idx % 250 + 1}"},
                     {"name": "Query Parameters", "value": ""}]
        elif type_id == 104:
            rec.update(activityTypeId=104, primaryAttributeValueId=PROGRAM_OFFSET + (c or 0),
                       primaryAttributeValue=campaign if campaign else "Webinar")
            attrs = [{"name": "New Status", "value": "Attended"}, {"name": "Old Status", "value": "Registered"},
                     {"name": "Success", "value": True}, {"name": "Reason", "value": "Changed by Smart Campaign"}]
        else:
            rec.update(activityTypeId=_MOMENT, primaryAttributeValueId=1, primaryAttributeValue="Milestone")
            attrs = [{"name": "Type", "value": "Milestone"},
                     {"name": "Description", "value": kind.replace("_", " ")},
                     {"name": "Source", "value": "Smart Campaign"}]
        if c is not None:
            rec["campaignId"] = SMART_CAMPAIGN_OFFSET + c
        rec["attributes"] = attrs
        return rec

    def _campaign_name(self, c: int) -> str:
        """``journeys.campaign(c).name`` (the same at every tick), from a bounded cache: an activity
        page names a few campaigns hundreds of times."""
        name = self._names.get(c)
        if name is None:
            name = self.journeys.campaign(c).name
            if len(self._names) >= _TOUCH_CACHE:
                self._names.clear()
            self._names[c] = name
        return name

    # -- programs and members --------------------------------------------------------------------

    def _campaigns(self) -> list[Campaign]:
        tick_ms = self.world.ticks[self.world.tick]
        out = []
        for c in range(self.journeys.campaign_count()):
            campaign = self.journeys.campaign(c)
            if campaign.system == SYSTEM and campaign.created_ms <= tick_ms:
                out.append(campaign)
        return out

    def _program_updated(self, c: Campaign) -> int:
        return max(c.created_ms, min(c.start_ms, self.world.ticks[self.world.tick]))

    def _program_record(self, c: Campaign) -> dict[str, Any]:
        ptype, channel = _PROGRAM_KIND.get(c.kind, ("Default", "Content Syndication"))
        pid = PROGRAM_OFFSET + c.idx
        updated = self._program_updated(c)
        status = {"in_progress": "on", "completed": "completed", "aborted": "off", "planned": "unlocked"}.get(c.status, "")
        if ptype == "Email":
            status = "locked" if c.status in ("in_progress", "completed") else "unlocked"
        return {
            "id": pid, "name": c.name, "description": f"{c.kind.title()} program ({c.channel})",
            "createdAt": _asset_dt(c.created_ms), "updatedAt": _asset_dt(updated),
            "url": f"https://app-sj01.marketo.com/#PG{pid}A1", "type": ptype, "channel": channel,
            "folder": {"type": "Folder", "value": 100 + c.idx % 5, "folderName": f"{c.kind.title()} Programs"},
            "status": status, "workspace": "Default",
            "tags": [{"tagType": "Campaign Kind", "tagValue": c.kind}],
            "costs": [{"startDate": format_ms(c.start_ms)[:10], "cost": c.actual_cost // 100,
                       "note": f"budget {c.budget // 100}"}],
            "startDate": _asset_dt(c.start_ms) if ptype == "Event" else None,
            "endDate": _asset_dt(c.end_ms) if ptype == "Event" else None,
        }

    def _programs(self, request: Request) -> Response:
        try:
            max_return = int(request.arg("maxReturn") or 20)
            offset = int(request.arg("offset") or 0)
        except ValueError as exc:
            raise _MarketoError("1003", f"Invalid value: {exc}") from exc
        if not 1 <= max_return <= MAX_ASSET_RETURN:
            raise _MarketoError("1003", f"maxReturn must be between 1 and {MAX_ASSET_RETURN}")
        campaigns = self._campaigns()
        lo, hi = request.arg("earliestUpdatedAt"), request.arg("latestUpdatedAt")
        try:
            if lo:
                campaigns = [c for c in campaigns if self._program_updated(c) >= parse_time(lo)]
            if hi:
                campaigns = [c for c in campaigns if self._program_updated(c) <= parse_time(hi)]
        except ValueError as exc:
            raise _MarketoError("1003", f"Invalid date: {exc}") from exc
        rows = [self._program_record(c) for c in campaigns[offset:offset + max_return]]
        if not rows:
            return Response(200, _envelope(None, warnings=[{"code": 702,
                                                            "message": "No assets found for the given search "
                                                                       "criteria."}]))
        return Response(200, _envelope(rows), records=len(rows))

    def _program(self, request: Request, id: str) -> Response:
        c = int(id) - PROGRAM_OFFSET
        found = [x for x in self._campaigns() if x.idx == c]
        if not found:
            return Response(200, _envelope(None, warnings=[{"code": 702, "message": f"Program {id} not found"}]))
        return Response(200, _envelope([self._program_record(found[0])]), records=1)

    @staticmethod
    def _member_status(touches: Iterable[_Mt]) -> tuple[int, str, bool]:
        best = _MEMBER
        for x in touches:
            st = _STATUS_BY_KIND.get(x[1], _MEMBER)
            if st[0] > best[0]:
                best = st
        return best

    def _program_index(self, id: str) -> int:
        """The campaign index of a program id (1013 when there is no such program)."""
        c = int(id) - PROGRAM_OFFSET
        if not any(x.idx == c for x in self._campaigns()):
            raise _MarketoError("1013", f"Program '{id}' not found")
        return c

    def _leads_by_program(self, request: Request, id: str) -> Response:
        c = self._program_index(id)
        tick = self.world.tick
        members = self._members_of(c, tick)
        batch = self._batch_size(request)
        wanted = self._fields(request)
        start = self._offset_token(request.arg("nextPageToken"))
        rows = []
        for m in members[start:start + batch]:
            rec = self._lead_record(self.world.person(m.idx, tick), self._marketo_touches(m.idx, tick), wanted)
            rec["membership"] = {"acquiredBy": m.acquired_by, "isExhausted": False,
                                 "membershipDate": _dt(m.joined_ms), "progressionStatus": m.status[1],
                                 "reachedSuccess": m.status[2]}
            rows.append(rec)
        body = _envelope(rows)
        if start + batch < len(members):
            body["nextPageToken"] = self._make_offset_token(start + batch)
            body["moreResult"] = True
        return Response(200, body, records=len(rows))

    def _deleted_leads(self, request: Request) -> Response:
        """Leads deleted (archived people) at or after the paging token's time, as activity 37."""
        token = request.arg("nextPageToken")
        if not token:
            raise _MarketoError("701", "'nextPageToken' cannot be blank")
        batch = self._batch_size(request)
        since, upto, pos = self._activity_token(token)
        tick = self.world.tick
        found: list[_Pos] = []
        for idx in self.world.archived_indexes(self.world.people, tick):
            if not self._marketo_touches(idx, tick):
                continue
            archived = self.world.person(idx, tick).archived_ms
            if archived is not None and archived >= since:
                found.append((archived, idx, DELETE_SEQ))
        found.sort()
        i = bisect.bisect_right(found, pos)
        page = found[i:i + batch]
        rows = []
        for at, idx, seq in page:
            person = self.world.person(idx, tick)
            aid = (idx + 1) * ACTIVITY_STRIDE + seq + 1
            rows.append({"id": aid, "marketoGUID": str(aid), "leadId": LEAD_OFFSET + idx, "activityDate": _dt(at),
                         "activityTypeId": 37, "primaryAttributeValueId": LEAD_OFFSET + idx,
                         "primaryAttributeValue": f"{person.first_name} {person.last_name}",
                         "attributes": [{"name": "Api Method Name", "value": "deleteLead"},
                                        {"name": "Request Id", "value": "sandbox"}]})
        last = page[-1] if page else pos
        body = _envelope(rows if rows else None, nextPageToken=self._make_activity_token(since, last, upto),
                         moreResult=i + batch < len(found))
        return Response(200, body, records=len(rows))

    def _members(self, request: Request, id: str) -> Response:
        c = self._program_index(id)
        tick = self.world.tick
        batch = self._batch_size(request)
        filter_type = (request.arg("filterType") or "").strip().lower()
        values = {v.strip().lower() for raw in request.query.get("filterValues", []) for v in raw.split(",")
                  if v.strip()}
        rows_all: Sequence[_Member]
        if filter_type == "leadid":
            # by lead: each named lead's own touches decide, no scan of the program
            ids = sorted({int(v) - LEAD_OFFSET for v in values if v.isdigit()})
            rows_all = [m for idx in ids if (m := self._member(c, idx, tick)) is not None]
        elif filter_type == "statusname":
            rows_all = [m for m in self._members_of(c, tick) if m.status[1].lower() in values]
        elif filter_type == "reachedsuccess":
            rows_all = [m for m in self._members_of(c, tick) if str(m.status[2]).lower() in values]
        elif filter_type:
            raise _MarketoError("1003", f"Invalid filterType '{request.arg('filterType')}'")
        else:
            rows_all = self._members_of(c, tick)
        start = self._offset_token(request.arg("nextPageToken"))
        page = rows_all[start:start + batch]
        rows = [{"seq": n, "leadId": LEAD_OFFSET + m.idx, "programId": PROGRAM_OFFSET + c,
                 "reachedSuccess": m.status[2], "acquiredBy": m.acquired_by,
                 "membershipDate": _dt(m.joined_ms), "statusName": m.status[1],
                 "updatedAt": _dt(m.updated_ms)}
                for n, m in enumerate(page)]
        body = _envelope(rows)
        if start + batch < len(rows_all):
            body["nextPageToken"] = self._make_offset_token(start + batch)
            body["moreResult"] = True
        return Response(200, body, records=len(rows))


_: Callable[[World, EmulatorOptions], Emulator] = MarketoEmulator
