"""X (Twitter) API v2 emulator for the sandbox: brand mentions as tweets, in X's wire format.

The world's people who have an X handle (:meth:`sandbox.journeys.Journeys.social_handle`) are X
users; every journey touch of kind ``social_mention`` is one tweet of theirs that mentions the
brand account ``@factoryline``. Served routes (app-only bearer token unless noted):

* ``GET /2/tweets/search/recent`` -- the last 7 days before the world's clock, newest first;
  ``query`` (keywords, ``@handle``, ``from:``, ``lang:``, ``OR``, ``-is:retweet``...),
  ``max_results`` 10..100, ``next_token``, ``since_id``, ``until_id``, ``start_time``, ``end_time``;
* ``GET /2/tweets/search/all`` -- full-archive search (Pro/Enterprise access on X): the world's whole
  mention history, the same query syntax, fields, paging and validation as recent search, but
  ``max_results`` 10..500, ``start_time`` on or after 2006-03-21T00:00:01Z (default: 30 days before
  the request), ``end_time`` at least 10 seconds before the request, ``sort_order`` recency|relevancy
  (both served newest first), and its own limits: 300 requests per 15 minutes and 1 per second;
* ``GET /2/users/{id}/mentions`` -- the brand's 800 most recent mentions, ``max_results`` 5..100,
  ``pagination_token``, ``since_id``, ``until_id``, ``start_time``, ``end_time``;
* ``GET /2/users/{id}``, ``GET /2/users/by/username/{username}``, and ``GET /2/users/me`` (OAuth 2.0
  user-context token only, as on X: the app-only token gets 403 Unsupported Authentication).

``tweet.fields``, ``user.fields`` and ``expansions=author_id`` select fields as X does (default
tweet fields: ``id``, ``text``, ``edit_history_tweet_ids``). Authors who are suspended (1 in 40)
keep their tweets but are missing from ``includes.users`` and reported in a partial ``errors`` array.
Tweet ids are snowflakes (:func:`sandbox.journeys.tweet_id`: ``(created_ms - 1288834974657) << 22 |
22 hash bits``), so they increase with time, and each ``social_mention`` touch's URL carries its id.

Listing holds no index of the population: a token is the last id served, i.e. a time, and a page
walks the journeys' time layout newest first from there: the ticks' mentions (each tick's change
class and new people), then the base mentions window by window
(:meth:`~sandbox.journeys.Journeys.base_mentions_between`); a username is read back from the index
its handle ends with. Small LRU caches of recent windows keep paging cheap; memory does not grow with
the population. Every response carries ``x-rate-limit-limit/-remaining/-reset`` (15-minute windows, the
published app limits); with ``rate_limits=True`` an exhausted window (or a second full-archive search
within a second) answers 429 problem+json. Without enforced limits a window that would run out starts
afresh instead, so ``x-rate-limit-remaining`` never reaches 0 and never sends a client waiting.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple

from sandbox.faults import FaultRule
from sandbox.journeys import ACTIVE_MS, SOCIAL_WINDOW_MS, TWEPOCH, tweet_id
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.routing import Routes
from sandbox.world import _SECOND_OF_DAY, DAY_MS, YEAR_MS, World, _h, format_ms, parse_time

__all__ = ["ACCESS_TOKEN", "BRAND_ID", "BRAND_USERNAME", "USER_ACCESS_TOKEN", "XEmulator", "emulator_spec",
           "tweet_id", "user_id"]

#: app-only bearer token (what monitoring connectors use)
ACCESS_TOKEN = "sandbox-x-app-bearer-AAAA0000"
#: OAuth 2.0 user-context token of the brand account (needed by /2/users/me)
USER_ACCESS_TOKEN = "sandbox-x-user-oauth2-0000"
BRAND_ID = "1100000000000000001"
BRAND_USERNAME = "factoryline"
BRAND_CREATED = "2019-03-14T12:00:00.000Z"
USER_ID_OFFSET = 1_400_000_000_000
RECENT_WINDOW_MS = 7 * 86_400_000
MENTIONS_CAP = 800
WINDOW_S = 900
#: requests per 15 minutes per endpoint (app-only limits as published; /users/me per user)
LIMITS = {"search": 450, "search_all": 300, "mentions": 450, "user": 300, "by_username": 300, "me": 75}
#: minimum seconds between two requests per endpoint (full-archive search: 1 request per second)
MIN_INTERVAL_S = {"search_all": 1.0}
#: full-archive search: the first tweet's day, its default window, and how fresh end_time may be
ARCHIVE_FLOOR_MS = 1_142_899_201_000  # 2006-03-21T00:00:01Z
ARCHIVE_DEFAULT_MS = 30 * 86_400_000
ARCHIVE_END_LAG_MS = 10_000
PROBLEM = "application/problem+json"
JSON = "application/json; charset=utf-8"
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
INVALID = "https://api.twitter.com/2/problems/invalid-request"
_SUSPENDED_ONE_IN = 40
#: a base-mention window spans the creation time of this many people (about as many mentions)
_WINDOW_PEOPLE = 10_000
_SALT = 7100

_DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_DEFAULT_USER_FIELDS = ("id", "name", "username")
_TWEET_FIELDS = frozenset({"id", "text", "edit_history_tweet_ids", "author_id", "created_at", "public_metrics",
                           "lang", "conversation_id", "entities", "possibly_sensitive", "reply_settings", "source",
                           "attachments", "context_annotations", "edit_controls", "geo", "in_reply_to_user_id",
                           "referenced_tweets", "withheld", "note_tweet", "organic_metrics", "promoted_metrics",
                           "non_public_metrics", "article", "card_uri", "community_id", "display_text_range",
                           "media_metadata", "scopes"})
_USER_FIELDS = frozenset({"id", "name", "username", "created_at", "description", "public_metrics", "protected",
                          "verified", "verified_type", "location", "url", "profile_image_url", "entities",
                          "pinned_tweet_id", "withheld", "most_recent_tweet_id", "affiliation", "connection_status",
                          "parody", "receives_your_dm", "subscription_type"})

#: the keys of a full tweet (:meth:`XEmulator.tweet`), in their order
_TWEET_KEYS = ("id", "text", "edit_history_tweet_ids", "author_id", "created_at", "lang", "conversation_id",
               "possibly_sensitive", "reply_settings", "public_metrics", "entities")
#: the keys of a full user (:meth:`XEmulator.user`), in their order (``location`` only with a city)
_USER_KEYS = ("id", "name", "username", "created_at", "description", "protected", "verified", "verified_type",
              "public_metrics", "location")
#: user keys that need no Person: everything but created_at, description and location
_NAME_ONLY = frozenset(_USER_KEYS) - {"created_at", "description", "location"}
#: memo sizes: texts by tweet id (a page's matcher and its bodies read each text twice), word sets by text
_TEXT_MEMO = 20_000
#: served tweets and users kept (:meth:`XEmulator._served`): a mentions timeline serves again the
#: newest posts a search of the brand's handle has just served (and their authors)
_SERVED_MEMO = 2_048
_WORDS_MEMO = 4_096

_TWEET_INDEX = {k: i for i, k in enumerate(_TWEET_KEYS)}
_TweetPlan = tuple[Callable[[tuple[Any, ...]], tuple[Any, ...]], bool, bool, bool, bool]
#: keys (a page's tuple) -> (the values of those keys from a tuple in _TWEET_KEYS order, and
#: whether the text (text, lang, entities), created_at, public_metrics, entities are asked: only
#: those cost more than a constant)
_TWEET_PLANS: dict[tuple[str, ...], _TweetPlan] = {}


_NEED_TEXT = frozenset({"text", "lang", "entities"})


def _pick_none(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return ()


def _tweet_plan(keys: Sequence[str]) -> _TweetPlan:
    key = tuple(keys)
    plan = _TWEET_PLANS.get(key)
    if plan is None:
        idx = [_TWEET_INDEX[k] for k in key]
        pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]
        if not idx:
            pick = _pick_none
        elif len(idx) == 1:
            i = idx[0]
            pick = lambda values: (values[i],)  # noqa: E731
        else:
            pick = itemgetter(*idx)
        plan = (pick, not _NEED_TEXT.isdisjoint(key), "created_at" in key, "public_metrics" in key, "entities" in key)
        if len(_TWEET_PLANS) < 256:
            _TWEET_PLANS[key] = plan
    return plan


_TEMPLATES = (
    "Been using @factoryline for our {topic} pipeline for a month now, honestly impressed",
    "Anyone else at {event}? The @factoryline demo was the best part",
    "Hey @factoryline, is there a way to export {topic} data to our warehouse?",
    "Switched our {topic} reporting to @factoryline #factoryline",
    "@factoryline support sorted out our {topic} sync in an hour. Thank you!",
    "Not thrilled with the latest @factoryline update, {topic} dashboards load slowly",
    "Great read from @factoryline on {topic} attribution {url}",
)
_TEMPLATES_DE = ("Wir nutzen @factoryline jetzt für {topic}, läuft super",)
_TEMPLATES_FR = ("Super retour d'expérience de @factoryline sur {topic}",)
_TOPICS = ("lead scoring", "CRM", "marketing attribution", "webinar", "email", "pipeline", "revenue ops")


def emulator_spec() -> EmulatorSpec:
    """The X API v2 emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(name="x", factory=XEmulator,
                        description="X API v2 (recent and full-archive search, brand mentions, users)",
                        notes={"auth": "Authorization: Bearer settings['bearer_token']",
                               "brand": f"@{BRAND_USERNAME} (id {BRAND_ID})"})


def user_id(person_idx: int) -> str:
    return str(USER_ID_OFFSET + person_idx)


class _Mention(NamedTuple):
    """A NamedTuple, not a dataclass: a window builds thousands of them (several per post served)."""

    id: int
    person: int
    at_ms: int


class _XError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail", ""))
        self.status = status
        self.body = body


def _problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> _XError:
    return _XError(status, {"title": title, "detail": detail, "type": type_, "status": status, **extra})


def _invalid(message: str, parameter: str, value: str) -> _XError:
    return _XError(400, {"errors": [{"parameters": {parameter: [value]}, "message": message}],
                         "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                         "type": INVALID})


def _iso(ms: int) -> str:
    """X's timestamps: whole seconds, ``2026-01-02T03:04:05.000Z`` (``format_ms(ms - ms % 1000)``;
    a page's users were created on as many days, so a day's prefix is cheap to make and kept)."""
    day, sod = divmod(ms // 1000, 86_400)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _day_prefix(day)
    return prefix + _SECOND_OF_DAY[sod] + "000Z"


#: day (since the epoch) -> ``YYYY-MM-DDT``
_DAYS: dict[int, str] = {}
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


def _day_prefix(day: int) -> str:
    """``format_ms(day * DAY_MS)`` up to its ``T``, from the day's ordinal (a fifth of strftime's cost)."""
    if -354_285 <= day <= 2_932_896:  # years 1000..9999: four digits, as strftime's %Y
        prefix = date.fromordinal(day + _EPOCH_ORDINAL).isoformat() + "T"
    else:
        whole = format_ms(day * DAY_MS)
        prefix = whole[:whole.index("T") + 1]
    if len(_DAYS) < 100_000:
        _DAYS[day] = prefix
    return prefix


class _RateLimiter:
    """Fixed 15-minute windows per endpoint, as X reports them, plus full-archive search's
    1 request per second. Not enforced, a window that would run out starts afresh: the headers
    still count down like X's but never tell a client to wait."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # endpoint -> (window start s, used)
        self._last: dict[str, float] = {}  # endpoint -> time of its last accepted request

    def check(self, endpoint: str) -> tuple[dict[str, str], bool]:
        limit = LIMITS.get(endpoint, 300)
        clock = time.time()
        now = int(clock)
        interval = MIN_INTERVAL_S.get(endpoint)
        with self._lock:
            start, used = self._windows.get(endpoint, (now, 0))
            if now >= start + WINDOW_S or (not self.enforce and used >= limit - 1):
                start, used = now, 0
            refused = self.enforce and used >= limit
            last = self._last.get(endpoint)
            too_soon = (self.enforce and not refused and interval is not None and last is not None
                        and clock - last < interval)
            if not refused and not too_soon:
                used += 1
                self._last[endpoint] = clock
            self._windows[endpoint] = (start, used)
        headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(max(0, limit - used)),
                   "x-rate-limit-reset": str(start + WINDOW_S)}
        if too_soon and last is not None and interval is not None:
            # the per-second limit: the window has requests left, the reset is when the next one may go
            headers["x-rate-limit-reset"] = str(math.ceil(last + interval))
        return headers, refused or too_soon


_ROUTES = Routes(
    ("GET", r"^/2/tweets/search/recent/?$", "search", "GET /2/tweets/search/recent"),
    ("GET", r"^/2/tweets/search/all/?$", "search_all", "GET /2/tweets/search/all"),
    ("GET", r"^/2/users/me/?$", "me", "GET /2/users/me"),
    ("GET", r"^/2/users/by/username/(?P<username>[^/]+)/?$", "by_username", "GET /2/users/by/username/{username}"),
    ("GET", r"^/2/users/(?P<id>[^/]+)/mentions/?$", "mentions", "GET /2/users/{id}/mentions"),
    ("GET", r"^/2/users/(?P<id>[^/]+)/?$", "user", "GET /2/users/{id}"),
)


_BY_ID = itemgetter(0)  # _Mention.id


def _below(mentions: list[_Mention], below_id: int | None) -> Iterable[_Mention]:
    """``mentions`` (newest first) from the first one with an id under ``below_id``."""
    if below_id is None:
        return mentions
    return itertools.islice(mentions, bisect.bisect_right(mentions, -below_id, key=_NEG_ID), None)


def _NEG_ID(m: _Mention) -> int:
    return -m.id


def _csv(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for value in request.query.get(name, []):
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


class XEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        from sandbox.journeys import Journeys

        self.world = world
        self.journeys = Journeys(world)
        self.limiter = _RateLimiter(options.rate_limits)
        self._lock = threading.Lock()
        # Listing is a pure function of the person index; these small LRU caches only save recomputing
        # recent pages. Their size does not grow with the population: a window spans fewer days in a
        # larger world, so it holds about the same number of mentions.
        self._tick_cache: OrderedDict[int, list[_Mention]] = OrderedDict()    # tick k -> mentions at ticks[k]
        self._window_cache: OrderedDict[int, list[_Mention]] = OrderedDict()  # window n -> base mentions
        self._campaigns: OrderedDict[tuple[int, int], int | None] = OrderedDict()
        # a tweet's text is a pure function of its id: the query's matcher and the body both read it
        self._texts: dict[int, tuple[str, str]] = {}
        #: (kind, id, tick, keys) -> a tweet or user as served (:meth:`_served`), and their tick
        self._served_memo: dict[tuple[str, int, int, tuple[str, ...]], dict[str, Any]] = {}
        self._served_tick = -1
        self._campaign_names: dict[int, str] = {}
        base = max(1, world.people.base_count)
        self._base_end = world.ticks[0] - DAY_MS      # base touches all lie at or before this
        self._base_start = self._base_end - YEAR_MS   # and at or after the first creation
        self._window_ms = max(3_600_000, min(SOCIAL_WINDOW_MS, YEAR_MS * _WINDOW_PEOPLE // base))
        # the newest base mentions a recent search reaches (its 7 days end a day after the last
        # base touch) are a window of their own, window -1 (at most 4 windows' worth of people):
        # listing them as whole windows read the people created in W + 60 days per window
        self._recent_top = self._base_end - min(RECENT_WINDOW_MS - DAY_MS, 4 * self._window_ms)

    # -- Emulator protocol -----------------------------------------------------------------------

    def settings(self, base_url: str) -> dict[str, str]:
        return {"base_url": base_url, "bearer_token": ACCESS_TOKEN, "user_access_token": USER_ACCESS_TOKEN,
                "brand_user_id": BRAND_ID, "brand_username": BRAND_USERNAME}

    def _match(self, request: Request) -> tuple[str, dict[str, str]] | None:
        return _ROUTES.match(request)

    def route(self, request: Request) -> str:
        return _ROUTES.route(request)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        found = self._match(request)
        headers, _ = self.limiter.check(found[0] if found else "other")
        if rule.kind == "rate_limit":
            headers["x-rate-limit-remaining"] = "0"
            headers["x-rate-limit-reset"] = str(int(time.time() + rule.retry_after))
            return Response(429, _problem(429, "Too Many Requests", "Too Many Requests").body, headers, PROBLEM)
        if rule.kind == "expired_token":
            return Response(401, _problem(401, "Unauthorized", "Unauthorized").body, {}, PROBLEM)
        title = {500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout"}.get(
            rule.status, "Service Unavailable")
        return Response(rule.status, _problem(rule.status, title, title).body, headers, PROBLEM)

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        body = response.body
        if not isinstance(body, dict):
            return response
        data = body.get("data")
        records = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        if records:
            target = records[rng.randrange(len(records))]
            if kind == "missing_id":
                target.pop("id", None)
            else:
                target["created_at"] = "2026-02-31T25:61:00.000Z"
        return response

    def handle(self, request: Request) -> Response:
        found = self._match(request)
        try:
            self._authenticate(request, found[0] if found else "")
            if found is None:
                raise _problem(404, "Not Found Error", f"The requested resource {request.path} was not found.",
                               NOT_FOUND)
        except _XError as exc:
            return Response(exc.status, exc.body, {}, PROBLEM)
        name, params = found
        headers, refused = self.limiter.check(name)
        if refused:
            return Response(429, _problem(429, "Too Many Requests", "Too Many Requests").body, headers, PROBLEM)
        try:
            handler: Callable[..., Response] = getattr(self, f"_{name}")
            resp = handler(request, **params)
        except _XError as exc:
            resp = Response(exc.status, exc.body, content_type=PROBLEM if exc.status >= 400 else JSON)
        resp.headers.update(headers)
        return resp

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _authenticate(request: Request, name: str) -> None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token not in (ACCESS_TOKEN, USER_ACCESS_TOKEN):
            raise _problem(401, "Unauthorized", "Unauthorized")
        if name == "me" and token != USER_ACCESS_TOKEN:
            raise _problem(403, "Unsupported Authentication",
                           "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                           "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                           "https://api.twitter.com/2/problems/unsupported-authentication")

    def _now_ms(self, tick: int) -> int:
        return max(int(time.time() * 1000), self.world.ticks[tick])

    def _cached(self, cache: OrderedDict[Any, Any], key: Any, size: int, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = build()
        with self._lock:
            cache[key] = value
            while len(cache) > size:
                cache.popitem(last=False)
        return value

    def _tick_mentions(self, k: int) -> list[_Mention]:
        """The mentions at exactly ``ticks[k]`` (k >= 1), newest first: the people of the tick's
        change class and the people the tick created. They never change at later ticks."""
        def build() -> list[_Mention]:
            w, j = self.world, self.journeys
            space = w.people
            at = w.ticks[k]
            before = space.count(k - 1)
            out: list[_Mention] = []
            for p in range(space.change_res[k], before, 100):
                if j.has_handle(p):
                    evs = j._tick_events(w.person(p, k), k)
                    if evs and evs[-1][0] == at and evs[-1][1] == "social_mention":
                        out.append(_Mention(tweet_id(at, p), p, at))
            for p in range(before, space.count(k)):
                if j.has_handle(p):
                    out.extend(_Mention(tweet_id(at, p), p, at) for x in j.touches(p, k)
                               if x.kind == "social_mention" and x.at_ms == at)
            out.sort(key=_BY_ID, reverse=True)
            return out
        result: list[_Mention] = self._cached(self._tick_cache, k, 64, build)
        return result

    def _window_top(self, n: int) -> int:
        """The newest time of window ``n``: -1 is ``(top, end]``, n >= 0 ``(top - (n+1)W, top - nW]``."""
        return self._base_end if n < 0 else self._recent_top - n * self._window_ms

    def _window_mentions(self, n: int) -> list[_Mention]:
        """The base mentions (before tick 0) in window ``n`` (:meth:`_window_top`), newest first."""
        def build() -> list[_Mention]:
            hi = self._window_top(n)
            lo = self._recent_top + 1 if n < 0 else hi - self._window_ms + 1
            found = self.journeys.base_mentions_between(lo, hi)
            out = [_Mention(tweet_id(at, p), p, at) for at, p in found]
            out.sort(key=_BY_ID, reverse=True)
            return out
        result: list[_Mention] = self._cached(self._window_cache, n, 4, build)
        return result

    def mentions(self, tick: int | None = None, upper_ms: int | None = None,
                 below_id: int | None = None, lower_ms: int | None = None) -> Iterator[_Mention]:
        """Brand mentions as of ``tick`` at or before ``upper_ms``, newest first, computed lazily:
        the ticks' mentions (newest tick first), then the base mentions window by window. With
        ``below_id``, each (id-sorted) list starts at its first id under it: the same mentions with
        ``id >= below_id`` left out, without walking past them. With ``lower_ms``, the walk ends
        before a list whose newest mention is older (its window is not listed): a reader that stops
        at the first mention older than ``lower_ms`` reads the same."""
        w = self.world
        t = w.tick if tick is None else tick
        for k in range(t, 0, -1):
            if lower_ms is not None and w.ticks[k] < lower_ms:
                return
            if upper_ms is None or w.ticks[k] <= upper_ms:
                yield from _below(self._tick_mentions(k), below_id)
        top, size = self._recent_top, self._window_ms
        n = -1 if upper_ms is None or upper_ms > top else (top - upper_ms) // size
        while self._window_top(n) >= self._base_start:
            if lower_ms is not None and self._window_top(n) < lower_ms:
                return
            yield from _below(self._window_mentions(n), below_id)
            n += 1

    def campaign_of(self, m: _Mention) -> int | None:
        """The campaign of the journey touch behind a mention (its journey, built once)."""
        def build() -> int | None:
            w = self.world
            k = next((k for k in range(1, w.tick + 1) if w.ticks[k] >= m.at_ms), w.tick)
            t = max(k, w.people.created_tick(m.person))
            if m.at_ms <= self._base_end:
                # a base mention: the touches are the base events sorted stably by time, then the
                # tick events (all later): the first base event that matches is the touch. Its
                # mentions are the evangelist's, at that stage's date (added first), and the
                # background ones: away from the stage dates, those alone (a few hashes, not a journey)
                person = w.person(m.person, t)
                if m.at_ms not in person.stage_dates.values():
                    created = person.created_ms
                    horizon = min(self._base_end, created + ACTIVE_MS)
                    for at, campaign in self.journeys._background_mentions(m.person, created, horizon):
                        if at == m.at_ms:
                            return campaign
                for at, kind, campaign, _, _ in self.journeys._base_events(person):
                    if at == m.at_ms and kind == "social_mention":
                        return campaign
                return None
            if m.person < w.people.base_count:
                # a base person's tick mention: the base events all lie before tick 1, so the first
                # match among the touches is the first among the tick events
                for at, kind, campaign, _, _ in self.journeys._tick_events(w.person(m.person, t), t):
                    if at == m.at_ms and kind == "social_mention":
                        return campaign
                return None
            for x in self.journeys.touches(m.person, t):
                if x.kind == "social_mention" and x.at_ms == m.at_ms:
                    return x.campaign_idx
            return None
        result: int | None = self._cached(self._campaigns, (m.person, m.at_ms), 4096, build)
        return result

    def suspended(self, person_idx: int) -> bool:
        return _h(self.world.seed, _SALT, person_idx) % _SUSPENDED_ONE_IN == 0

    def _text(self, m: _Mention) -> tuple[str, str]:
        texts = self._texts
        found = texts.get(m.id)
        if found is None:
            if len(texts) >= _TEXT_MEMO:
                texts.clear()  # bounded; values never change, so a lost entry is only recomputed
            found = texts[m.id] = self._make_text(m)
        return found

    def _served(self, kind: str, n: int, tick: int, keys: tuple[str, ...],
                build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A tweet or user object (a pure function of the key), through a bounded memo of the first
        ones served at the current tick (every listing starts from the newest posts, so those are
        the ones served again): a copy, as :meth:`corrupt` may change a served record's top-level
        keys (its nested values are only read)."""
        memo = self._served_memo
        key = (kind, n, tick, keys)
        found = memo.get(key)
        if found is None:
            found = build()
            if tick != self._served_tick:  # the clock moved: the entries of the last tick are not asked again
                memo.clear()
                self._served_tick = tick
            if len(memo) < _SERVED_MEMO:
                memo[key] = found
        return dict(found)

    def _campaign_name(self, idx: int) -> str:
        """A campaign's name (its status and cost change with the clock, its name does not)."""
        names = self._campaign_names
        found = names.get(idx)
        if found is None:
            if len(names) >= _WORDS_MEMO:
                names.clear()
            found = names[idx] = self.journeys.campaign(idx).name
        return found

    def _make_text(self, m: _Mention) -> tuple[str, str]:
        h = _h(self.world.seed, _SALT + 1, m.id)
        roll = h % 20
        topic = _TOPICS[(h >> 8) % len(_TOPICS)]
        url = f"https://t.co/{(h >> 16) % 36**10:010x}"
        if roll == 0:
            return _TEMPLATES_DE[0].format(topic=topic), "de"
        if roll == 1:
            return _TEMPLATES_FR[0].format(topic=topic), "fr"
        template = _TEMPLATES[(h >> 4) % len(_TEMPLATES)]
        event = "the summit"
        if "{event}" in template:  # the campaign costs a journey: only when the text names it
            campaign = self.campaign_of(m)
            if campaign is not None:
                event = self._campaign_name(campaign)
        return template.format(topic=topic, event=event, url=url), "en"

    def tweet(self, m: _Mention, tick: int, keys: Sequence[str] = _TWEET_KEYS) -> dict[str, Any]:
        """The tweet object with ``keys`` (of :data:`_TWEET_KEYS`, in their order; default: every
        field this emulator knows). Only the selected values that cost more than a constant are
        computed: pages build one per post."""
        pick, want_text, want_created, want_metrics, want_entities = _tweet_plan(keys)
        tid = str(m.id)
        text, lang = self._text(m) if want_text else ("", "")
        metrics = entities = None
        if want_metrics:
            h = _h(self.world.seed, _SALT + 2, m.id)
            age_days = max(0, (self.world.ticks[tick] - m.at_ms) // 86_400_000)
            likes = (h % 40) + min(age_days, 30) * ((h >> 8) % 3)
            metrics = {"retweet_count": (h >> 16) % 8, "reply_count": (h >> 20) % 5, "like_count": likes,
                       "quote_count": (h >> 24) % 3, "bookmark_count": (h >> 28) % 4,
                       "impression_count": 40 + likes * 25 + (h >> 32) % 500}
        if want_entities:
            at = text.index("@factoryline")
            entities = {"mentions": [{"start": at, "end": at + 12, "username": BRAND_USERNAME, "id": BRAND_ID}]}
        # the values in _TWEET_KEYS order, picked in the order of ``keys``
        return dict(zip(keys, pick((tid, text, [tid], str(USER_ID_OFFSET + m.person),
                                    _iso(m.at_ms) if want_created else None, lang, tid, False, "everyone",
                                    metrics, entities)), strict=True))

    def user(self, person_idx: int, tick: int, keys: Sequence[str] = _USER_KEYS) -> dict[str, Any]:
        """The user object with ``keys`` (of :data:`_USER_KEYS`, in their order; default: all)."""
        world = self.world
        h = _h(world.seed, _SALT + 3, person_idx)
        values: dict[str, Any] = {"id": str(USER_ID_OFFSET + person_idx), "protected": False, "verified": False,
                                  "verified_type": "none"}
        # the whole person only for the fields that need more than the name (its first and last names
        # are World._name's, which is a fraction of the cost)
        if _NAME_ONLY.issuperset(keys):
            if "name" in keys:
                first, last, _ = world._name(person_idx)
                values["name"] = f"{first} {last}"
        else:
            person = world.person(person_idx, tick)
            values["name"] = f"{person.first_name} {person.last_name}"
            values["created_at"] = _iso(person.created_ms - (h % 2000) * 86_400_000)
            values["description"] = f"{person.job_title}" if person.job_title else ""
            if person.city:
                values["location"] = person.city
        if "username" in keys:
            values["username"] = self.journeys.social_handle(person_idx) or f"user{person_idx}"
        if "public_metrics" in keys:
            values["public_metrics"] = {"followers_count": h % 5000, "following_count": (h >> 12) % 2000,
                                        "tweet_count": (h >> 24) % 20000, "listed_count": (h >> 36) % 50,
                                        "like_count": (h >> 40) % 30000}
        return {key: values[key] for key in keys if key in values}

    @staticmethod
    def brand_user() -> dict[str, Any]:
        return {"id": BRAND_ID, "name": "Factoryline", "username": BRAND_USERNAME, "created_at": BRAND_CREATED,
                "description": "Marketing and sales data, one pipeline.", "protected": False, "verified": True,
                "verified_type": "business",
                "public_metrics": {"followers_count": 18_200, "following_count": 310, "tweet_count": 4_120,
                                   "listed_count": 96, "like_count": 2_050}}

    @staticmethod
    def _fields(request: Request, param: str, known: frozenset[str], default: tuple[str, ...]) -> list[str]:
        fields = _csv(request, param)
        for f in fields:
            if f not in known:
                raise _invalid(f"The `{param}` query parameter value [{f}] is not one of [{','.join(sorted(known))}]",
                               param, f)
        return list(dict.fromkeys([*default, *fields]))

    @staticmethod
    def _select(obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        return {f: obj[f] for f in fields if f in obj}

    def _user_for(self, request: Request, raw: dict[str, Any]) -> dict[str, Any]:
        return self._select(raw, self._fields(request, "user.fields", _USER_FIELDS, _DEFAULT_USER_FIELDS))

    # -- timelines -------------------------------------------------------------------------------

    def _int_param(self, request: Request, name: str, lo: int, hi: int, default: int) -> int:
        raw = request.arg(name)
        if raw is None:
            return default
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise _invalid(f"The `{name}` query parameter value [{raw}] is not between {lo} and {hi}", name, raw)
        return int(raw)

    def _id_param(self, request: Request, name: str) -> int | None:
        raw = request.arg(name)
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 19:
            raise _invalid(f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$", name, raw)
        return int(raw)

    def _time_param(self, request: Request, name: str) -> int | None:
        raw = request.arg(name)
        if raw is None:
            return None
        try:
            return parse_time(raw)
        except ValueError:
            raise _invalid(f"Invalid '{name}':'{raw}'. '{name}' must be a valid RFC3339 date-time.", name,
                           raw) from None

    @staticmethod
    def _token(request: Request, name: str) -> int | None:
        raw = request.arg(name)
        if raw is None:
            return None
        try:
            value = int(raw[1:], 36) if raw.startswith("b") else -1
        except ValueError:
            value = -1
        if value < 0:
            raise _invalid(f"The `{name}` query parameter value [{raw}] is not valid", name, raw)
        return value

    def _timeline(self, request: Request, matches: Callable[[_Mention], bool],
                  candidates: Callable[[int | None, int | None, int | None], Iterable[_Mention]],
                  page_size: int, token_param: str, floor_ms: int | None,
                  default_start_ms: int | None = None, latest_end_ms: int | None = None) -> Response:
        tick = self.world.tick
        tweet_fields = self._fields(request, "tweet.fields", _TWEET_FIELDS, _DEFAULT_TWEET_FIELDS)
        expansions = _csv(request, "expansions")
        for e in expansions:
            if e not in ("author_id", "referenced_tweets.id", "entities.mentions.username",
                         "in_reply_to_user_id", "attachments.media_keys", "referenced_tweets.id.author_id"):
                raise _invalid(f"The `expansions` query parameter value [{e}] is not one of "
                               "[author_id,referenced_tweets.id,entities.mentions.username,...]", "expansions", e)
        since_id = self._id_param(request, "since_id")
        until_id = self._id_param(request, "until_id")
        start = self._time_param(request, "start_time")
        end = self._time_param(request, "end_time")
        if floor_ms is not None and start is not None and start < floor_ms:
            raw = request.arg("start_time") or ""
            raise _invalid(f"Invalid 'start_time':'{raw}'. 'start_time' must be on or after {_iso(floor_ms)}",
                           "start_time", raw)
        if latest_end_ms is not None and end is not None and end > latest_end_ms:
            raw = request.arg("end_time") or ""
            raise _invalid(f"Invalid 'end_time':'{raw}'. 'end_time' must be a minimum of 10 seconds prior to the "
                           "request time.", "end_time", raw)
        if start is None:
            start = floor_ms if default_start_ms is None else default_start_ms
        if request.arg("start_time") is not None and start is not None and end is not None and start >= end:
            raw = request.arg("end_time") or ""
            raise _invalid(f"Invalid 'end_time':'{raw}'. 'end_time' must be after 'start_time'", "end_time", raw)
        after = self._token(request, token_param)  # the last id served: continue below it
        # start the lazy walk at the newest time any of the upper bounds allows
        uppers = [(i >> 22) + TWEPOCH for i in (after, until_id) if i is not None]
        if end is not None:
            uppers.append(end - 1)
        page: list[_Mention] = []
        more = False
        # the walk may start below the ids the loop would skip (after, until_id)
        below = min((i for i in (after, until_id) if i is not None), default=None)
        # and end before the mentions older than start (the loop stops at the first of them)
        for m in candidates(min(uppers) if uppers else None, below, start):
            if after is not None and m.id >= after:
                continue
            if since_id is not None and m.id <= since_id:
                break
            if until_id is not None and m.id >= until_id:
                continue
            if start is not None and m.at_ms < start:
                break
            if end is not None and m.at_ms >= end:
                continue
            if not matches(m):
                continue
            if len(page) == page_size:
                more = True
                break
            page.append(m)
        body: dict[str, Any] = {}
        if page:
            want_author = "author_id" in expansions
            fields = [*tweet_fields, "author_id"] if want_author and "author_id" not in tweet_fields else tweet_fields
            # the selected keys in the requested order, fields this emulator does not know left out
            tweet_keys = [f for f in fields if f in _TWEET_KEYS]
            tkeys = tuple(tweet_keys)
            body["data"] = [self._served("tweet", m.id, tick, tkeys, partial(self.tweet, m, tick, tkeys))
                            for m in page]
            if want_author:
                user_fields = self._fields(request, "user.fields", _USER_FIELDS, _DEFAULT_USER_FIELDS)
                user_keys = tuple(f for f in user_fields if f in _USER_KEYS)
                users: list[dict[str, Any]] = []
                errors: list[dict[str, Any]] = []
                seen: set[int] = set()
                for m in page:
                    if m.person in seen:
                        continue
                    seen.add(m.person)
                    if self.suspended(m.person):
                        uid = user_id(m.person)
                        errors.append({"value": uid, "detail": f"Could not find user with author_id: [{uid}].",
                                       "title": "Not Found Error", "resource_type": "user",
                                       "parameter": "author_id", "resource_id": uid, "type": NOT_FOUND})
                    else:
                        users.append(self._served("user", m.person, tick, user_keys,
                                                  partial(self.user, m.person, tick, user_keys)))
                if users:
                    body["includes"] = {"users": users}
                if errors:
                    body["errors"] = errors
        meta: dict[str, Any] = {}
        if page:
            meta["newest_id"] = str(page[0].id)
            meta["oldest_id"] = str(page[-1].id)
        meta["result_count"] = len(page)
        if more:
            meta["next_token"] = "b" + _b36(page[-1].id)
        body["meta"] = meta
        return Response(200, body, records=len(page))

    @staticmethod
    def _query(request: Request, max_len: int) -> str:
        query = request.arg("query")
        if not query or not query.strip():
            raise _invalid("The `query` query parameter can not be empty", "query", query or "")
        if len(query) > max_len:
            raise _invalid(f"The `query` query parameter value [{query}] is not valid", "query", query)
        return query

    def _search(self, request: Request) -> Response:
        query = self._query(request, 512)
        tick = self.world.tick
        matcher = _compile_query(query, self)
        floor = self._now_ms(tick) - RECENT_WINDOW_MS
        size = self._int_param(request, "max_results", 10, 100, 10)
        token = "next_token" if request.arg("next_token") is not None else "pagination_token"
        return self._timeline(request, matcher, lambda upper, below, lower: self.mentions(tick, upper, below, lower), size, token, floor)

    def _search_all(self, request: Request) -> Response:
        """Full-archive search: the whole history, walked lazily window by window from the newest
        time the request allows (memory does not grow with the population or the range)."""
        query = self._query(request, 1024)  # Pro access (Enterprise: 4096)
        order = request.arg("sort_order")
        if order is not None and order not in ("recency", "relevancy"):
            raise _invalid(f"The `sort_order` query parameter value [{order}] is not one of [recency,relevancy]",
                           "sort_order", order)
        tick = self.world.tick
        matcher = _compile_query(query, self)
        now = self._now_ms(tick)
        size = self._int_param(request, "max_results", 10, 500, 10)
        token = "next_token" if request.arg("next_token") is not None else "pagination_token"
        return self._timeline(request, matcher, lambda upper, below, lower: self.mentions(tick, upper, below, lower), size, token,
                              ARCHIVE_FLOOR_MS, default_start_ms=now - ARCHIVE_DEFAULT_MS,
                              latest_end_ms=now - ARCHIVE_END_LAG_MS)

    def _mentions(self, request: Request, id: str) -> Response:
        if not id.isdigit():
            raise _invalid(f"The `id` query parameter value [{id}] does not match ^[0-9]{{1,19}}$", "id", id)
        size = self._int_param(request, "max_results", 5, 100, 10)
        if id != BRAND_ID:
            self._person_of(id)  # 404-like errors for unknown users
            return Response(200, {"meta": {"result_count": 0}})
        tick = self.world.tick
        # the cap counts from the newest mention: walk from the top (recent windows are cached)
        return self._timeline(request, lambda m: True,
                              lambda upper, below, lower: itertools.islice(self.mentions(tick), MENTIONS_CAP),
                              size, "pagination_token", None)

    # -- users -----------------------------------------------------------------------------------

    def _person_of(self, uid: str) -> int | None:
        if uid == BRAND_ID:
            return None
        idx = int(uid) - USER_ID_OFFSET if uid.isdigit() else -1
        if not 0 <= idx < self.world.people.count(self.world.tick) or self.journeys.social_handle(idx) is None:
            raise _XError(200, {"errors": [{"value": uid, "detail": f"Could not find user with id: [{uid}].",
                                            "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                                            "resource_id": uid, "type": NOT_FOUND}]})
        return idx

    def _user_body(self, request: Request, idx: int | None, value: str, parameter: str) -> Response:
        if idx is not None and self.suspended(idx):
            return Response(200, {"errors": [{"value": value, "detail": f"User has been suspended: [{value}].",
                                              "title": "Forbidden", "resource_type": "user", "parameter": parameter,
                                              "resource_id": value,
                                              "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
        raw = self.brand_user() if idx is None else self.user(idx, self.world.tick)
        return Response(200, {"data": self._user_for(request, raw)}, records=1)

    def _user(self, request: Request, id: str) -> Response:
        return self._user_body(request, self._person_of(id), id, "id")

    def _me(self, request: Request) -> Response:
        return self._user_body(request, None, BRAND_ID, "id")

    def _by_username(self, request: Request, username: str) -> Response:
        if not re.fullmatch(r"[A-Za-z0-9_]{1,15}", username):
            raise _invalid(f"The `username` query parameter value [{username}] does not match ^[A-Za-z0-9_]{{1,15}}$",
                           "username", username)
        if username.lower() == BRAND_USERNAME:
            return self._user_body(request, None, username, "username")
        idx = self._person_of_handle(username)
        if idx is None:
            return Response(200, {"errors": [{"value": username,
                                              "detail": f"Could not find user with username: [{username}].",
                                              "title": "Not Found Error", "resource_type": "user",
                                              "parameter": "username", "resource_id": username, "type": NOT_FOUND}]})
        return self._user_body(request, idx, username, "username")

    def _person_of_handle(self, username: str) -> int | None:
        """Handles end with the person's index (``asmith_12``): read it back and check (O(1))."""
        name = username.lower()
        digits = re.search(r"[0-9]+$", name)
        if digits is None:
            return None
        idx = int(digits.group())
        if not 0 <= idx < self.world.people.count(self.world.tick):
            return None
        return idx if self.journeys.social_handle(idx) == name else None


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


_TOKEN_RE = re.compile(r'-?"[^"]*"|\(|\)|[^\s()]+')


def _compile_query(query: str, emu: XEmulator) -> Callable[[_Mention], bool]:
    """A small subset of X's search syntax: AND of terms, ``OR`` between terms, parentheses, ``-``
    negation, quoted phrases, ``@user``, ``#tag``, ``from:``, ``lang:``, ``is:retweet|reply|quote``,
    ``has:mentions``. Text terms match whole words of the tweet, ignoring case and ``@``/``#``."""
    tokens = _TOKEN_RE.findall(query)
    pos = 0

    def term(tok: str) -> Callable[[_Mention], bool]:
        neg = tok.startswith("-") and len(tok) > 1
        tok = tok[1:] if neg else tok
        low = tok.lower()
        test: Callable[[_Mention], bool]
        if low.startswith("from:"):
            name = low[5:].lstrip("@")
            test = lambda m: (emu.journeys.social_handle(m.person) or "").lower() == name  # noqa: E731
        elif low.startswith("lang:"):
            lang = low[5:]
            test = lambda m: emu._text(m)[1] == lang  # noqa: E731
        elif low in ("is:retweet", "is:reply", "is:quote", "is:nullcast", "has:media", "has:links:none"):
            test = lambda m: False  # noqa: E731
        elif low in ("has:mentions", "is:verified"):
            test = (lambda m: True) if low == "has:mentions" else (lambda m: False)
        elif low.startswith('"'):
            phrase = low.strip('"')
            test = lambda m: phrase in emu._text(m)[0].lower()  # noqa: E731
        elif ":" in low:
            raise _invalid(f"There were errors processing your request: Reference to invalid operator "
                           f"'{low.split(':')[0]}'. Operator is not available in current product or product "
                           f"packaging. Please refer to complete available operator list at "
                           f"https://developer.twitter.com/en/docs/twitter-api/tweets/search/integrate/"
                           f"build-a-query. (at position 1)", "query", query)
        else:
            word = low.lstrip("@#")
            test = lambda m: word in _words(emu._text(m)[0])  # noqa: E731
        return (lambda m: not test(m)) if neg else test

    def parse_or() -> Callable[[_Mention], bool]:
        alts = [parse_and()]
        nonlocal pos
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            alts.append(parse_and())
        return alts[0] if len(alts) == 1 else (lambda m: any(a(m) for a in alts))

    def parse_and() -> Callable[[_Mention], bool]:
        nonlocal pos
        parts: list[Callable[[_Mention], bool]] = []
        while pos < len(tokens) and tokens[pos] not in ("OR", ")"):
            tok = tokens[pos]
            pos += 1
            if tok == "(":
                parts.append(parse_or())
                if pos < len(tokens) and tokens[pos] == ")":
                    pos += 1
            else:
                parts.append(term(tok))
        if not parts:
            raise _invalid(f"There were errors processing your request: Ambiguous use of OR (at position {pos})",
                           "query", query)
        return parts[0] if len(parts) == 1 else (lambda m: all(p(m) for p in parts))

    matcher = parse_or()
    return matcher


_WORD_RE = re.compile(r"[@#]?(\w+)")


_WORDS: dict[str, frozenset[str]] = {}


def _words(text: str) -> frozenset[str]:
    """The lower-cased words of a text, memoised: most texts repeat (templates x topics x events)."""
    found = _WORDS.get(text)
    if found is None:
        if len(_WORDS) >= _WORDS_MEMO:
            _WORDS.clear()
        found = _WORDS[text] = frozenset(w.lower() for w in _WORD_RE.findall(text))
    return found
