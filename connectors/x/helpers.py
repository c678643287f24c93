"""X API v2 HTTP and pagination: httpx through :class:`core.http.VendorHTTP`.

* Auth: app-only ``Authorization: Bearer <token>``.
* Sources: each configured recent-search query (``GET /2/tweets/search/recent``, ``next_token``
  paging) and the brand account's mentions (``GET /2/users/:id/mentions``, ``pagination_token``
  paging), newest first, ``expansions=author_id`` with ``includes.users``.
* Incremental: ``since_id`` per source = the ``meta.newest_id`` of the source's first page,
  committed with the source's last page (a killed run re-reads from the old ``since_id``).
* Backfill (``archive_start`` set; needs Pro or Enterprise access): the first run of each search
  query reads its history through full-archive search (``GET /2/tweets/search/all``, up to 500 a
  page) from ``archive_start`` to the run start (less 30 s: X wants ``end_time`` 10 s old), newest
  first. Its progress is stored with every page (``backfills[<source>]``: the fixed ``end_time``,
  the backfill's ``newest_id`` and the ``until_id`` below which it continues), so a killed backfill
  resumes where its loaded pages end. When it is done its ``newest_id`` becomes the query's
  ``since_id`` and later runs read recent search by ``since_id`` as without a backfill.
* Rate limits: every response's ``x-rate-limit-remaining`` / ``-reset`` is kept per endpoint; when
  a 2xx says none are left, the next request to that endpoint waits until the reset instead of
  drawing a 429. A 429 (problem+json) is retried after ``x-rate-limit-reset`` (see
  :func:`classify`), once, not in a storm. Full-archive search is also limited to 1 request per
  second: the connector keeps that pace once X answered one of them with 429, or from the first
  request with ``pace`` on (a sandbox without limits, or an Enterprise contract, need not wait).
* Partial errors: a 200 may carry an ``errors`` array beside ``data`` (e.g. a suspended author
  missing from ``includes.users``); those are logged and counted (``<stream>.partial_errors``),
  the tweets are kept.

Records are X's own, with one enrichment on tweets: ``record["author"]`` is the tweet's author
from ``includes.users`` (``None`` when X reported the author in ``errors``). Every source asks for the
same fields and nothing in a record names the source that read it: a post found by several sources is
read by whichever comes first in a run, and a resumed run's mentions timeline may re-read a post a
cut-off backfill loaded, so a source label would make a resumed run's rows differ from a clean run's.
(Whether a post mentions the brand account is in its own ``entities.mentions``.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.x import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import ConfigurationError, RateLimitedError, TerminalVendorError, VendorError
from core.http import RetryPolicy, VendorHTTP, register_classifier

__all__ = ["XConnector", "classify", "queries_of"]

log = logging.getLogger("factoryline.x")


def _reset_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    raw = headers.get("x-rate-limit-reset") if isinstance(headers, httpx.Headers) else \
        next((v for k, v in headers.items() if k.lower() == "x-rate-limit-reset"), None)
    try:
        reset = float(raw) if raw else None
    except ValueError:
        return None
    if reset is None:
        return None
    return max(0.0, min(reset - (time.time() if now is None else now), S.MAX_RESET_WAIT))


def classify(status: int, headers: Mapping[str, str], body: Any, retry_after: float | None) -> VendorError | None:
    """X's problem+json errors; a 429 waits until ``x-rate-limit-reset``."""
    detail = None
    if isinstance(body, dict):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        detail = first.get("message") or body.get("detail") or body.get("title")
    text = detail or "no detail"
    if status == 429:
        wait = _reset_wait(headers)
        return RateLimitedError(f"rate limit window used up ({text}); waiting for x-rate-limit-reset",
                                vendor=S.VENDOR, status=status,
                                retry_after=wait if wait is not None else (retry_after or 60.0))
    if status == 401:
        return TerminalVendorError(f"the bearer token was refused ({text}); set an app-only bearer token in "
                                   "sources.x.bearer_token or SOURCES__X__BEARER_TOKEN", vendor=S.VENDOR,
                                   status=status)
    if status == 403:
        return TerminalVendorError(f"forbidden ({text}); check the app's access level and the token type",
                                   vendor=S.VENDOR, status=status)
    if status == 400:
        return TerminalVendorError(f"invalid request ({text}); check sources.x.queries", vendor=S.VENDOR,
                                   status=status)
    return None


register_classifier(S.VENDOR, classify)


def queries_of(value: Any) -> list[str]:
    """Search queries from a list, or a text with one query per line or separated by ``;;``."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else str(value).replace(";;", "\n").splitlines()
    return [q.strip() for q in items if str(q).strip()]


class _Pacer:
    """Waits before a request whose endpoint has no requests left in its 15-minute window, and
    keeps full-archive search to 1 request per second once that is asked for (``pace``) or X
    refused one with 429."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.time,
                 pace_archive: bool = False) -> None:
        self.sleep = sleep
        self.clock = clock
        self.waited: list[float] = []
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # endpoint -> (remaining, reset epoch)
        #: endpoint -> least seconds between the last response and the next request
        self.intervals: dict[str, float] = {"archive": S.ARCHIVE_MIN_INTERVAL_S} if pace_archive else {}
        self._last: dict[str, float] = {}  # endpoint -> when its last response arrived

    @staticmethod
    def endpoint(path: str) -> str:
        path = path.rstrip("/")
        return "search" if path.endswith("/search/recent") else "archive" if path.endswith("/search/all") else \
            "mentions" if path.endswith("/mentions") else "other"

    def feed(self, response: httpx.Response) -> None:
        endpoint = self.endpoint(response.request.url.path)
        with self._lock:
            self._last[endpoint] = self.clock()  # (a response arrives after X counted its request)
            if response.status_code == 429 and endpoint == "archive" and endpoint not in self.intervals:
                log.info("x full-archive search answered 429: pacing it to 1 request/s from now on")
                self.intervals[endpoint] = S.ARCHIVE_MIN_INTERVAL_S
        if response.status_code >= 300:  # a 429's wait belongs to the retry policy
            return
        try:
            remaining = int(response.headers["x-rate-limit-remaining"])
            reset = float(response.headers["x-rate-limit-reset"])
        except (KeyError, ValueError):
            return
        with self._lock:
            self._windows[self.endpoint(response.request.url.path)] = (remaining, reset)

    def before(self, path: str) -> None:
        with self._lock:
            remaining, reset = self._windows.get(self.endpoint(path), (1, 0.0))
        wait = min(reset - self.clock(), S.MAX_RESET_WAIT) if remaining <= 0 else 0.0
        if wait > 0:
            log.info("x %s: rate-limit window used up; waiting %.0fs for its reset", self.endpoint(path), wait)
            self.waited.append(wait)
            self.sleep(wait)
            with self._lock:
                self._windows.pop(self.endpoint(path), None)
        with self._lock:
            interval = self.intervals.get(self.endpoint(path))
            last = self._last.get(self.endpoint(path))
        if interval is not None and last is not None and (gap := last + interval - self.clock()) > 0:
            self.sleep(gap)


class XConnector:
    """:class:`core.connector.Connector` for X API v2 brand monitoring.

    Streams ``tweets`` (every post that matched a query or mentions the brand account) and
    ``users`` (their authors, each once per run), each with ``since_id`` per source in its state:
    ``{"since_ids": {"mentions": "...", "search:<query>": "..."}}``.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        token = config.get("bearer_token")
        if not token:
            raise ConfigurationError(
                "X needs an app-only bearer token: set sources.x.bearer_token in .dlt/secrets.toml or the "
                "environment variable SOURCES__X__BEARER_TOKEN (developer portal > your app > Keys and tokens)")
        self.config = config
        self.page_size = max(10, min(int(config.get("page_size") or S.MAX_RESULTS), S.MAX_RESULTS))
        brand = str(config.get("brand_username") or "").lstrip("@")
        self.queries = queries_of(config.get("queries")) or ([f"@{brand}"] if brand else [])
        self.brand_username = brand or None
        self.brand_user_id = str(config.get("brand_user_id") or "") or None
        self.mentions = _flag(config.get("mentions", True))
        start = str(config.get("archive_start") or "").strip()
        self.archive_start = _archive_start(start) if start and start.lower() not in ("false", "0", "no") else None
        self.archive_page_size = max(10, min(int(config.get("archive_page_size") or S.ARCHIVE_MAX_RESULTS),
                                             S.ARCHIVE_MAX_RESULTS))
        # X resets its windows every 15 minutes: the policy must be willing to wait that long
        self.policy = policy or RetryPolicy(retry_after_cap=S.MAX_RESET_WAIT, max_elapsed=3 * S.MAX_RESET_WAIT)
        self.pacer = _Pacer(self.policy.sleep, pace_archive=_flag(config.get("pace", False)))
        self.http = VendorHTTP(S.VENDOR, str(config.get("base_url") or S.DEFAULT_BASE_URL).rstrip("/"),
                               headers={"Authorization": f"Bearer {token}"},
                               secrets=[str(token), *config.secrets()], policy=self.policy,
                               on_response=self.pacer.feed, transport=transport)
        self.requests = 0
        self.partial_errors = 0

    def close(self) -> None:
        self.http.close()

    # -- transport ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        def once() -> Any:
            self.pacer.before(path)
            self.requests += 1
            return self.http.json("GET", path, params=dict(params))

        body = once()
        if not isinstance(body, dict):
            raise TerminalVendorError(f"GET {path}: expected a JSON object", vendor=S.VENDOR)
        return body

    def _brand_id(self) -> str | None:
        if self.brand_user_id or not self.brand_username:
            return self.brand_user_id
        body = self._get(f"/2/users/by/username/{self.brand_username}", {})
        data = body.get("data") or {}
        if not data.get("id"):
            raise ConfigurationError(f"X has no user @{self.brand_username}; check sources.x.brand_username")
        self.brand_user_id = str(data["id"])
        return self.brand_user_id

    def _sources(self) -> list[tuple[str, str, dict[str, Any], str]]:
        """(state key, path, fixed params, name of the paging parameter) of every source."""
        out = [(f"search:{q}", S.SEARCH_PATH, {"query": q}, "next_token") for q in self.queries]
        if self.mentions:
            brand = self._brand_id()
            if brand:
                out.append(("mentions", S.MENTIONS_PATH.format(id=brand), {}, "pagination_token"))
        if not out:
            raise ConfigurationError("X has nothing to read: set sources.x.queries (search queries) or "
                                     "sources.x.brand_username / brand_user_id (for mentions)")
        return out

    def _bodies(self, path: str, params: dict[str, Any], token_param: str, since_id: str | None,
                stream: str, ctx: RunContext, size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every page of one source, newest first."""
        query = {**params, "max_results": size or self.page_size, "expansions": "author_id",
                 "tweet.fields": S.TWEET_FIELDS, "user.fields": S.USER_FIELDS}
        if since_id and not (path == S.SEARCH_PATH and _older_than_recent_window(since_id)):
            query["since_id"] = since_id  # (X refuses a search since_id older than its 7-day window)
        while True:
            body = self._get(path, query)
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                self.partial_errors += len(errors)
                ctx.count(f"{stream}.partial_errors", len(errors))
                first = errors[0] if isinstance(errors[0], dict) else {}
                log.warning("x %s: %d partial error(s) in a 200, tweets kept (first: %s %s: %s)", path,
                            len(errors), first.get("resource_type"), first.get("resource_id") or first.get("value"),
                            first.get("detail") or first.get("title"))
            yield body
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return
            query[token_param] = token

    # -- Connector protocol -------------------------------------------------------------------

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        if stream.name not in ("tweets", "users"):
            raise ConfigurationError(f"x has no stream {stream.name!r} (valid: tweets, users)")
        before = billed = self.requests
        old = {} if ctx.full_refresh else dict(state or {})
        since_ids: dict[str, str] = dict(old.get("since_ids") or {})
        # source -> a backfill's progress ({"end_time", "newest_id", "until_id"}) or {"done": True}
        backfills: dict[str, dict[str, Any]] = dict(old.get("backfills") or {})

        def snapshot() -> dict[str, Any]:
            out: dict[str, Any] = {"since_ids": dict(since_ids)}
            if backfills:
                out["backfills"] = {k: dict(v) for k, v in backfills.items()}
            return out

        # each tweet and author once per run (a mention also matches "@brand"): a key repeated within
        # a load would start another load
        seen: set[str] = set()
        for key, path, params, token_param in self._sources():
            newest: str | None = None
            held: Page | None = None
            progress = self._backfill_of(key, backfills.get(key), ctx)
            if progress is not None:  # this query's history through full-archive search
                bodies = self._bodies(S.ARCHIVE_PATH, self._archive_params(params, progress), "next_token", None,
                                      stream.name, ctx, self.archive_page_size)
            else:
                bodies = self._bodies(path, params, token_param, since_ids.get(key), stream.name, ctx)
            for body in bodies:
                meta = body.get("meta") or {}
                newest = newest or meta.get("newest_id")
                if progress is not None:  # committed with each page: a kill resumes below its last page
                    progress = {**progress, "newest_id": progress.get("newest_id") or meta.get("newest_id"),
                                "until_id": meta.get("oldest_id") or progress.get("until_id")}
                    backfills[key] = {k: v for k, v in progress.items() if v is not None}
                if stream.name == "tweets":
                    records = [t for t in _tweets(body) if not isinstance(t, dict) or t.get("id") is None
                               or str(t["id"]) not in seen]
                else:
                    records = [u for u in (body.get("includes") or {}).get("users") or []
                               if isinstance(u, dict) and str(u.get("id")) not in seen]
                seen.update(str(r["id"]) for r in records if isinstance(r, dict) and r.get("id") is not None)
                page = Page(records=records, state=snapshot(), requests=self.requests - billed)
                billed = self.requests
                if held is not None:
                    yield held
                held = page
            if progress is not None:
                newest = progress.get("newest_id")
                backfills[key] = {"done": True, "start": progress["start"], "end_time": progress["end_time"]}
            if newest and (key not in since_ids or _id_after(str(newest), since_ids[key])):
                since_ids[key] = str(newest)
            if held is None:
                held = Page(records=[], requests=self.requests - billed)
                billed = self.requests
            held.state = snapshot()  # this source is done: its since_id moves
            yield held
        ctx.count(f"{stream.name}.requests", self.requests - before)

    def _backfill_of(self, key: str, progress: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any] | None:
        """The backfill a search source still owes (a new one, or the one a killed run left), else None."""
        if not key.startswith("search:") or (progress or {}).get("done"):
            return None
        if progress and progress.get("end_time"):
            return dict(progress)  # resume it with its own range, even if archive_start changed
        if self.archive_start is None:
            return None
        end = ctx.started_at.astimezone(UTC) - timedelta(seconds=S.ARCHIVE_END_LAG_S)
        return {"start": self.archive_start, "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ")}

    @staticmethod
    def _archive_params(params: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
        out = {**params, "start_time": progress["start"], "end_time": progress["end_time"]}
        if progress.get("until_id"):
            out["until_id"] = progress["until_id"]
        return out


def _flag(value: Any) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "off", "")


def _archive_start(value: str) -> str:
    """``archive_start`` as X's RFC 3339 ``start_time``: a date, a date-time, or ``all``."""
    if value.lower() == "all":
        return S.ARCHIVE_FLOOR
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"sources.x.archive_start {value!r} is not a date (2024-01-01), a date-time "
                                 "(2024-01-01T00:00:00Z) or 'all'") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return max(parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), S.ARCHIVE_FLOOR)


def _id_after(a: str, b: str) -> bool:
    try:
        return int(a) > int(b)
    except ValueError:
        return True


def _older_than_recent_window(tweet_id: str) -> bool:
    """Whether a snowflake id is older than recent search's window (then everything is newer)."""
    try:
        created_ms = (int(tweet_id) >> 22) + S.TWITTER_EPOCH_MS
    except ValueError:
        return True
    return created_ms < time.time() * 1000 - S.RECENT_WINDOW_MS


def _tweets(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A page's tweets, each with its author; nothing about the source (see the module notes)."""
    users = {u.get("id"): u for u in (body.get("includes") or {}).get("users") or [] if isinstance(u, dict)}
    out = []
    for tweet in body.get("data") or []:
        if isinstance(tweet, dict):
            tweet["author"] = users.get(tweet.get("author_id"))
        out.append(tweet)
    return out
