"""Salesforce HTTP, SOQL windows and Bulk API 2.0: simple-salesforce as the client.

Every call goes through :meth:`SalesforceApi._call`: simple-salesforce sends it (auth header,
``Sforce-Limit-Info`` parsed into ``api_usage``), its exceptions become :mod:`core.errors` through
the ``salesforce`` classifier, transient ones are retried by :class:`core.http.RetryPolicy`, and
an ``INVALID_SESSION_ID`` answer refreshes the session through the OAuth token endpoint once
(when refresh-token or username/password credentials are configured). Before each request the
daily quota seen in the last ``Sforce-Limit-Info`` is compared with ``quota_share``: past it, a
:class:`core.errors.QuotaExhaustedError` ends the stream after the pages already yielded.

Records are yielded exactly as the REST query API sends them (``attributes`` + fields). Bulk API
2.0 CSV rows are converted to that same shape with the describe types, so a record is identical
whichever path read it.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import orjson
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connectors.salesforce import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import (
    ConfigurationError,
    FactorylineError,
    QuotaExhaustedError,
    TerminalVendorError,
    TransientVendorError,
)
from core.http import Masker, RetryPolicy, classify_response, translate_transport_error

__all__ = ["FieldInfo", "SalesforceApi", "SalesforceConnector", "soql_datetime"]

log = logging.getLogger("factoryline.salesforce")

VENDOR = "salesforce"
_TIMEOUT = (10.0, 120.0)  # connect, read (seconds)


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC with milliseconds (``2024-01-01T00:00:00.000Z``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S") + f".{v.microsecond // 1000:03d}Z"


def _param_datetime(value: datetime) -> str:
    """``2024-01-01T00:00:00+00:00``, as the updated/deleted endpoints take it."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def quote_soql(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    """Salesforce (``...000+0000``), CSV (``...000Z``) or ISO text; None when unusable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def describe_fields(body: Any) -> list[FieldInfo]:
    """The fields of a describe answer (compound parents and all, as describe lists them)."""
    out = []
    found = body.get("fields") if isinstance(body, dict) else None
    for f in found if isinstance(found, list) else []:
        if isinstance(f, dict) and f.get("name"):
            out.append(FieldInfo(str(f["name"]), str(f.get("type") or "string"), bool(f.get("calculated")),
                                 f.get("compoundFieldName")))
    return out


def _http_date(value: datetime) -> str:
    """``Wed, 03 Jul 2013 19:43:31 GMT``, the If-Modified-Since format."""
    return format_datetime(value.astimezone(UTC), usegmt=True)


@dataclass(frozen=True)
class FieldInfo:
    """What describe says about one field."""

    name: str
    type: str
    calculated: bool = False
    compound: str | None = None

    @property
    def selectable(self) -> bool:
        return self.type not in S.UNSELECTABLE_TYPES


def _csv_value(kind: str, text: str) -> Any:
    """A Bulk API CSV cell as the REST JSON would carry it."""
    if text == "":
        return None
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("double", "currency", "percent"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "datetime" and text.endswith("Z"):
        return text[:-1] + "+0000"  # REST writes +0000, CSV writes Z: keep one shape
    return text


class SalesforceApi:
    """One org through simple-salesforce: quota guard, retries, session refresh, request count."""

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None,
                 masker: Masker | None = None) -> None:
        instance_url = str(config.get("instance_url") or "").rstrip("/")
        if not instance_url:
            raise ConfigurationError(
                "Salesforce needs the org's URL: set sources.salesforce.instance_url in .dlt/config.toml or "
                "SOURCES__SALESFORCE__INSTANCE_URL (e.g. https://mydomain.my.salesforce.com)")
        self.config = config
        self.instance_url = instance_url
        self.version = str(config.get("api_version") or S.DEFAULT_API_VERSION)
        self.masker = masker or Masker(config.secrets())
        self.policy = policy or RetryPolicy()
        share = config.get("quota_share")
        self.quota_share = float(S.DEFAULT_QUOTA_SHARE if share in (None, "") else share)
        self.requests = 0
        #: (used, total) from the last Sforce-Limit-Info header
        self.usage: tuple[int, int] | None = None
        self.refreshes = 0
        self.session = requests.Session()
        ca_bundle = config.get("ca_bundle")
        if ca_bundle:
            # REQUESTS_CA_BUNDLE from the environment would win over verify: ignore the environment
            self.session.trust_env = False
            self.session.verify = str(ca_bundle)
        token = config.get("session_id")
        if not token:
            if not self.can_refresh:
                raise ConfigurationError(
                    "Salesforce needs a session: set sources.salesforce.session_id (an access token), or "
                    "client_id with refresh_token or username/password (SOURCES__SALESFORCE__...)")
            token = self._oauth_token()
        self.sf = self._client(str(token))

    def _client(self, token: str) -> Salesforce:
        self.masker.add(token)
        return Salesforce(instance_url=self.instance_url, session_id=token, version=self.version,
                          session=self.session)

    def close(self) -> None:
        self.session.close()

    @property
    def base_url(self) -> str:
        return f"{self.instance_url}/services/data/v{self.version}/"

    # -- session refresh ----------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        c = self.config
        return bool(c.get("client_id") and (c.get("refresh_token") or (c.get("username") and c.get("password"))))

    def _oauth_token(self) -> str:
        """A new access token from ``/services/oauth2/token`` (refresh token first, else password)."""
        c = self.config
        form = {"client_id": str(c.get("client_id"))}
        if c.get("client_secret"):
            form["client_secret"] = str(c.get("client_secret"))
        if c.get("refresh_token"):
            form.update(grant_type="refresh_token", refresh_token=str(c.get("refresh_token")))
        else:
            form.update(grant_type="password", username=str(c.get("username")),
                        password=str(c.get("password")) + str(c.get("security_token") or ""))
        url = f"{str(c.get('login_url') or self.instance_url).rstrip('/')}/services/oauth2/token"
        try:
            resp = self.session.post(url, data=form, timeout=_TIMEOUT)
        except requests.RequestException as exc:
            raise TransientVendorError(self.masker.mask(f"token refresh failed: {exc}"), vendor=VENDOR) from exc
        if resp.status_code != 200:
            raise classify_response(VENDOR, resp.status_code, resp.headers, resp.content, masker=self.masker)
        body = orjson.loads(resp.content)
        token = str(body["access_token"])
        self.masker.add(token)
        new_url = body.get("instance_url")
        if isinstance(new_url, str) and new_url and not c.get("login_url"):
            self.instance_url = new_url.rstrip("/")
        return token

    def _refresh(self) -> None:
        log.info("salesforce session expired; refreshing it through the OAuth token endpoint")
        self.refreshes += 1
        self.sf = self._client(self._oauth_token())

    # -- transport ----------------------------------------------------------------------------

    def check_quota(self) -> None:
        if self.usage is None:
            return
        used, total = self.usage
        if total > 0 and used >= self.quota_share * total:
            raise QuotaExhaustedError(
                f"{used} of the org's {total} daily API requests are used, the configured share "
                f"(quota_share={self.quota_share}) is reached; the run stops and keeps what was loaded, "
                "run it again once the quota resets", vendor=VENDOR, code="QUOTA_SHARE")

    def _translate(self, exc: BaseException) -> FactorylineError | None:
        if isinstance(exc, SalesforceError):
            content: Any = exc.content
            if isinstance(content, bytes | str):
                content = self.masker.mask(content)
            setattr(exc, "content", content)  # noqa: B010 - chained as __cause__: its str() shows the body
            return classify_response(VENDOR, int(exc.status), {}, content, masker=self.masker)
        if isinstance(exc, orjson.JSONDecodeError):
            return TransientVendorError("response is not valid JSON (truncated?)", vendor=VENDOR)
        if isinstance(exc, csv.Error):
            return TransientVendorError(f"bulk results are not valid CSV (cut off?): {exc}", vendor=VENDOR)
        if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
            return TransientVendorError(self.masker.mask(f"response cut off ({exc})"), vendor=VENDOR)
        return translate_transport_error(exc, vendor=VENDOR, masker=self.masker)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; refreshes the session once on INVALID_SESSION_ID."""
        refreshed = False
        while True:
            self.check_quota()
            self.requests += 1
            try:
                # simple-salesforce's own request path: auth headers, errors, Sforce-Limit-Info
                resp: requests.Response = self.sf._call_salesforce(method, url, name=url, timeout=_TIMEOUT,
                                                                   **kwargs)
            except SalesforceError as exc:
                body = exc.content
                code = body[0].get("errorCode") if isinstance(body, list) and body and isinstance(body[0], dict) \
                    else None
                if exc.status == 401 and code == "INVALID_SESSION_ID" and not refreshed and self.can_refresh:
                    refreshed = True
                    self._refresh()
                    url = url.replace(url.split("/services/")[0], self.instance_url, 1)
                    continue
                raise
            self._feed_usage(resp.headers)
            return resp

    def _feed_usage(self, headers: Mapping[str, str] | None) -> None:
        value = (headers or {}).get("Sforce-Limit-Info")
        if not value:
            return
        parsed = Salesforce.parse_api_usage(value).get("api-usage")
        if parsed is not None:
            self.usage = (int(parsed.used), int(parsed.total))

    def _call(self, describe: str, method: str, url: str, **kwargs: Any) -> Any:
        def attempt() -> Any:
            resp = self._send(method, url, **kwargs)
            if resp.status_code == 204 or not resp.content:
                return None
            return orjson.loads(resp.content)

        return self.policy.call(attempt, translate=self._translate, describe=f"salesforce {describe}")

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else (
            self.instance_url + path if path.startswith("/") else self.base_url + path)

    # -- endpoints ----------------------------------------------------------------------------

    def describe(self, obj: str) -> list[FieldInfo]:
        """``GET sobjects/{obj}/describe``: every field, custom ``__c`` ones included."""
        return describe_fields(self._call(f"describe {obj}", "GET", self._url(f"sobjects/{obj}/describe")))

    def composite(self, subrequests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """``POST composite`` (allOrNone false): referenceId -> subresponse; ONE API call for all of them.

        At most :data:`~connectors.salesforce.settings.COMPOSITE_MAX` subrequests, of which at most
        :data:`~connectors.salesforce.settings.COMPOSITE_MAX_QUERIES` query operations.
        """
        body = self._call(f"composite ({len(subrequests)} subrequests)", "POST", self._url("composite"),
                          data=orjson.dumps({"allOrNone": False, "compositeRequest": subrequests}))
        out: dict[str, dict[str, Any]] = {}
        for r in (body or {}).get("compositeResponse") or []:
            if isinstance(r, dict) and isinstance(r.get("referenceId"), str):
                out[r["referenceId"]] = r
        return out

    def path(self, rest: str) -> str:
        """The server-relative URL of a resource, as composite subrequests name it."""
        return f"/services/data/v{self.version}/{rest}"

    def batch_header(self) -> dict[str, str]:
        return self._batch_header()

    def query(self, soql: str, *, all_rows: bool = True) -> dict[str, Any]:
        """``GET queryAll?q=`` (deleted rows included) or ``query?q=``; first page."""
        kind = "queryAll" if all_rows else "query"
        out: dict[str, Any] = self._call(kind, "GET", self._url(f"{kind}/"), params={"q": soql},
                                         headers=self._batch_header())
        return out

    def query_more(self, next_url: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("queryMore", "GET", self._url(next_url), headers=self._batch_header())
        return out

    def _batch_header(self) -> dict[str, str]:
        size = int(self.config.get("page_size") or S.DEFAULT_PAGE_SIZE)
        size = max(S.MIN_PAGE_SIZE, min(size, S.MAX_PAGE_SIZE))
        return {"Sforce-Query-Options": f"batchSize={size}"}

    def count(self, obj: str, where: str) -> int:
        body = self.query(f"SELECT COUNT() FROM {obj}{where}")
        return int(body.get("totalSize") or 0)

    def deleted(self, obj: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """``GET sobjects/{obj}/deleted/?start=&end=``: ids and deletion times in the window."""
        params = {"start": _param_datetime(start), "end": _param_datetime(end)}
        body = self._call(f"deleted {obj}", "GET", self._url(f"sobjects/{obj}/deleted/"), params=params)
        return [r for r in (body or {}).get("deletedRecords") or [] if isinstance(r, dict) and r.get("id")]

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def bulk_create(self, soql: str) -> str:
        body = self._call("create bulk query job", "POST", self._url("jobs/query"),
                          data=orjson.dumps({"operation": "queryAll", "query": soql, "contentType": "CSV",
                                             "columnDelimiter": "COMMA", "lineEnding": "LF"}))
        return str(body["id"])

    def bulk_info(self, job: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("bulk job status", "GET", self._url(f"jobs/query/{job}"))
        return out

    def bulk_wait(self, job: str) -> dict[str, Any]:
        """Poll until the job is complete; a failed or aborted job is terminal."""
        delay, waited = 0.2, 0.0
        while True:
            info = self.bulk_info(job)
            state = info.get("state")
            if state == "JobComplete":
                return info
            if state in ("Failed", "Aborted"):
                raise TerminalVendorError(f"bulk query job {job} ended {state}: {info.get('errorMessage')}",
                                          vendor=VENDOR, code=str(state))
            if waited > S.BULK_POLL_MAX_SECONDS:
                raise TransientVendorError(f"bulk query job {job} still {state} after {waited:.0f}s",
                                           vendor=VENDOR)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)

    def bulk_delete(self, job: str) -> None:
        try:
            self._call("delete bulk job", "DELETE", self._url(f"jobs/query/{job}"))
        except TerminalVendorError as exc:  # cleanup only: a job already gone is fine
            log.debug("salesforce: deleting bulk job %s: %s", job, exc)

    def bulk_results(self, job: str, locator: str | None, max_records: int) -> _Results:
        """One results request, streamed: rows are parsed as they arrive, never held whole."""
        params: dict[str, Any] = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator

        def attempt() -> _Results:
            resp = self._send("GET", self._url(f"jobs/query/{job}/results"), params=params, stream=True,
                              headers={"Accept": "text/csv"})
            nxt = resp.headers.get("Sforce-Locator")
            count = resp.headers.get("Sforce-NumberOfRecords")
            resp.raw.decode_content = True
            resp.raw.auto_close = False  # else TextIOWrapper reads from a closed file at the end
            text = io.TextIOWrapper(resp.raw, encoding="utf-8", newline="")
            return _Results(resp, csv.reader(text), None if nxt in (None, "", "null") else nxt,
                            int(count) if count and count.isdigit() else None)

        return self.policy.call(attempt, translate=self._translate, describe="salesforce bulk results")


@dataclass
class _Results:
    response: requests.Response
    rows: Iterator[list[str]]
    next_locator: str | None
    #: Sforce-NumberOfRecords: rows this response should hold (a cut-off body holds fewer)
    expected: int | None = None

    def close(self) -> None:
        self.response.close()


@dataclass
class _Described:
    """What the run's first composite learned from one object's describe subrequest."""

    status: int
    #: the fields of a 200 answer
    fields: list[FieldInfo] | None
    #: when the composite was sent: the object's describe time from now on
    described_at: str
    #: the stored describe time If-Modified-Since was derived from (a 304 vouches for fields kept then)
    since: str | None
    #: selected field names: from the fields (200) or the catalog (304)
    names: list[str] | None


@dataclass
class _Prefetched:
    """The first pages of an object's incremental window, read in the run's first composites."""

    soql: str
    #: the stored cursor its window starts from (the object's own state must still hold it)
    cursor: str
    #: query pages in order: the first, then the ones behind nextRecordsUrl
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: a query-more subrequest failed: the object's extract pages on by itself
    stopped: bool = False

    def more(self, bulk_threshold: int) -> str | None:
        """The next page's URL, while the window stays on the REST path and nothing failed."""
        if self.stopped or not self.bodies:
            return None
        last, first = self.bodies[-1], self.bodies[0]
        if bulk_threshold > 0 and int(first.get("totalSize") or 0) > bulk_threshold:
            return None  # read through Bulk API 2.0 instead
        nxt = last.get("nextRecordsUrl")
        return str(nxt) if nxt and not last.get("done", True) else None


def _field_rows(fields: list[FieldInfo]) -> list[list[Any]]:
    return [[f.name, f.type, f.calculated, f.compound] for f in fields]


def _stored_fields(rows: Any) -> list[FieldInfo] | None:
    """Fields kept in the state by :func:`_field_rows`; None when missing or malformed."""
    if not isinstance(rows, list) or not rows:
        return None
    out = []
    for r in rows:
        if not (isinstance(r, list) and len(r) == 4 and isinstance(r[0], str) and isinstance(r[1], str)):
            return None
        out.append(FieldInfo(r[0], r[1], bool(r[2]), r[3] if isinstance(r[3], str) else None))
    return out


class SalesforceConnector:
    """:class:`core.connector.Connector` for Salesforce objects (standard and custom).

    Each run: describe (field list, custom fields included, compound parents left out), then one
    window ``lower <= SystemModstamp < ctx.started_at`` (no lower bound on a first or full run,
    else the stored cursor minus ``lookback_seconds``) read with ``queryAll`` (deleted rows come
    with ``IsDeleted = true``) ordered by ``SystemModstamp, Id``. Every page stores the position
    ``(SystemModstamp, Id)`` of its last record, so a stopped run continues with
    ``SystemModstamp = s AND Id > id`` then ``SystemModstamp > s``: nothing is lost at a page
    boundary inside one timestamp. A window above ``bulk_threshold`` records (``SELECT COUNT()``
    first) is read with a Bulk API 2.0 ``queryAll`` job whose results are streamed ``Sforce-Locator``
    by locator; job id and locator are stored in the state so a stopped run resumes the same job.
    Incremental runs also ask the ``deleted`` endpoint every ``reconcile_deletes_hours`` and emit
    the hard-deleted records. Only the final (empty) page moves ``cursor`` to ``ctx.started_at``.

    Request count: the first stream of a run sends composite requests (one API call each, at most
    25 subrequests and 5 query operations) holding every object's describe (with If-Modified-Since
    the stored describe time: a 304 reuses the field list kept in the state, a 200 brings new custom
    fields) and, where the state's ``catalog`` predicts the object's window, its first query page.
    Each object's own extract uses that page only when its own state still holds the cursor the
    window was built from and the query is the one it would send; else it queries as before. So a
    re-run after small changes costs about ``ceil(objects / 5)`` requests plus the further pages.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None) -> None:
        self.config = config
        from connectors.salesforce import extra_objects

        extra = config.get("extra_objects")
        objects = (*S.DEFAULT_OBJECTS, *extra_objects(str(extra) if extra else None))
        #: stream name -> the object's API name
        self.objects = {S.stream_name(o): o for o in objects}
        self.api = SalesforceApi(config, policy=policy)
        lookback = config.get("lookback_seconds")
        self.lookback = timedelta(seconds=float(S.DEFAULT_LOOKBACK_SECONDS if lookback in (None, "") else lookback))
        threshold = config.get("bulk_threshold")
        self.bulk_threshold = int(S.DEFAULT_BULK_THRESHOLD if threshold in (None, "") else threshold)
        self.bulk_records = int(config.get("bulk_result_records") or S.DEFAULT_BULK_RESULT_RECORDS)
        self.page_size = max(1, int(config.get("page_size") or S.DEFAULT_PAGE_SIZE))
        hours = config.get("reconcile_deletes_hours")
        self.reconcile_every = timedelta(hours=float(S.DEFAULT_RECONCILE_DELETES_HOURS if hours in (None, "")
                                                     else hours))
        formula = config.get("formula_refresh_hours")
        self.formula_every = timedelta(hours=float(formula)) if formula not in (None, "", 0, "0") else None
        flag = config.get("composite")
        self.composite = str(flag).strip().lower() not in ("false", "0", "no", "off") if flag is not None else True
        #: the run the composites below belong to (run id, upper bound)
        self._run_key: tuple[str, datetime] | None = None
        self._described: dict[str, _Described] = {}
        self._prefetched: dict[str, _Prefetched] = {}
        #: object -> catalog entry (cursor, describe time, selected names) of objects read this run
        self._known: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.api.close()

    # -- Connector protocol -------------------------------------------------------------------

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        obj = self.objects.get(stream.name)
        if obj is None:
            raise ConfigurationError(f"salesforce has no stream {stream.name!r} (valid: {', '.join(self.objects)}); "
                                     f"add the object to {S.EXTRA_OBJECTS_ENV}")
        start = self.api.requests
        billed = [start]

        def page(records: list[dict[str, Any]], st: dict[str, Any]) -> Page:
            p = Page(records=records, state=st, requests=self.api.requests - billed[0])
            billed[0] = self.api.requests
            return p

        prior = dict(state or {})
        upper = ctx.started_at if ctx.started_at.tzinfo else ctx.started_at.replace(tzinfo=UTC)
        self._begin_run(prior, ctx, upper)
        fields, described_at = self._fields(obj, prior)
        if not fields:
            raise TerminalVendorError(f"describe of {obj} returned no fields; check the object name and the "
                                      "user's access to it", vendor=VENDOR)
        selected = [f for f in fields if f.selectable]
        types = {f.name: f.type for f in selected}
        if "Id" not in types:
            raise TerminalVendorError(f"{obj} has no Id field to merge on", vendor=VENDOR)
        base = {k: v for k, v in (state or {}).items() if k not in ("position", "bulk")}
        cursor = _parse_ts(prior.get("cursor"))
        has_cursor = S.CURSOR_FIELD in types
        formula_due = self._formula_due(fields, prior, upper)
        full = ctx.full_refresh or cursor is None or not has_cursor or formula_due

        # a Bulk job a stopped run left behind: finish it first, then read what changed since
        job_state = prior.get("bulk")
        if isinstance(job_state, dict) and job_state.get("job") and not ctx.full_refresh:
            finished = yield from self._bulk_resume(obj, types, job_state, base, page)
            if finished is not None:
                base["cursor"] = finished
                cursor, full = _parse_ts(finished), False
                prior.pop("position", None)

        lower = None if full or cursor is None else cursor - self.lookback
        position = prior.get("position")
        if isinstance(position, list) and len(position) == 2 and not ctx.full_refresh:
            pos: tuple[str, str] | None = (str(position[0]), str(position[1]))
        else:
            pos = None
        names = [f.name for f in selected]
        if has_cursor:
            window = self._window(lower, upper)
            # full windows are counted first; an incremental one is judged by its first page's
            # totalSize (one request fewer on the usual, small, incremental run)
            bulk = self.bulk_threshold > 0 and pos is None and lower is None \
                and self.api.count(obj, window) > self.bulk_threshold
            if bulk:
                yield from self._bulk(obj, names, types, window, base, upper, page)
            else:
                probe = self.bulk_threshold if self.bulk_threshold > 0 and pos is None else None
                first = self._first_page(obj, prior, names, window, full or pos is not None)
                switched = yield from self._rest(obj, names, window, upper, pos, base, page, probe, first)
                if switched:
                    yield from self._bulk(obj, names, types, window, base, upper, page)
        else:
            yield from self._rest_all(obj, names, base, page)
        final = {**base, "cursor": _iso(upper), "fields": _field_rows(fields), "described_at": described_at}
        self._known[obj] = {"described_at": described_at, "names": names,
                            **({"cursor": final["cursor"]} if has_cursor else {})}
        if formula_due or full:
            final["full_read_at"] = _iso(upper)
        if not full and has_cursor and self._reconcile_due(prior, upper):
            yield from self._reconcile(obj, names, prior, upper, base, page)
            final["deletes_checked_at"] = _iso(upper)
        elif full:
            final["deletes_checked_at"] = _iso(upper)  # a full read has every row queryAll still holds
        final["catalog"] = self._catalog(upper)
        ctx.count(f"{obj}.requests", self.api.requests - start)
        yield page([], final)

    # -- composite: every object's describe and first page in a few calls -----------------------

    def _begin_run(self, prior: Mapping[str, Any], ctx: RunContext, upper: datetime) -> None:
        """At the run's first extract: describe every object, and read the first page of every window
        the stored ``catalog`` predicts, in composite requests (see the class docstring)."""
        key = (ctx.run_id, upper)
        if self._run_key == key:
            return
        self._run_key = key
        self._described, self._prefetched, self._known = {}, {}, {}
        if not self.composite:
            return
        catalog = prior.get("catalog") if not ctx.full_refresh else None
        catalog = catalog if isinstance(catalog, dict) else {}
        sent_at = datetime.now(UTC)
        margin = timedelta(seconds=S.DESCRIBE_MARGIN_SECONDS)
        plans: list[tuple[str, list[dict[str, Any]], str | None, list[str] | None]] = []
        for i, o in enumerate(self.objects.values()):
            entry = catalog.get(o)
            entry = entry if isinstance(entry, dict) else {}
            names = entry.get("names")
            names = [str(n) for n in names] if isinstance(names, list) and names else None
            since_text = entry.get("described_at") if isinstance(entry.get("described_at"), str) else None
            since = _parse_ts(since_text)
            describe: dict[str, Any] = {"method": "GET", "url": self.api.path(f"sobjects/{o}/describe"),
                                        "referenceId": f"d{i}"}
            if since is not None and names:
                describe["httpHeaders"] = {"If-Modified-Since": _http_date(since - margin)}
            subs = [describe]
            cursor = _parse_ts(entry.get("cursor"))
            if cursor is not None and names:
                soql = self._soql(obj=o, names=names, window=self._window(cursor - self.lookback, upper))
                subs.append({"method": "GET", "url": self.api.path("queryAll/?q=" + quote(soql, safe="")),
                             "referenceId": f"q{i}", "httpHeaders": self.api.batch_header()})
                self._prefetched[o] = _Prefetched(soql, str(entry["cursor"]))
            plans.append((o, subs, since_text, names))
        batches: list[list[tuple[str, list[dict[str, Any]], str | None, list[str] | None]]] = [[]]
        for plan in plans:
            cur = batches[-1]
            size = sum(len(p[1]) for p in cur) + len(plan[1])
            queries = sum(len(p[1]) - 1 for p in cur) + len(plan[1]) - 1
            if cur and (size > S.COMPOSITE_MAX or queries > S.COMPOSITE_MAX_QUERIES):
                batches.append([])
            batches[-1].append(plan)
        answered: set[str] = set()
        for batch in batches:
            try:
                answers = self.api.composite([sub for p in batch for sub in p[1]])
            except QuotaExhaustedError:
                raise
            except FactorylineError as exc:  # each object then describes and queries on its own
                log.warning("salesforce: composite request failed (%s); objects are read one by one", exc)
                break
            for o, subs, since_text, names in batch:
                answered.add(o)
                d = answers.get(subs[0]["referenceId"]) or {}
                status = int(d.get("httpStatusCode") or 0)
                if status == 200:
                    fields = describe_fields(d.get("body"))
                    if fields:
                        self._described[o] = _Described(200, fields, _iso(sent_at), since_text,
                                                        [f.name for f in fields if f.selectable])
                elif status == 304:
                    self._described[o] = _Described(304, None, _iso(sent_at), since_text, names)
                pre = self._prefetched.get(o)
                if pre is not None:
                    q = answers.get(subs[1]["referenceId"]) or {}
                    body = q.get("body")
                    if int(q.get("httpStatusCode") or 0) == 200 and isinstance(body, dict):
                        pre.bodies.append(body)
                    else:  # the object's own query says what is wrong
                        del self._prefetched[o]
        for o in [o for o in self._prefetched if o not in answered or not self._prefetched[o].bodies]:
            del self._prefetched[o]
        self._prefetch_more()

    def _prefetch_more(self) -> None:
        """Further pages of the prefetched windows, 5 query-more subrequests per composite call, while
        the pages held stay under ``PREFETCH_MAX_RECORDS`` records (past it, objects page on their own)."""
        held = sum(len(b.get("records") or []) for pre in self._prefetched.values() for b in pre.bodies)
        while held < S.PREFETCH_MAX_RECORDS:
            pending = [(pre, nxt) for pre in self._prefetched.values() if (nxt := pre.more(self.bulk_threshold))]
            if not pending:
                return
            batch = pending[:S.COMPOSITE_MAX_QUERIES]
            try:
                answers = self.api.composite([{"method": "GET", "url": nxt, "referenceId": f"m{i}",
                                               "httpHeaders": self.api.batch_header()}
                                              for i, (_, nxt) in enumerate(batch)])
            except QuotaExhaustedError:
                raise
            except FactorylineError as exc:
                log.warning("salesforce: composite query-more failed (%s); objects page on their own", exc)
                return
            for i, (pre, _) in enumerate(batch):
                a = answers.get(f"m{i}") or {}
                body = a.get("body")
                if int(a.get("httpStatusCode") or 0) == 200 and isinstance(body, dict):
                    pre.bodies.append(body)
                    held += len(body.get("records") or [])
                else:
                    pre.stopped = True

    def _fields(self, obj: str, prior: Mapping[str, Any]) -> tuple[list[FieldInfo], str]:
        """The object's fields and describe time: from the run's composite, else a describe of its own."""
        got = self._described.pop(obj, None)
        if got is not None and got.status == 200 and got.fields:
            return got.fields, got.described_at
        if got is not None and got.status == 304:
            stored = _stored_fields(prior.get("fields"))
            # 304 vouches for what was described at `since`: the state must hold exactly that
            if stored and prior.get("described_at") == got.since \
                    and [f.name for f in stored if f.selectable] == got.names:
                return stored, got.described_at
        described_at = _iso(datetime.now(UTC))
        return self.api.describe(obj), described_at

    def _first_page(self, obj: str, prior: Mapping[str, Any], names: list[str], window: str,
                    skip: bool) -> list[dict[str, Any]] | None:
        """The prefetched first pages, when they are exactly what this extract would ask for now."""
        pre = self._prefetched.pop(obj, None)
        if pre is None or not pre.bodies or skip or prior.get("cursor") != pre.cursor:
            return None
        return pre.bodies if self._soql(obj, names, window) == pre.soql else None

    def _catalog(self, upper: datetime) -> dict[str, dict[str, Any]]:
        """What the next run's first composites need: per object its cursor (objects not read yet are
        expected to end this run at ``upper``; their own state is checked before use), describe time
        and selected fields."""
        out: dict[str, dict[str, Any]] = {}
        for o in self.objects.values():
            if o in self._known:
                out[o] = self._known[o]
            elif (d := self._described.get(o)) is not None and d.names:
                out[o] = {"described_at": d.described_at, "names": d.names,
                          **({"cursor": _iso(upper)} if S.CURSOR_FIELD in d.names else {})}
        return out

    # -- REST query windows -------------------------------------------------------------------

    @staticmethod
    def _window(lower: datetime | None, upper: datetime) -> str:
        conds = [f"{S.CURSOR_FIELD} < {soql_datetime(upper)}"]
        if lower is not None:
            conds.insert(0, f"{S.CURSOR_FIELD} >= {soql_datetime(lower)}")
        return " WHERE " + " AND ".join(conds)

    @staticmethod
    def _soql(obj: str, names: list[str], window: str) -> str:
        return f"SELECT {', '.join(names)} FROM {obj}{window} ORDER BY {S.CURSOR_FIELD} ASC, Id ASC"

    def _rest(self, obj: str, names: list[str], window: str, upper: datetime, pos: tuple[str, str] | None,
              base: dict[str, Any], page: Callable[..., Page], probe: int | None = None,
              first: list[dict[str, Any]] | None = None) -> Generator[Page, None, bool]:
        """Pages of the window; True (nothing yielded) when its totalSize exceeds ``probe``.

        ``first``: the window's first pages, already read (prefetched in composite requests)."""
        cols = ", ".join(names)
        order = f" ORDER BY {S.CURSOR_FIELD} ASC, Id ASC"
        bound = f"{S.CURSOR_FIELD} < {soql_datetime(upper)}"
        if pos is None:
            queries = [self._soql(obj, names, window)]
        else:
            stamp = _parse_ts(pos[0])
            if stamp is None:
                queries = [f"SELECT {cols} FROM {obj}{window}{order}"]
            else:
                lit = soql_datetime(stamp)
                # the rest of the interrupted timestamp, then everything after it
                queries = [f"SELECT {cols} FROM {obj} WHERE {S.CURSOR_FIELD} = {lit} AND Id > {quote_soql(pos[1])}"
                           f" AND {bound}{order}",
                           f"SELECT {cols} FROM {obj} WHERE {S.CURSOR_FIELD} > {lit} AND {bound}{order}"]
        held: Iterator[dict[str, Any]] = iter(first or ())
        for soql in queries:
            body = next(held, {}) or self.api.query(soql)
            if probe is not None and int(body.get("totalSize") or 0) > probe:
                return True
            while True:
                records = [r for r in body.get("records") or [] if isinstance(r, dict)]
                if records:
                    yield page(records, {**base, "position": self._position(records, pos)})
                    last = records[-1]
                    stamp_text, rid = last.get(S.CURSOR_FIELD), last.get("Id")
                    if isinstance(stamp_text, str) and isinstance(rid, str) and _parse_ts(stamp_text):
                        pos = (stamp_text, rid)
                nxt = body.get("nextRecordsUrl")
                if body.get("done", True) or not nxt:
                    break
                body = next(held, {})
                if body:
                    continue
                try:
                    body = self.api.query_more(str(nxt))
                except TerminalVendorError as exc:
                    # a locator read ahead in a composite and left idle too long (Salesforce keeps
                    # them ~15 minutes): ask again from the last position, as a resumed run does
                    if pos is None or "query locator" not in str(exc).lower():
                        raise
                    log.info("salesforce %s: query locator expired; querying again from %s", obj, pos)
                    yield from self._rest(obj, names, window, upper, pos, base, page)
                    return False
        return False

    @staticmethod
    def _position(records: list[dict[str, Any]], pos: tuple[str, str] | None) -> list[str] | None:
        """(SystemModstamp, Id) of the page's last usable record (a malformed one is skipped)."""
        for r in reversed(records):
            stamp, rid = r.get(S.CURSOR_FIELD), r.get("Id")
            if isinstance(stamp, str) and isinstance(rid, str) and _parse_ts(stamp) is not None:
                return [stamp, rid]
        return list(pos) if pos else None

    def _rest_all(self, obj: str, names: list[str], base: dict[str, Any],
                  page: Callable[..., Page]) -> Iterator[Page]:
        """Objects without SystemModstamp: every row, every run."""
        body = self.api.query(f"SELECT {', '.join(names)} FROM {obj} ORDER BY Id ASC")
        while True:
            records = [r for r in body.get("records") or [] if isinstance(r, dict)]
            if records:
                yield page(records, dict(base))
            nxt = body.get("nextRecordsUrl")
            if body.get("done", True) or not nxt:
                return
            body = self.api.query_more(str(nxt))

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def _bulk(self, obj: str, names: list[str], types: dict[str, str], window: str, base: dict[str, Any],
              upper: datetime, page: Callable[..., Page]) -> Iterator[Page]:
        job = self.api.bulk_create(f"SELECT {', '.join(names)} FROM {obj}{window}")
        job_state = {"job": job, "locator": None, "upper": _iso(upper)}
        # committed before any row: a run stopped while the job runs resumes this job
        yield page([], {**base, "bulk": job_state})
        yield from self._bulk_read(obj, types, job_state, base, page)

    def _bulk_resume(self, obj: str, types: dict[str, str], job_state: dict[str, Any], base: dict[str, Any],
                     page: Callable[..., Page]) -> Generator[Page, None, str | None]:
        """Continue a stored job; returns the cursor it completes, or None when the job is gone."""
        job = str(job_state["job"])
        try:
            info = self.api.bulk_info(job)
        except TerminalVendorError as exc:
            if exc.status != 404:
                raise
            log.info("salesforce %s: bulk job %s no longer exists; reading the window again", obj, job)
            return None
        if info.get("state") in ("Failed", "Aborted"):
            return None
        log.info("salesforce %s: resuming bulk job %s at locator %s", obj, job, job_state.get("locator"))
        yield from self._bulk_read(obj, types, dict(job_state), base, page)
        return str(job_state.get("upper"))

    def _bulk_read(self, obj: str, types: dict[str, str], job_state: dict[str, Any], base: dict[str, Any],
                   page: Callable[..., Page]) -> Iterator[Page]:
        job = str(job_state["job"])
        self.api.bulk_wait(job)
        locator: str | None = job_state.get("locator")
        failures = 0
        while True:
            here = {**base, "bulk": {**job_state, "locator": locator}}
            results = self.api.bulk_results(job, locator, self.bulk_records)
            try:
                # a failure mid-stream re-reads this results request: its pages carry this locator
                last = yield from self._bulk_pages(obj, types, results, here, page)
            except Exception as exc:
                mapped = exc if isinstance(exc, FactorylineError) else self.api._translate(exc)
                if isinstance(mapped, TransientVendorError) and failures + 1 < self.api.policy.max_attempts:
                    failures += 1
                    wait = self.api.policy.wait_for(failures, mapped)
                    log.warning("salesforce %s: bulk results of job %s broke off (%s); reading them again in "
                                "%.2fs", obj, job, mapped, wait)
                    time.sleep(wait)
                    continue
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc
            finally:
                results.close()
            failures = 0
            locator = results.next_locator
            if locator is None:
                # the job's window is read: its upper bound is the cursor now
                base["cursor"] = str(job_state["upper"])
                yield page(last, dict(base))
                break
            yield page(last, {**base, "bulk": {**job_state, "locator": locator}})
        self.api.bulk_delete(job)

    def _bulk_pages(self, obj: str, types: dict[str, str], results: _Results, here: dict[str, Any],
                    page: Callable[..., Page]) -> Generator[Page, None, list[dict[str, Any]]]:
        """Pages of one results request; returns the last, partial, chunk (yielded by the caller)."""
        prefix = f"/services/data/v{self.api.version}/sobjects/{obj}/"
        header = next(results.rows, None) or []
        kinds = [types.get(h, "string") for h in header]
        chunk: list[dict[str, Any]] = []
        n = 0
        for row in results.rows:
            if len(row) != len(header):
                raise TransientVendorError(f"bulk results row {n + 1} has {len(row)} of {len(header)} columns "
                                           "(cut off?)", vendor=VENDOR)
            rec: dict[str, Any] = {"attributes": {"type": obj, "url": None}}
            for name, kind, cell in zip(header, kinds, row, strict=True):
                rec[name] = _csv_value(kind, cell)
            rid = rec.get("Id")
            rec["attributes"]["url"] = f"{prefix}{rid}" if rid else None
            chunk.append(rec)
            n += 1
            if len(chunk) >= self.page_size:
                yield page(chunk, here)
                chunk = []
        if results.expected is not None and n != results.expected:
            raise TransientVendorError(f"bulk results held {n} rows, Sforce-NumberOfRecords said {results.expected}",
                                       vendor=VENDOR)
        return chunk

    def masker_text(self, text: str) -> str:
        return self.api.masker.mask(text)

    # -- deletes and formula fields -----------------------------------------------------------

    def _reconcile_due(self, prior: Mapping[str, Any], upper: datetime) -> bool:
        last = _parse_ts(prior.get("deletes_checked_at"))
        return last is None or upper - last >= self.reconcile_every

    def _reconcile(self, obj: str, names: list[str], prior: Mapping[str, Any], upper: datetime,
                   base: dict[str, Any], page: Callable[..., Page]) -> Iterator[Page]:
        """Hard deletes from the deleted endpoint: full rows where queryAll still has them, else stubs."""
        earliest = upper - timedelta(days=S.DELETED_WINDOW_DAYS)
        last = _parse_ts(prior.get("deletes_checked_at"))
        start = max(earliest, (last - self.lookback) if last else earliest)
        if upper - start < timedelta(minutes=1):
            return
        found = self.api.deleted(obj, start, upper)
        prefix = f"/services/data/v{self.api.version}/sobjects/{obj}/"
        for i in range(0, len(found), S.ID_BATCH):
            batch = found[i:i + S.ID_BATCH]
            ids = ", ".join("'" + str(r["id"]).replace("'", "") + "'" for r in batch)
            body = self.api.query(f"SELECT {', '.join(names)} FROM {obj} WHERE Id IN ({ids})")
            rows = {r.get("Id"): r for r in body.get("records") or [] if isinstance(r, dict)}
            out: list[dict[str, Any]] = []
            for r in batch:
                rid = str(r["id"])
                full = rows.get(rid)
                if full is not None:
                    full["IsDeleted"] = True
                    out.append(full)
                else:  # purged from the recycle bin: only the id and the deletion time remain
                    out.append({"attributes": {"type": obj, "url": f"{prefix}{rid}"}, "Id": rid, "IsDeleted": True,
                                S.CURSOR_FIELD: r.get("deletedDate")})
            yield page(out, dict(base))

    def _formula_due(self, fields: list[FieldInfo], prior: Mapping[str, Any], upper: datetime) -> bool:
        """Formula fields change without touching SystemModstamp: re-read everything now and then."""
        if self.formula_every is None or not any(f.calculated and f.selectable for f in fields):
            return False
        last = _parse_ts(prior.get("full_read_at"))
        return last is None or upper - last >= self.formula_every

