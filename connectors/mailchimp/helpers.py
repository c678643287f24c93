"""Mailchimp HTTP and pagination: httpx through :class:`core.http.VendorHTTP`.

* Auth: HTTP basic with any user name and the API key as password; the API root comes from the
  key's data-centre suffix (``-us21``) unless ``api_root`` / ``base_url`` is set (the sandbox).
* Paging: ``count`` / ``offset`` with ``total_items``. After the first page, the next pages of a
  listing are fetched ``concurrency`` at a time (a bounded window of futures, yielded in order), on
  one httpx pool of at most ``concurrency`` connections; ``concurrency`` is capped at Mailchimp's
  limit of 10 simultaneous connections per account, so the connector never causes that 429.
* Errors: Mailchimp's ``application/problem+json`` bodies are classified by :func:`classify`
  (registered with :func:`core.http.register_classifier`).

Records are yielded as Mailchimp sends them, with two additions on email activity (``emails``
of ``/reports/{campaign_id}/email-activity``), because Mailchimp gives them no id of their own:
``record["_key"] = "<campaign_id>/<email_id>"`` and, on each activity item,
``item["_key"] = "<action>/<timestamp>/<url>"`` (``#2``, ``#3`` appended to repeats). Touch ids are built from both, so the same
open read again in a later run is the same touch.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.mailchimp import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import ConfigurationError, RateLimitedError, TerminalVendorError, VendorError
from core.http import RetryPolicy, VendorHTTP, register_classifier

__all__ = ["MailchimpConnector", "api_root_for", "classify"]

log = logging.getLogger("factoryline.mailchimp")


def classify(status: int, headers: Mapping[str, str], body: Any, retry_after: float | None) -> VendorError | None:
    """Mailchimp's problem+json errors (``{type, title, status, detail, instance}``)."""
    title = body.get("title") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    ctx = {"instance": body.get("instance")} if isinstance(body, dict) and body.get("instance") else {}
    text = detail or title or "no detail"
    if status == 429:
        # the 10-connection limit and the request throttle both answer 429; a short pause clears both
        return RateLimitedError(f"too many requests ({text})", vendor=S.VENDOR, status=status, code=title,
                                retry_after=retry_after if retry_after is not None else 1.0, **ctx)
    if status == 401:
        return TerminalVendorError(f"the API key was refused ({text}); set a valid key with its data-centre "
                                   "suffix in sources.mailchimp.api_key or SOURCES__MAILCHIMP__API_KEY",
                                   vendor=S.VENDOR, status=status, code=title, **ctx)
    if status == 403:
        return TerminalVendorError(f"this API key may not read that resource ({text}); check the user's role",
                                   vendor=S.VENDOR, status=status, code=title, **ctx)
    if status in (400, 404):
        return TerminalVendorError(f"request refused ({title}: {detail})", vendor=S.VENDOR, status=status,
                                   code=title, **ctx)
    return None  # 5xx and the rest: the generic rules


register_classifier(S.VENDOR, classify)


def api_root_for(config: ConnectorConfig) -> str:
    """``api_root``, else ``base_url`` + ``/3.0``, else the data centre named by the key's suffix."""
    root = config.get("api_root")
    if root:
        return str(root).rstrip("/")
    base = config.get("base_url")
    if base:
        return str(base).rstrip("/") + "/3.0"
    key = str(config.get("api_key") or "")
    dc = config.get("server") or (key.rsplit("-", 1)[1] if "-" in key else None)
    if not dc:
        raise ConfigurationError("Mailchimp API keys end with their data centre (e.g. '-us21'); set "
                                 "sources.mailchimp.server or use the full key")
    return S.API_ROOT_TEMPLATE.format(dc=dc)


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


class MailchimpConnector:
    """:class:`core.connector.Connector` for Mailchimp: lists, members, campaigns, email activity.

    * ``lists``, ``campaigns``: every record on every run (an account has few).
    * ``members`` per list: first run lists every member, then ``status=archived``; later runs ask
      for ``since_last_changed`` = stored cursor - lookback (archived ones with the same filter).
    * ``email_activity`` per sent campaign: ``since`` = that campaign's stored cursor - lookback.
    * Cursors become ``ctx.started_at`` only on the last page of a list or campaign, so a run killed
      mid-listing re-reads from the old cursor (idempotent: everything merges on its key); a finished
      list or campaign is not read again.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        key = config.get("api_key")
        if not key:
            raise ConfigurationError(
                "Mailchimp needs an API key: set sources.mailchimp.api_key in .dlt/secrets.toml or the "
                "environment variable SOURCES__MAILCHIMP__API_KEY (Account > Extras > API keys)")
        self.config = config
        self.page_size = max(1, min(int(config.get("page_size") or S.DEFAULT_PAGE_SIZE), S.MAX_COUNT))
        self.concurrency = max(1, min(int(config.get("concurrency") or S.DEFAULT_CONCURRENCY), S.MAX_CONNECTIONS))
        lookback = config.get("lookback_seconds")
        self.lookback = timedelta(seconds=int(S.DEFAULT_LOOKBACK_SECONDS if lookback is None else lookback))
        self.list_ids = [x.strip() for x in str(config.get("list_id") or "").split(",") if x.strip()]
        basic = base64.b64encode(f"factoryline:{key}".encode()).decode()
        # one pool of at most `concurrency` connections: the transport's limits are what httpx enforces
        transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=self.concurrency,
                                                            max_keepalive_connections=self.concurrency))
        self.http = VendorHTTP(S.VENDOR, api_root_for(config), headers={"Authorization": f"Basic {basic}",
                                                                          **dict(headers or {})},
                               secrets=[str(key), *config.secrets()], policy=policy, transport=transport)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="mailchimp")
        self._lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    # -- transport ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
        body = self.http.json("GET", path, params=dict(params))
        if not isinstance(body, dict):
            raise TerminalVendorError(f"GET {path}: expected a JSON object", vendor=S.VENDOR)
        return body

    def _listing(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of a count/offset listing, in order; up to ``concurrency`` requests in flight."""
        count = self.page_size
        first = self._get(path, {**params, "count": count, "offset": 0})
        yield list(first.get(key) or [])
        total = int(first.get("total_items") or 0)
        window: deque[Future[dict[str, Any]]] = deque()
        offset = count
        while True:
            while offset < total and len(window) < self.concurrency:
                window.append(self._pool.submit(self._get, path, {**params, "count": count, "offset": offset}))
                offset += count
            if not window:
                return
            body = window.popleft().result()
            # a listing that grew while we read it: keep going to its new end
            total = max(total, int(body.get("total_items") or 0))
            yield list(body.get(key) or [])

    # -- Connector protocol -------------------------------------------------------------------

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        before = self.requests
        pages = {"lists": self._lists, "campaigns": self._campaigns, "members": self._members,
                 "email_activity": self._email_activity}.get(stream.name)
        if pages is None:
            raise ConfigurationError(f"mailchimp has no stream {stream.name!r} "
                                     "(valid: campaigns, email_activity, lists, members)")
        billed = before
        for page in pages(dict(state or {}), ctx):
            page.requests = self.requests - billed
            billed = self.requests
            yield page
        ctx.count(f"{stream.name}.requests", self.requests - before)

    def _lists(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        for records in self._listing("/lists", "lists", {"exclude_fields": "lists._links,_links"}):
            yield Page(records=[r for r in records if not self.list_ids or r.get("id") in self.list_ids])

    def _campaigns(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        for records in self._listing("/campaigns", "campaigns", {"exclude_fields": "campaigns._links,_links"}):
            yield Page(records=records)

    def _list_ids(self) -> list[str]:
        if self.list_ids:
            return self.list_ids
        ids: list[str] = []
        for records in self._listing("/lists", "lists", {"fields": "lists.id,total_items"}):
            ids.extend(str(r["id"]) for r in records if r.get("id"))
        return ids

    def _since(self, cursor: Any, ctx: RunContext) -> str | None:
        at = None if ctx.full_refresh else _parse(cursor)
        return None if at is None else _iso(at - self.lookback)

    def _members(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        cursors: dict[str, str] = dict(state.get("lists") or {})
        for list_id in self._list_ids():
            since = self._since(cursors.get(list_id), ctx)
            base: dict[str, Any] = {"exclude_fields": "members._links,_links"}
            if since:
                base["since_last_changed"] = since
            path = f"/lists/{list_id}/members"
            # archived members are listed only when asked for by status
            listings = (self._listing(path, "members", base),
                        self._listing(path, "members", {**base, "status": "archived"}))
            pages = (Page(records=r) for listing in listings for r in listing)
            done = {**state, "lists": {**cursors, list_id: _iso(ctx.started_at)}}
            yield from _last_carries(pages, {**state, "lists": dict(cursors)}, done)
            cursors[list_id] = _iso(ctx.started_at)
            state = done

    def _email_activity(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        cursors: dict[str, str] = dict(state.get("campaigns") or {})
        campaigns: list[str] = []
        for records in self._listing("/campaigns", "campaigns", {"fields": "campaigns.id,campaigns.status,"
                                                                           "campaigns.recipients.list_id,total_items"}):
            campaigns.extend(str(c["id"]) for c in records if c.get("id") and c.get("status") in S.SENT_STATUSES
                             and (not self.list_ids or (c.get("recipients") or {}).get("list_id") in self.list_ids))
        for cid in campaigns:
            since = self._since(cursors.get(cid), ctx)
            params: dict[str, Any] = {"exclude_fields": "emails._links,_links"}
            if since:
                params["since"] = since
            pages = (Page(records=[_keyed(cid, e) for e in emails])
                     for emails in self._listing(f"/reports/{cid}/email-activity", "emails", params))
            done = {**state, "campaigns": {**cursors, cid: _iso(ctx.started_at)}}
            yield from _last_carries(pages, {**state, "campaigns": dict(cursors)}, done)
            cursors[cid] = _iso(ctx.started_at)
            state = done


def _keyed(campaign_id: str, record: Any) -> Any:
    """Add the ``_key`` fields email activity lacks (see the module docstring); malformed records pass."""
    if not isinstance(record, dict):
        return record
    email_id = record.get("email_id")
    record["_key"] = f"{record.get('campaign_id') or campaign_id}/{email_id}" if email_id else None
    seen: dict[str, int] = {}
    for act in record.get("activity") or ():
        if isinstance(act, dict):
            key = f"{act.get('action')}/{act.get('timestamp')}/{act.get('url') or ''}"
            # two identical items in one second (a double open) stay two touches; both fall in or out
            # of any `since` window together, so the suffix is stable across runs
            n = seen[key] = seen.get(key, 0) + 1
            act["_key"] = key if n == 1 else f"{key}#{n}"
    return record


def _last_carries(pages: Iterator[Page], before: dict[str, Any], after: dict[str, Any]) -> Iterator[Page]:
    """Every page with state ``before``, except the last, which carries ``after`` (always yielded)."""
    held: Page | None = None
    for page in pages:
        page.state = before
        if held is not None:
            yield held
        held = page
    if held is None:
        held = Page(records=[], requests=0)
    held.state = after
    yield held
