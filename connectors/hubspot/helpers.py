"""HubSpot HTTP and pagination: hubspot-api-client as transport, core.http for retries and pacing.

Streams: the CRM objects of ``settings.CRM_OBJECTS`` (contacts, companies, deals, line items and
the engagements calls, emails, meetings, notes, tasks), owners and deal pipelines (small, read
whole each run), and marketing: legacy email events, form submissions and marketing emails.

Every call goes through :meth:`HubSpotApi._call`: the SDK method is invoked with
``_preload_content=False`` (the raw urllib3 response; the SDK's model objects are ~20x slower
than orjson), the body is parsed with orjson, the ``X-HubSpot-RateLimit-*`` headers feed the
:class:`core.http.RateBudget`, SDK and urllib3 exceptions are translated into :mod:`core.errors`
by the classifier, and transient ones are retried by the :class:`core.http.RetryPolicy`.

Records are yielded as HubSpot sends them, with two enrichments. ``record["associations"]`` is
replaced by ``{<to type>: [<v4 batch 'to' items: {toObjectId, associationTypes:[{category,
typeId, label}]}>]}`` for the association types of the stream (an empty list when none), read
with ``POST /crm/v4/associations/{from}/{to}/batch/read`` (first page of ``to`` items per record).
Deals carry ``record["pipelineStage"]`` = ``{pipelineId, stageId, label, isClosed, probability,
isWon}`` from the deal pipelines read at the start of the stream (``isWon``: closed with
probability 1), so custom stages are classified by their own metadata; ``None`` when the deal's
stage is unknown (an archived deal listed without properties). Form submissions carry
``record["formId"]``, the form they were submitted on, and ``record["submitterEmail"]``, the
value of the submission's ``email`` field (HubSpot names no contact on a submission: identity
reaches the person through this address).

Legacy and marketing endpoints the SDK does not wrap (``/email/public/v1/events``, forms,
submissions, ``/marketing/v3/emails``, owners, pipelines) go through the SDK's own urllib3 pool
with the same retry, pacing and error translation.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as _AssocApiException
from hubspot.crm.objects.exceptions import ApiException as _ObjectsApiException
from hubspot.crm.properties.exceptions import ApiException as _PropertiesApiException

from connectors.hubspot import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import ConfigurationError, FactorylineError, QuotaExhaustedError, TransientVendorError
from core.http import (
    Masker,
    RateBudget,
    RetryPolicy,
    classify_response,
    translate_transport_error,
)

__all__ = ["HubSpotApi", "HubSpotConnector", "association_edges", "properties_url_length"]

log = logging.getLogger("factoryline.hubspot")

VENDOR = "hubspot"
_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)


class _HttpError(Exception):
    """A non-2xx answer on the raw pool, shaped like the SDK's ApiException (status, headers, body)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.reason = f"HTTP {status}"
        self.headers = dict(headers)
        self.body: Any = body.decode("utf-8", "replace")


#: each generated SDK package has its own ApiException class
_SDK_ERRORS = (_ObjectsApiException, _PropertiesApiException, _AssocApiException, _HttpError)


def properties_url_length(properties: Iterable[str]) -> int:
    """Characters the properties take in a list URL (``properties=a&properties=b``, encoded)."""
    return sum(len("properties=") + len(quote(p, safe="")) + 1 for p in properties)


def _epoch_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _form_value(submission: dict[str, Any], name: str) -> Any:
    """The value of field ``name`` in a form submission's ``values`` ([{name, value}, ...])."""
    for v in submission.get("values") or ():
        if isinstance(v, dict) and v.get("name") == name:
            return v.get("value")
    return None


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _rid(record: Mapping[str, Any]) -> str | None:
    """The record id (``id``, else ``properties.hs_object_id``); None for a malformed record."""
    rid = record.get("id")
    if rid in (None, ""):
        rid = (record.get("properties") or {}).get("hs_object_id")
    return None if rid in (None, "") else str(rid)


class HubSpotApi:
    """One HubSpot account through hubspot-api-client; each API object is built once."""

    def __init__(self, *, access_token: str, base_url: str = S.DEFAULT_BASE_URL,
                 policy: RetryPolicy | None = None, budget: RateBudget | None = None,
                 search_budget: RateBudget | None = None, masker: Masker | None = None,
                 pace: bool = True, requests_per_ten_seconds: float = S.DEFAULT_REQUESTS_PER_TEN_SECONDS,
                 daily_reserve: int = 0) -> None:
        self.masker = masker or Masker([access_token])
        self.policy = policy or RetryPolicy()
        #: mirrors HubSpot's rolling 10-second window: the lowest published limit until the
        #: X-HubSpot-RateLimit-* headers of the first answer give the portal's own (every answer
        #: then keeps it in step); ``pace`` false: never waits
        if budget is None:
            budget = RateBudget.window(requests_per_ten_seconds, 10.0) if pace else RateBudget()
        self.budget = budget
        self.pace = pace
        self.search_budget = search_budget
        self.requests = 0
        #: X-HubSpot-RateLimit-Daily-Remaining of the last answer; at or below ``daily_reserve``
        #: the next call raises QuotaExhaustedError instead of spending the account's last requests
        self.daily_remaining: int | None = None
        self.daily_reserve = daily_reserve
        self._token = access_token
        self._host = base_url.rstrip("/")
        # retry=False: urllib3 must not retry on its own; the RetryPolicy decides
        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"), retry=False)
        objects = client.crm.objects
        self._basic = objects.basic_api
        self._search = objects.search_api
        self._batch = objects.batch_api
        self._properties = client.crm.properties.core_api
        self._assoc = client.crm.associations.v4.batch_api

    def close(self) -> None:
        for api in (self._basic, self._search, self._batch, self._properties, self._assoc):
            client = api.api_client
            client.close()
            client.rest_client.pool_manager.clear()

    # -- transport --------------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> FactorylineError | None:
        if isinstance(exc, _SDK_ERRORS):
            status = int(exc.status or 0)
            if status == 0:  # the SDK's wrapper around SSL errors / unusable arguments
                return TransientVendorError(self.masker.mask(f"transport error: {getattr(exc, 'reason', exc)}"),
                                            vendor=VENDOR)
            headers = dict(getattr(exc, "headers", None) or {})
            # the SDK exception is chained as __cause__ and its str() dumps headers and body:
            # scrub what the vendor echoed back before it can reach a traceback or a log
            body = getattr(exc, "body", None)
            if body is not None:
                setattr(exc, "body", self.masker.mask(body))  # noqa: B010
            if headers:
                setattr(exc, "headers", {k: self.masker.mask(v) for k, v in headers.items()})  # noqa: B010
            if headers and self.pace:
                self.budget.feed_hubspot(headers)
            if headers:
                self._daily(headers)
            return classify_response(VENDOR, status, headers, body, masker=self.masker)
        return translate_transport_error(exc, vendor=VENDOR, masker=self.masker)

    def _daily(self, headers: Mapping[str, str]) -> None:
        for k, v in headers.items():
            if k.lower() == "x-hubspot-ratelimit-daily-remaining":
                with contextlib.suppress(ValueError):
                    self.daily_remaining = int(v)
                return

    def _call(self, describe: str, fn: Callable[..., Any], *args: Any, search: bool = False,
              **kwargs: Any) -> Any:
        def attempt() -> Any:
            if self.daily_remaining is not None and self.daily_remaining <= self.daily_reserve:
                raise QuotaExhaustedError(
                    f"the daily API quota is used up to the reserve ({self.daily_remaining} requests left, "
                    f"reserve {self.daily_reserve}); the run stops and keeps what was loaded",
                    vendor=VENDOR, code="DAILY")
            self.budget.acquire()
            if search and self.search_budget is not None:
                self.search_budget.acquire()
            self.requests += 1
            resp = fn(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
            data = resp.data  # reads the whole body: a cut-off body raises here (retried)
            if self.pace:
                self.budget.feed_hubspot(resp.headers)
            self._daily(resp.headers)
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise TransientVendorError(f"{describe}: response is not valid JSON (truncated?)",
                                           vendor=VENDOR, status=resp.status) from exc

        return self.policy.call(attempt, translate=self._translate, describe=f"hubspot {describe}")

    def _raw_get(self, path: str, params: Mapping[str, Any], *, _preload_content: bool = False,
                 _request_timeout: tuple[float, float] = _TIMEOUT) -> Any:
        """GET on the SDK's urllib3 pool (endpoints the SDK does not wrap); non-2xx raises _HttpError."""
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        url = f"{self._host}{path}" + (f"?{query}" if query else "")
        pool = self._basic.api_client.rest_client.pool_manager
        resp = pool.request("GET", url, headers={"Authorization": f"Bearer {self._token}",
                                                 "Accept": "application/json"},
                            preload_content=False, retries=False, redirect=False,
                            timeout=urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1]))
        if resp.status >= 300:
            raise _HttpError(resp.status, resp.headers, resp.data)
        return resp

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET {path}?{params}`` for the endpoints outside the SDK, through :meth:`_call`."""
        out: dict[str, Any] = self._call(f"GET {path}", self._raw_get, path, dict(params or {}))
        return out

    # -- endpoints --------------------------------------------------------------------------

    def properties(self, object_type: str) -> list[str]:
        """``GET /crm/v3/properties/{type}``: every property name, custom ones included."""
        body = self._call(f"GET /crm/v3/properties/{object_type}", self._properties.get_all, object_type,
                          archived="false")
        return [p["name"] for p in body.get("results", []) if isinstance(p, dict) and p.get("name")]

    def list_page(self, object_type: str, *, limit: int, after: str | None, properties: list[str],
                  archived: bool) -> dict[str, Any]:
        """``GET /crm/v3/objects/{type}?limit=&after=&properties=&archived=``."""
        # booleans as HubSpot writes them: the SDK would send Python's "True"/"False"
        kwargs: dict[str, Any] = {"limit": limit, "properties": properties, "archived": _flag(archived)}
        if after:
            kwargs["after"] = after
        out: dict[str, Any] = self._call(f"GET /crm/v3/objects/{object_type}", self._basic.get_page,
                                         object_type, **kwargs)
        return out

    def batch_read(self, object_type: str, ids: list[str], properties: list[str],
                   archived: bool = False) -> list[dict[str, Any]]:
        """``POST /crm/v3/objects/{type}/batch/read``: full properties in the body (no URL limit)."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), S.BATCH_READ_LIMIT):
            body = {"inputs": [{"id": x} for x in ids[i:i + S.BATCH_READ_LIMIT]], "properties": properties,
                    "propertiesWithHistory": []}
            resp = self._call(f"POST /crm/v3/objects/{object_type}/batch/read", self._batch.read, object_type,
                              body, archived=_flag(archived))
            out.extend(resp.get("results", []))
        return out

    def search_page(self, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{type}/search``."""
        out: dict[str, Any] = self._call(f"POST /crm/v3/objects/{object_type}/search", self._search.do_search,
                                         object_type, dict(body), search=True)
        return out

    def associations(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``POST /crm/v4/associations/{from}/{to}/batch/read`` -> from id -> v4 ``to`` items."""
        out: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(ids), S.ASSOCIATION_BATCH_LIMIT):
            body = {"inputs": [{"id": x} for x in ids[i:i + S.ASSOCIATION_BATCH_LIMIT]]}
            resp = self._call(f"POST /crm/v4/associations/{from_type}/{to_type}/batch/read",
                              self._assoc.get_page, from_type, to_type, body)
            for r in resp.get("results", []):
                frm = r.get("from") or {}
                out.setdefault(str(frm.get("id")), []).extend(r.get("to") or [])
        return out


def association_edges(from_type: str, record_id: str, to_type: str,
                      items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One side-table row per (to object, association type)."""
    for item in items:
        to_id = str(item.get("toObjectId"))
        for t in item.get("associationTypes") or [{}]:
            yield {"from_type": from_type, "from_id": record_id, "to_type": to_type, "to_id": to_id,
                   "type_id": t.get("typeId"), "label": t.get("label"), "category": t.get("category")}


#: records fetched by one request, and whether they are live (False: archived, no associations)
_Batch = tuple[list[dict[str, Any]], bool]


def _billed(pages: Iterator[Page], api: HubSpotApi) -> Iterator[Page]:
    """Set each page's ``requests`` to the calls made since the previous page."""
    mark = api.requests
    for page in pages:
        page.requests, mark = api.requests - mark, api.requests
        yield page


class HubSpotConnector:
    """:class:`core.connector.Connector` for HubSpot: CRM objects, owners, pipelines, marketing.

    CRM objects (``settings.CRM_OBJECTS``):

    * Property discovery every run (custom properties included).
    * Empty state or ``ctx.full_refresh``: list endpoint (``archived=false`` then ``archived=true``);
      if the property names do not fit ``properties_url_budget``, the list asks for a minimal set
      and each page's full properties come from batch/read.
    * Otherwise: search on the last-modified property between ``cursor - lookback`` and
      ``ctx.started_at`` sorted by ``hs_object_id``; past 10,000 results a new query continues with
      ``hs_object_id > last id``. Records archived since ``cursor - lookback`` come from the
      archived list.
    * Every page carries the previous state, except the last page of a completed stream, whose
      state has ``cursor`` = ``ctx.started_at`` (ISO 8601, UTC).
    * Associations change without moving the record's last-modified date: when the last full read
      of them (``associations_refreshed_at``) is ``association_refresh_seconds`` old, an
      incremental run also re-reads every live record's associations (side rows only).

    Owners and deal pipelines are read whole each run. Email events page by ``offset`` through the
    window ``[cursor - lookback, started_at]``, with the window and offset in each page's state so
    a killed run resumes it; form submissions have no time filter and are filtered client-side;
    marketing emails are read whole.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None,
                 budget: RateBudget | None = None, search_budget: RateBudget | None = None) -> None:
        token = config.get("access_token")
        if not token:
            raise ConfigurationError(
                "HubSpot needs an access token: set sources.hubspot.access_token in .dlt/secrets.toml "
                "or the environment variable SOURCES__HUBSPOT__ACCESS_TOKEN (a private-app token)")
        self.config = config
        self.masker = Masker(config.secrets() or [str(token)])
        self.page_size = max(1, min(int(config.get("page_size") or S.DEFAULT_PAGE_SIZE), S.LIST_LIMIT))
        lookback = config.get("lookback_seconds")
        self.lookback = timedelta(seconds=int(S.DEFAULT_LOOKBACK_SECONDS if lookback is None else lookback))
        self.url_budget = int(config.get("properties_url_budget") or S.DEFAULT_PROPERTIES_URL_BUDGET)
        self.association_batch = max(1, min(int(config.get("association_batch") or S.ASSOCIATION_BATCH_LIMIT),
                                            S.ASSOCIATION_BATCH_LIMIT))
        if search_budget is None:
            rps = config.get("search_requests_per_second", S.DEFAULT_SEARCH_REQUESTS_PER_SECOND)
            search_budget = RateBudget(rate=float(rps), capacity=float(rps)) if rps else None
        refresh = config.get("association_refresh_seconds")
        self.association_refresh = None if refresh in (None, "") or float(refresh) < 0 else float(refresh)
        self._stages: dict[tuple[str, str], dict[str, Any]] = {}
        self.api = HubSpotApi(access_token=str(token), base_url=str(config.get("base_url") or S.DEFAULT_BASE_URL),
                              policy=policy, budget=budget, search_budget=search_budget, masker=self.masker,
                              pace=str(config.get("pace", True)).lower() not in ("false", "0", "no"),
                              requests_per_ten_seconds=float(config.get("requests_per_ten_seconds")
                                                             or S.DEFAULT_REQUESTS_PER_TEN_SECONDS),
                              daily_reserve=int(config.get("daily_reserve") or 0))

    def close(self) -> None:
        """Close the SDK's kept-alive connections."""
        self.api.close()

    # -- Connector protocol -------------------------------------------------------------------

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        obj = stream.name
        other = {"owners": self._owners, "deal_pipelines": self._deal_pipelines,
                 "email_events": self._email_events, "form_submissions": self._form_submissions,
                 "marketing_emails": self._marketing_emails}
        if obj in other:
            before = self.api.requests
            yield from _billed(other[obj](dict(state or {}), ctx), self.api)
            ctx.count(f"{obj}.requests", self.api.requests - before)
            return
        if obj not in S.CURSOR_PROPERTY:
            valid = ", ".join((*S.CRM_OBJECTS, *other))
            raise ConfigurationError(f"hubspot has no stream {obj!r} (valid: {valid})")
        before = self.api.requests
        properties = self.api.properties(obj) or list(S.DEFAULT_PROPERTIES[obj])
        self._stages = self._stage_table() if obj == "deals" else {}
        cursor = _parse_ts(state.get("cursor")) if state else None
        previous = dict(state or {})
        swept = _parse_ts(previous.get("associations_refreshed_at")) or cursor
        sweep = (cursor is not None and not ctx.full_refresh and bool(S.ASSOCIATIONS.get(obj))
                 and self.association_refresh is not None and swept is not None
                 and (ctx.started_at - swept).total_seconds() >= self.association_refresh)
        if ctx.full_refresh or cursor is None:
            batches = self._full(obj, properties)
        else:
            batches = self._incremental(obj, properties, cursor - self.lookback, ctx.started_at)
        pages = self._pages(obj, batches)
        if sweep:
            pages = itertools.chain(pages, self._association_sweep(obj))
        final = {**previous, "cursor": _iso(ctx.started_at)}
        if sweep or ctx.full_refresh or cursor is None:  # every edge was read in this run
            final["associations_refreshed_at"] = _iso(ctx.started_at)
        # one page of look-ahead: only the last page of a completed stream carries the new cursor
        held: Page | None = None
        billed = before  # every request made until a page arrives is billed to it (discovery too)
        for page in pages:
            page.requests = self.api.requests - billed
            billed = self.api.requests
            page.state = previous
            if held is not None:
                yield held
            held = page
        if held is None:
            held = Page(records=[], requests=0,
                        side_records={"associations": []} if S.ASSOCIATIONS.get(obj) else {})
        held.requests += self.api.requests - billed
        held.state = final
        ctx.count(f"{obj}.requests", self.api.requests - before)
        yield held

    def _pages(self, obj: str, batches: Iterable[_Batch]) -> Iterator[Page]:
        """Group fetched batches into pages of up to ``association_batch`` records, one v4 call each.

        Associations cost one request per page and association type, so larger pages need fewer
        requests per record (what counts under HubSpot's 100-190 requests / 10 s).
        """
        group: list[dict[str, Any]] = []
        group_live = True
        for records, live in batches:
            if group and live != group_live:
                yield self._page(obj, group, with_associations=group_live)
                group = []
            group_live = live
            group.extend(records)
            if len(group) >= self.association_batch:
                yield self._page(obj, group, with_associations=group_live)
                group = []
        if group:
            yield self._page(obj, group, with_associations=group_live)

    # -- full refresh -------------------------------------------------------------------------

    def _full(self, obj: str, properties: list[str]) -> Iterator[_Batch]:
        fits = properties_url_length(properties) <= self.url_budget
        if not fits:
            log.debug("hubspot %s: %d properties exceed the URL budget of %d characters; using batch/read",
                      obj, len(properties), self.url_budget)
        for archived in (False, True):
            after: str | None = None
            while True:
                asked = properties if fits else list(S.MINIMAL_PROPERTIES[obj])
                body = self.api.list_page(obj, limit=self.page_size, after=after, properties=asked,
                                          archived=archived)
                records: list[dict[str, Any]] = body.get("results", [])
                if records and not fits:
                    records = self._reread(obj, records, properties, archived)
                if records:
                    yield records, not archived
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break

    def _reread(self, obj: str, listed: list[dict[str, Any]], properties: list[str],
                archived: bool) -> list[dict[str, Any]]:
        """Full properties of listed records via batch/read, in list order (listed shape kept if missing)."""
        ids = [x for r in listed if (x := _rid(r)) is not None]
        full = {_rid(r): r for r in self.api.batch_read(obj, ids, properties, archived=archived)}
        return [full.get(_rid(r), r) for r in listed]

    # -- incremental --------------------------------------------------------------------------

    def _incremental(self, obj: str, properties: list[str], lower: datetime, upper: datetime) -> Iterator[_Batch]:
        prop = S.CURSOR_PROPERTY[obj]
        base_filters = [
            {"propertyName": prop, "operator": "GTE", "value": str(_epoch_ms(lower))},
            {"propertyName": prop, "operator": "LTE", "value": str(_epoch_ms(upper))},
        ]
        last_id: int | None = None  # highest hs_object_id seen
        floor: int | None = None  # the current query window starts above this id
        after: str | None = None
        in_window = 0
        while True:
            filters = list(base_filters)
            if floor is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(floor)})
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": properties,
                "limit": S.SEARCH_LIMIT,
            }
            if after:
                body["after"] = after
            resp = self.api.search_page(obj, body)
            records: list[dict[str, Any]] = resp.get("results", [])
            in_window += len(records)
            if records:
                ids = [int(x) for r in records if (x := _rid(r)) is not None and x.isdigit()]
                if ids:
                    last_id = max(ids) if last_id is None else max(last_id, *ids)
                yield records, True
            after = ((resp.get("paging") or {}).get("next") or {}).get("after")
            if not after or not records:
                break
            if in_window + S.SEARCH_LIMIT > S.SEARCH_RESULT_CAP:
                # the next page would pass the 10,000-result cap: continue in a new query by id
                log.debug("hubspot %s search: 10,000-result window full, continuing above id %s", obj, last_id)
                after, in_window, floor = None, 0, last_id
        yield from self._archived_since(obj, lower)

    def _archived_since(self, obj: str, lower: datetime) -> Iterator[_Batch]:
        after: str | None = None
        while True:
            body = self.api.list_page(obj, limit=self.page_size, after=after,
                                      properties=list(S.MINIMAL_PROPERTIES[obj]), archived=True)
            kept = [r for r in body.get("results", [])
                    if (ts := _parse_ts(r.get("archivedAt"))) is None or ts >= lower]
            if kept:
                yield kept, False
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break

    # -- associations -------------------------------------------------------------------------

    def _page(self, obj: str, records: list[dict[str, Any]], *, with_associations: bool) -> Page:
        edges: list[dict[str, Any]] = []
        targets = S.ASSOCIATIONS.get(obj, ()) if with_associations else ()
        if records and targets:
            ids = [x for r in records if (x := _rid(r)) is not None]
            found = {to: self.api.associations(obj, to, ids) for to in targets} if ids else {}
            for r in records:
                rid = _rid(r)
                assoc: dict[str, list[dict[str, Any]]] = {}
                for to in targets:
                    items = found[to].get(rid, []) if rid is not None and found else []
                    assoc[to] = items
                    if rid is not None:
                        edges.extend(association_edges(obj, rid, to, items))
                r["associations"] = assoc
        if obj == "deals":
            for r in records:
                props = r.get("properties") or {}
                r["pipelineStage"] = self._stages.get((str(props.get("pipeline")), str(props.get("dealstage"))))
        # streams with association types always carry the side table (possibly empty)
        side = {"associations": edges} if S.ASSOCIATIONS.get(obj) else {}
        return Page(records=records, side_records=side)

    def _association_sweep(self, obj: str) -> Iterator[Page]:
        """Every live record's associations again, as side rows only (associations change without
        touching the record's last-modified date). Edges no sweep re-read keep an older
        ``extracted_at``: they were removed in HubSpot."""
        targets = S.ASSOCIATIONS[obj]
        after: str | None = None
        group: list[str] = []
        while True:
            body = self.api.list_page(obj, limit=S.LIST_LIMIT, after=after, properties=["hs_object_id"],
                                      archived=False)
            group.extend(x for r in body.get("results", []) if (x := _rid(r)) is not None)
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if group and (len(group) >= self.association_batch or not after):
                edges: list[dict[str, Any]] = []
                for to in targets:
                    found = self.api.associations(obj, to, group)
                    for rid in group:
                        edges.extend(association_edges(obj, rid, to, found.get(rid, [])))
                yield Page(records=[], side_records={"associations": edges})
                group = []
            if not after:
                return

    # -- deal pipelines, owners -----------------------------------------------------------------

    def _pipelines_raw(self) -> list[dict[str, Any]]:
        body = self.api.get_json("/crm/v3/pipelines/deals", {"archived": "false"})
        return [p for p in body.get("results", []) if isinstance(p, dict)]

    def _stage_table(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(pipeline id, stage id) -> the stage's classification, from its own metadata."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for p in self._pipelines_raw():
            for st in p.get("stages") or []:
                meta = st.get("metadata") or {}
                closed = str(meta.get("isClosed", "")).lower() == "true"
                try:
                    prob: float | None = float(meta["probability"])
                except (KeyError, TypeError, ValueError):
                    prob = None
                out[(str(p.get("id")), str(st.get("id")))] = {
                    "pipelineId": str(p.get("id")), "stageId": str(st.get("id")), "label": st.get("label"),
                    "isClosed": closed, "probability": prob, "isWon": closed and prob is not None and prob >= 1.0}
        return out

    def _deal_pipelines(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        yield Page(records=self._pipelines_raw(), state=state)

    def _owners(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        after: str | None = None
        records: list[dict[str, Any]] = []
        for archived in ("false", "true"):  # deactivated owners still own records
            after = None
            while True:
                body = self.api.get_json("/crm/v3/owners/", {"limit": S.OWNERS_LIMIT, "after": after,
                                                             "archived": archived})
                records.extend(body.get("results", []))
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        # a replace stream: one page, so the table is swapped whole (owners are a few hundred at most)
        yield Page(records=records, state=state)

    # -- marketing --------------------------------------------------------------------------------

    def _email_events(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """``GET /email/public/v1/events`` between ``cursor - lookback`` and the run's start.

        Each page's state names the window being read and the ``offset`` after that page, so a
        killed run resumes the window where it stopped; the window's end becomes the cursor.
        """
        cursor = _parse_ts(state.get("cursor"))
        pending = state.get("pending") if isinstance(state.get("pending"), dict) else None
        windows: list[tuple[int | None, int, str | None]] = []
        if pending and not ctx.full_refresh:
            start = pending.get("start")
            windows.append((None if start is None else int(start), int(pending["end"]), pending.get("offset")))
            cursor = datetime.fromtimestamp(int(pending["end"]) / 1000, tz=UTC)
        end = _epoch_ms(ctx.started_at)
        lower = None if ctx.full_refresh or cursor is None else _epoch_ms(cursor - self.lookback)
        if not windows or windows[-1][1] < end:
            windows.append((lower, end, None))
        base = {k: v for k, v in state.items() if k != "pending"}
        for n, (start, stop, offset) in enumerate(windows):
            while True:
                body = self.api.get_json("/email/public/v1/events", {
                    "limit": S.EMAIL_EVENTS_LIMIT, "startTimestamp": start, "endTimestamp": stop, "offset": offset})
                events = [e for e in body.get("events", []) if isinstance(e, dict)]
                offset = body.get("offset") or None
                more = bool(body.get("hasMore")) and offset is not None
                if more:
                    page_state = {**base, "pending": {"start": start, "end": stop, "offset": offset}}
                elif n + 1 < len(windows):
                    page_state = {**base, "cursor": _iso(datetime.fromtimestamp(stop / 1000, tz=UTC))}
                    base = page_state
                else:
                    page_state = {**base, "cursor": _iso(ctx.started_at)}
                yield Page(records=events, state=page_state)
                if not more:
                    break

    def _form_submissions(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """Submissions of every form. The API has no time filter: every run pages through them and
        yields those submitted since ``cursor - lookback`` (re-reads merge on ``conversionId``)."""
        cursor = None if ctx.full_refresh else _parse_ts(state.get("cursor"))
        lower = None if cursor is None else _epoch_ms(cursor - self.lookback)
        forms: list[str] = []
        after: str | None = None
        while True:
            body = self.api.get_json("/marketing/v3/forms/", {"limit": 100, "after": after})
            forms.extend(str(f["id"]) for f in body.get("results", []) if isinstance(f, dict) and f.get("id"))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        for guid in forms:
            after = None
            while True:
                body = self.api.get_json(f"/form-integrations/v1/submissions/forms/{quote(guid, safe='')}",
                                         {"limit": S.FORM_SUBMISSIONS_LIMIT, "after": after})
                kept = []
                for r in body.get("results", []):
                    if not isinstance(r, dict):
                        continue
                    at = r.get("submittedAt")
                    if lower is None or not isinstance(at, int) or at >= lower:
                        kept.append({**r, "formId": guid, "submitterEmail": _form_value(r, "email")})
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                yield Page(records=kept, state=state)
                if not after:
                    break
        yield Page(records=[], state={**state, "cursor": _iso(ctx.started_at)})

    def _marketing_emails(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """``GET /marketing/v3/emails``: a few hundred records, read whole each run (merge on id)."""
        after: str | None = None
        while True:
            body = self.api.get_json("/marketing/v3/emails", {"limit": S.MARKETING_EMAILS_LIMIT, "after": after})
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            yield Page(records=[r for r in body.get("results", []) if isinstance(r, dict)],
                       state=state if after else {**state, "cursor": _iso(ctx.started_at)})
            if not after:
                return

