"""Marketo HTTP, auth and paging: httpx through :class:`core.http.VendorHTTP`.

Marketo answers errors with HTTP 200 and ``{"success": false, "errors": [{"code", "message"}]}``;
every call goes through :meth:`MarketoApi.call`, which classifies such bodies with the
``marketo`` rules of :mod:`core.http` and retries them under one :class:`core.http.RetryPolicy`:

* 601/602 (token invalid/expired): fetch a new token from ``/identity/oauth/token`` and resend;
* 606 (100 calls / 20 s) waits ``rate_limit_wait`` seconds, 615 (10 concurrent) backs off;
* 607 (daily quota) raises :class:`core.errors.QuotaExhaustedError`: the run ends ``partial``
  with every page loaded so far, and the stream state never moves past them.

Records are Marketo's own, with these enrichments (documented in the mapping files):

* activities: ``activityTypeName`` (from the activity types), ``attributeMap`` (the
  ``attributes`` list as ``{name: value}``) and ``programId`` when the activity names its
  program (``primaryAttributeValueId`` of a program activity, or the ``<program>.<email>`` name
  of an email asset);
* program members: ``memberKey`` = ``<programId>:<leadId>`` (Marketo gives members no id);
* deleted leads (leads stream): ``{id, deleted: true, deletedAt}`` tombstones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from connectors.marketo import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import ConfigurationError, RateLimitedError, TerminalVendorError, TransientVendorError
from core.http import Masker, RateBudget, RetryPolicy, VendorHTTP, classify_response

__all__ = ["MarketoApi", "MarketoConnector", "enrich_activity"]

log = logging.getLogger("factoryline.marketo")

VENDOR = "marketo"


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-5] if value.endswith("Z+0000") else value  # the Asset API's "…Z+0000"
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).strip().lower() not in ("false", "0", "no", "off")


class MarketoApi:
    """One Marketo instance: the access token and every REST call."""

    def __init__(self, *, identity_url: str, endpoint: str, client_id: str, client_secret: str,
                 policy: RetryPolicy | None = None, rate_limit_wait: float = S.RATE_WINDOW_SECONDS,
                 budget: RateBudget | None = None, url_budget: int = S.URL_BUDGET,
                 masker: Masker | None = None) -> None:
        self.identity_url = identity_url.rstrip("/")
        self.client_id, self.client_secret = client_id, client_secret
        self.policy = policy or RetryPolicy()
        self.rate_limit_wait = rate_limit_wait
        self.url_budget = url_budget
        self.masker = masker or Masker([client_id, client_secret])
        self.masker.add(client_id, client_secret)
        # one attempt per send: retries are decided once, in call(), where success:false is seen
        self.http = VendorHTTP(VENDOR, endpoint.rstrip("/"), secrets=[client_id, client_secret],
                               policy=RetryPolicy(max_attempts=1), budget=budget)
        self.http.masker = self.masker
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.token_requests = 0

    @property
    def requests(self) -> int:
        return self.http.requests

    def close(self) -> None:
        self.http.close()

    # -- auth -------------------------------------------------------------------------------

    def token(self, *, renew: bool = False) -> str:
        """The access token, fetched again when ``renew`` or close to its expiry (a minute, or a
        tenth of a shorter lifetime)."""
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                body = self.http.json("GET", f"{self.identity_url}{S.TOKEN}", params={
                    "grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self.client_secret})
                self.http.requests -= 1  # identity calls do not count against Marketo's limits
                self.token_requests += 1
                token = body.get("access_token") if isinstance(body, dict) else None
                if not token:
                    raise TerminalVendorError("the identity service returned no access token; check "
                                              "sources.marketo.client_id / client_secret", vendor=VENDOR)
                self.masker.add(str(token))
                self._token = str(token)
                # a token asked for again while alive comes back with its remaining lifetime
                lifetime = max(0.0, float(body.get("expires_in") or 0))
                self._expires = time.monotonic() + lifetime - min(S.TOKEN_MARGIN_SECONDS, lifetime / 10)
            return self._token

    # -- calls ------------------------------------------------------------------------------

    def call(self, path: str, params: Mapping[str, Any] | None = None, *, describe: str | None = None) -> Any:
        """``GET endpoint+path`` (or POST with ``_method=GET`` past the URL budget), parsed and checked."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        as_post = len(path) + len(urlencode(query)) + 1 > self.url_budget

        def attempt() -> Any:
            for renewed in (False, True):
                headers = {"Authorization": f"Bearer {self.token(renew=renewed)}"}
                if as_post:
                    # Marketo's way to send a long GET: the parameters as a form body
                    body = self.http.json("POST", path, params={"_method": "GET"}, data=query, headers=headers)
                else:
                    body = self.http.json("GET", path, params=query, headers=headers)
                if not isinstance(body, dict):
                    raise TransientVendorError("answer is not a JSON object; will retry", vendor=VENDOR)
                if body.get("success", True):
                    return body
                err = classify_response(VENDOR, 200, {}, body, masker=self.masker)
                if err.code in ("601", "602") and not renewed:
                    log.info("marketo: access token %s; fetching a new one",
                             "expired" if err.code == "602" else "refused")
                    continue
                if isinstance(err, RateLimitedError) and err.code == "606":
                    err.retry_after = self.rate_limit_wait
                raise err
            raise AssertionError("unreachable")

        return self.policy.call(attempt, describe=describe or f"marketo GET {path}")

    # -- endpoints --------------------------------------------------------------------------

    def lead_fields(self) -> list[str]:
        """REST names of every lead field (describe2 where the instance has it, else describe)."""
        names: list[str] = []
        try:
            body = self.call(S.DESCRIBE2)
            for r in body.get("result") or []:
                names.extend(str(f["name"]) for f in r.get("fields") or [] if isinstance(f, dict) and f.get("name"))
        except TerminalVendorError as exc:
            if exc.code not in ("610", "404"):  # 610: no such resource on this instance
                raise
        if not names:
            body = self.call(S.DESCRIBE)
            names = [str(r["rest"]["name"]) for r in body.get("result") or []
                     if isinstance(r, dict) and isinstance(r.get("rest"), dict) and r["rest"].get("name")]
        return list(dict.fromkeys(names))

    def activity_types(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.call(S.ACTIVITY_TYPES).get("result") or []
        return out

    def paging_token(self, since: str) -> str:
        return str(self.call(S.PAGING_TOKEN, {"sinceDatetime": since})["nextPageToken"])

    def activities(self, token: str, type_ids: list[int], batch: int) -> dict[str, Any]:
        out: dict[str, Any] = self.call(S.ACTIVITIES, {
            "nextPageToken": token, "activityTypeIds": ",".join(str(t) for t in type_ids), "batchSize": batch})
        return out

    def deleted_leads(self, token: str, batch: int) -> dict[str, Any]:
        out: dict[str, Any] = self.call(S.DELETED_LEADS, {"nextPageToken": token, "batchSize": batch})
        return out

    def leads_by_id(self, ids: list[int], fields: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), S.MAX_FILTER_VALUES):
            chunk = ids[i:i + S.MAX_FILTER_VALUES]
            token: str | None = None
            while True:
                body = self.call(S.LEADS, {"filterType": "id", "filterValues": ",".join(map(str, chunk)),
                                           "fields": ",".join(fields), "batchSize": S.MAX_BATCH,
                                           "nextPageToken": token})
                out.extend(body.get("result") or [])
                token = body.get("nextPageToken") if body.get("moreResult") else None
                if not token:
                    break
        return out

    def programs(self, *, earliest: str | None = None, latest: str | None = None,
                 page_size: int = S.MAX_ASSET_RETURN) -> Iterator[list[dict[str, Any]]]:
        """Pages of programs (offset paging; the end is a page without ``result``)."""
        offset = 0
        while True:
            body = self.call(S.PROGRAMS, {"maxReturn": page_size, "offset": offset,
                                          "earliestUpdatedAt": earliest, "latestUpdatedAt": latest})
            rows: list[dict[str, Any]] = body.get("result") or []
            if not rows:
                return
            yield rows
            if len(rows) < page_size:
                return
            offset += len(rows)

    def members(self, program_id: int, batch: int, lead_ids: list[int] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of a program's members (only of ``lead_ids``, at most 300, when given)."""
        token: str | None = None
        only = {"filterType": "leadId", "filterValues": ",".join(map(str, lead_ids))} if lead_ids else {}
        while True:
            body = self.call(S.PROGRAM_MEMBERS.format(id=program_id),
                             {**only, "batchSize": batch, "nextPageToken": token})
            yield body.get("result") or []
            token = body.get("nextPageToken") if body.get("moreResult") else None
            if not token:
                return


def enrich_activity(rec: dict[str, Any], type_names: Mapping[int, str],
                    program_by_name: Mapping[str, int]) -> dict[str, Any]:
    """Add ``activityTypeName``, ``attributeMap`` and (when known) ``programId`` to an activity."""
    if not isinstance(rec, dict):
        return rec
    type_id = rec.get("activityTypeId")
    if isinstance(type_id, int) and type_id in type_names:
        rec["activityTypeName"] = type_names[type_id]
    attrs = rec.get("attributes")
    if isinstance(attrs, list):
        rec["attributeMap"] = {a["name"]: a.get("value") for a in attrs if isinstance(a, dict) and "name" in a}
    program: Any = None
    if type_id in S.PROGRAM_ACTIVITY_TYPES:
        program = rec.get("primaryAttributeValueId")
    elif type_id in S.EMAIL_ACTIVITY_TYPES:
        # email asset names are "<program name>.<email name>"
        name = rec.get("primaryAttributeValue")
        if isinstance(name, str) and "." in name:
            program = program_by_name.get(name.rsplit(".", 1)[0])
    if program is not None:
        rec["programId"] = program
    return rec


class MarketoConnector:
    """:class:`core.connector.Connector` for Marketo Engage.

    Streams: ``activity_types`` (raw), ``leads`` (person), ``activities`` (touch), ``programs``
    (campaign), ``program_members`` (campaign_membership). Leads and activities are incremental
    through paging tokens: the state holds the next token, committed with each page, and the last
    token of a finished stream resumes with what happened after it.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None) -> None:
        client_id, client_secret = config.get("client_id"), config.get("client_secret")
        identity = config.get("identity_url")
        endpoint = config.get("endpoint")
        if not (client_id and client_secret and identity and endpoint):
            raise ConfigurationError(
                "Marketo needs client_id, client_secret, identity_url and endpoint: set sources.marketo.* in "
                ".dlt/secrets.toml / config.toml or SOURCES__MARKETO__CLIENT_ID, ..._CLIENT_SECRET, "
                "..._IDENTITY_URL, ..._ENDPOINT (Admin > Web Services > REST API)")
        self.config = config
        self.batch = max(1, min(int(config.get("batch_size") or S.MAX_BATCH), S.MAX_BATCH))
        self.since = str(config.get("since") or S.DEFAULT_SINCE)
        lookback = config.get("lookback_seconds")
        self.lookback = timedelta(seconds=int(300 if lookback is None else lookback))
        budget = None
        per_window = float(config.get("requests_per_20s") or 0)
        if per_window > 0:  # stay below Marketo's rolling 100 calls / 20 s (shared by every integration)
            burst = min(10.0, per_window)
            budget = RateBudget(rate=(per_window - burst) / S.RATE_WINDOW_SECONDS or 0.1, capacity=burst)
        wait = config.get("rate_limit_wait")
        self.api = MarketoApi(
            identity_url=str(identity), endpoint=str(endpoint), client_id=str(client_id),
            client_secret=str(client_secret), policy=policy, budget=budget,
            rate_limit_wait=float(S.RATE_WINDOW_SECONDS if wait is None else wait),
            url_budget=int(config.get("url_budget") or S.URL_BUDGET),
            masker=Masker([*config.secrets(), str(client_id), str(client_secret)]))

    def close(self) -> None:
        self.api.close()

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        before = self.api.requests
        fn = {"activity_types": self._activity_types, "leads": self._leads, "activities": self._activities,
              "programs": self._programs, "program_members": self._members}.get(stream.name)
        if fn is None:
            raise ConfigurationError(f"marketo has no stream {stream.name!r} "
                                     "(valid: activity_types, activities, leads, program_members, programs)")
        billed = before
        for page in fn(dict(state or {}), ctx):
            page.requests = self.api.requests - billed
            billed = self.api.requests
            yield page
        ctx.count(f"{stream.name}.requests", self.api.requests - before)

    # -- activity types -----------------------------------------------------------------------

    def _activity_types(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        yield Page(records=self.api.activity_types(), state={"read_at": _iso(ctx.started_at)})

    # -- leads --------------------------------------------------------------------------------

    def _leads(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """Leads named by lead-changing activities since the stored token, then deletions.

        Marketo's lead list has no updatedAt filter; the activity log is its change feed (New
        Lead, Change Data Value, bounces and unsubscribes are what move ``updatedAt``). A first
        run starts from ``since`` (default: before any lead existed), so it reads every lead.
        """
        fields = self.api.lead_fields()
        known = {int(t["id"]) for t in self.api.activity_types() if isinstance(t, dict) and "id" in t}
        types = [t for t in S.LEAD_CHANGE_TYPES if t in known] or [12]
        token = state.get("token") or self.api.paging_token(self.since)
        deleted = state.get("deleted_token")
        while True:
            body = self.api.activities(token, types, self.batch)
            ids = list(dict.fromkeys(int(a["leadId"]) for a in body.get("result") or []
                                     if isinstance(a, dict) and isinstance(a.get("leadId"), int)))
            leads = self.api.leads_by_id(ids, fields) if ids else []
            token = str(body["nextPageToken"])
            more = bool(body.get("moreResult"))
            yield Page(records=leads, state={"token": token, "deleted_token": deleted})
            if not more:
                break
        deleted = deleted or self.api.paging_token(self.since)
        while True:
            body = self.api.deleted_leads(deleted, self.batch)
            tombstones = [{"id": a["leadId"], "deleted": True, "deletedAt": a.get("activityDate")}
                          for a in body.get("result") or [] if isinstance(a, dict) and a.get("leadId") is not None]
            deleted = str(body["nextPageToken"])
            more = bool(body.get("moreResult"))
            yield Page(records=tombstones, state={"token": token, "deleted_token": deleted})
            if not more:
                break

    # -- activities ---------------------------------------------------------------------------

    def _program_names(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rows in self.api.programs():
            out.update({str(p["name"]): int(p["id"]) for p in rows if isinstance(p, dict) and "id" in p})
        return out

    def _activities(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """Every activity type, at most 10 per request: one paging-token chain per group of types."""
        types = self.api.activity_types()
        names = {int(t["id"]): str(t.get("name")) for t in types if isinstance(t, dict) and "id" in t}
        groups = self._type_groups(types)
        tokens: dict[str, str] = dict(state.get("tokens") or {})
        programs = self._program_names()
        for group in groups:
            key = ",".join(map(str, group))
            token = tokens.get(key) or self.api.paging_token(self.since)
            while True:
                body = self.api.activities(token, group, self.batch)
                rows = [enrich_activity(a, names, programs) for a in body.get("result") or []]
                token = str(body["nextPageToken"])
                tokens[key] = token
                more = bool(body.get("moreResult"))
                yield Page(records=rows, state={"tokens": dict(tokens)})
                if not more:
                    break

    # -- programs and members -----------------------------------------------------------------

    def _programs(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        cursor = _parse_ts(state.get("cursor"))
        earliest = _iso(cursor - self.lookback) if cursor is not None else None
        latest = _iso(ctx.started_at) if cursor is not None else None
        previous = dict(state)
        held: Page | None = None
        for rows in self.api.programs(earliest=earliest, latest=latest):
            if held is not None:
                yield held
            held = Page(records=rows, state=previous)
        final = Page(records=[]) if held is None else held
        final.state = {"cursor": _iso(ctx.started_at)}
        yield final

    def _members(self, state: dict[str, Any], ctx: RunContext) -> Iterator[Page]:
        """Program members: every program's members on a first run, then only the members of
        leads with activities since (Marketo has no member change feed by date; a membership's
        status moves only with the lead's activities).

        The state holds activity paging tokens (one per group of types) and is committed with the
        last page only: a killed run reads the same changes again.
        """
        groups = self._type_groups(self.api.activity_types())
        tokens: dict[str, str] = dict(state.get("tokens") or {})
        lead_ids: list[int] | None = None
        if tokens:
            changed: set[int] = set()
            for group in groups:
                key = ",".join(map(str, group))
                token = tokens.get(key) or self.api.paging_token(self.since)
                while True:
                    body = self.api.activities(token, group, self.batch)
                    changed.update(int(a["leadId"]) for a in body.get("result") or []
                                   if isinstance(a, dict) and isinstance(a.get("leadId"), int))
                    token = tokens[key] = str(body["nextPageToken"])
                    if not body.get("moreResult"):
                        break
            lead_ids = sorted(changed)
        else:  # changes made while the full read runs are read next time (lookback: clock skew, indexing)
            start = self.api.paging_token(_iso(ctx.started_at - self.lookback))
            tokens = {",".join(map(str, g)): start for g in groups}
        previous = dict(state) if state else None
        if lead_ids is None or lead_ids:
            for rows in self.api.programs():
                for p in rows:
                    if not isinstance(p, dict) or "id" not in p:
                        continue
                    chunks: list[list[int] | None] = [None] if lead_ids is None else [
                        lead_ids[i:i + S.MAX_FILTER_VALUES] for i in range(0, len(lead_ids), S.MAX_FILTER_VALUES)]
                    for chunk in chunks:
                        for members in self.api.members(int(p["id"]), self.batch, chunk):
                            for m in members:
                                if isinstance(m, dict):
                                    m["memberKey"] = f"{m.get('programId', p['id'])}:{m.get('leadId')}"
                            if members:
                                yield Page(records=members, state=previous)
        yield Page(records=[], state={"tokens": tokens})

    @staticmethod
    def _type_groups(types: list[dict[str, Any]]) -> list[list[int]]:
        ids = sorted(int(t["id"]) for t in types if isinstance(t, dict) and "id" in t)
        return [ids[i:i + S.MAX_ACTIVITY_TYPES] for i in range(0, len(ids), S.MAX_ACTIVITY_TYPES)]
