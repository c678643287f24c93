"""Salesforce emulator for the sandbox: OAuth, REST describe/query/queryAll/getUpdated/getDeleted
and Bulk API 2.0 query jobs, in Salesforce's wire format, over the shared sandbox world.

The sandbox server speaks plain HTTP; simple-salesforce always builds ``https://`` URLs, so the
emulator also runs a TLS front (:mod:`connectors.salesforce.tls`) relaying to the plain port. Its
URL is ``settings["instance_url"]``, its self-signed certificate ``settings["ca_bundle"]``. Objects
and ids are described in :mod:`connectors.salesforce.objects`, the SOQL subset in
:mod:`connectors.salesforce.soql`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import itertools
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import orjson

from connectors.salesforce.objects import (
    ORG_ID,
    Field,
    SObject,
    address_value,
    build_objects,
    parse_id,
    sf_datetime,
    sf_id,
)
from connectors.salesforce.soql import Cond, Literal, Query, SoqlError, parse, parse_datetime
from connectors.salesforce.tls import TlsFront
from sandbox.faults import FaultRule
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.routing import Routes
from sandbox.world import DAY_MS, World

__all__ = ["API_VERSION", "SESSION_ID", "SalesforceEmulator", "custom_value", "emulator_spec"]

API_VERSION = "59.0"
VERSIONS = tuple(f"{v}.0" for v in range(31, 63))
_SEASONS = ("Winter", "Spring", "Summer")
SESSION_ID = f"{ORG_ID[:15]}!AQ0AQSandboxSessionFactoryline0000000000000000000000000000000000000000000000"
CLIENT_ID = "3MVG9sandbox.factoryline.connected.app"
CLIENT_SECRET = "sandbox-client-secret-0000"
USERNAME = "integration@factoryline.example"
PASSWORD = "sandbox-password"
SECURITY_TOKEN = "SBXTOKEN0000"
REFRESH_TOKEN = "5Aep861sandboxRefreshToken0000"
DAILY_LIMIT = 15_000
PAGE_SIZE = 2000
BULK_DEFAULT_MAX = 50_000
CURSOR_CACHE = 64
#: a result of up to this many values keeps its rows (pages are then not rebuilt from the world)
KEEP_VALUES = 400_000
REPLICATION_WINDOW_MS = 30 * DAY_MS
_UNSUPPORTED_CSV = {"address"}
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^", "BACKQUOTE": "`"}

_V = r"v(?P<version>\d+\.\d)"
_ROUTES = Routes(
    ("POST", r"^/services/oauth2/token/?$", "oauth", "POST /services/oauth2/token"),
    ("GET", r"^/services/data/?$", "versions", "GET /services/data/"),
    ("GET", rf"^/services/data/{_V}/?$", "resources", "GET /services/data/vXX.X"),
    ("GET", rf"^/services/data/{_V}/limits/?$", "limits", "GET /services/data/vXX.X/limits"),
    ("GET", rf"^/services/data/{_V}/sobjects/?$", "describe_global", "GET /services/data/vXX.X/sobjects"),
    ("GET", rf"^/services/data/{_V}/sobjects/(?P<obj>\w+)/describe/?$", "describe",
     "GET /services/data/vXX.X/sobjects/{Object}/describe"),
    ("GET", rf"^/services/data/{_V}/sobjects/(?P<obj>\w+)/updated/?$", "updated",
     "GET /services/data/vXX.X/sobjects/{Object}/updated"),
    ("GET", rf"^/services/data/{_V}/sobjects/(?P<obj>\w+)/deleted/?$", "deleted",
     "GET /services/data/vXX.X/sobjects/{Object}/deleted"),
    ("GET", rf"^/services/data/{_V}/sobjects/(?P<obj>\w+)/?$", "sobject_info",
     "GET /services/data/vXX.X/sobjects/{Object}"),
    ("GET", rf"^/services/data/{_V}/sobjects/(?P<obj>\w+)/(?P<id>\w{{15,18}})/?$", "record",
     "GET /services/data/vXX.X/sobjects/{Object}/{Id}"),
    ("GET", rf"^/services/data/{_V}/(?P<kind>query|queryAll)/?$", "query", "GET /services/data/vXX.X/{query}"),
    ("GET", rf"^/services/data/{_V}/(?P<kind>query|queryAll)/(?P<locator>01g\w+-\d+)/?$", "query_more",
     "GET /services/data/vXX.X/query/{locator}"),
    ("POST", rf"^/services/data/{_V}/jobs/query/?$", "job_create", "POST /services/data/vXX.X/jobs/query"),
    ("GET", rf"^/services/data/{_V}/jobs/query/(?P<job>750\w+)/?$", "job_get",
     "GET /services/data/vXX.X/jobs/query/{id}"),
    ("PATCH", rf"^/services/data/{_V}/jobs/query/(?P<job>750\w+)/?$", "job_abort",
     "PATCH /services/data/vXX.X/jobs/query/{id}"),
    ("DELETE", rf"^/services/data/{_V}/jobs/query/(?P<job>750\w+)/?$", "job_delete",
     "DELETE /services/data/vXX.X/jobs/query/{id}"),
    ("GET", rf"^/services/data/{_V}/jobs/query/(?P<job>750\w+)/results/?$", "job_results",
     "GET /services/data/vXX.X/jobs/query/{id}/results"),
    ("POST", rf"^/services/data/{_V}/tooling/sobjects/CustomField/?$", "custom_field",
     "POST /services/data/vXX.X/tooling/sobjects/CustomField"),
    ("POST", rf"^/services/data/{_V}/composite/?$", "composite", "POST /services/data/vXX.X/composite"),
)
#: Composite limits (REST API guide, "Composite"): 25 subrequests per call, at most 5 of them query
#: operations (query, queryAll, and the query-more "next batch" requests)
COMPOSITE_MAX = 25
COMPOSITE_MAX_QUERIES = 5
_COMPOSITE_REF = re.compile(r"^[A-Za-z0-9_]+$")
#: headers a subrequest may not set: they come from the top-level request
_COMPOSITE_INHERITED = frozenset({"accept", "authorization", "content-type"})


def emulator_spec() -> EmulatorSpec:
    """The Salesforce emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(
        name="salesforce", factory=SalesforceEmulator,
        description="Salesforce REST (OAuth, describe, SOQL query/queryAll, updated/deleted, composite) and "
                    "Bulk API 2.0 query",
        notes={"sdk": "Salesforce(instance_url=settings['instance_url'], session_id=settings['session_id'], "
                      "session=<requests.Session with verify=settings['ca_bundle'], trust_env=False>)"})


class SalesforceError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _errors(code: str, message: str) -> list[dict[str, Any]]:
    return [{"message": message, "errorCode": code}]


def _not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


_sf_dt = sf_datetime


def _csv_dt(ms: int) -> str:
    sec, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{milli:03d}Z"


def _parse_time_param(value: str | None, name: str) -> int:
    if not value:
        raise SalesforceError(400, "MISSING_ARGUMENT", f"{name} not specified")
    try:
        return parse_datetime(value.replace(" ", "+"))
    except ValueError as exc:
        raise SalesforceError(400, "INVALID_PARAMETER_VALUE",
                              f"Parameter {name} cannot be parsed as a dateTime: {value}") from exc


def custom_value(field: Field, record_id: str) -> Any:
    """The value a custom field added through the Tooling API has on a record (seeded by both names)."""
    n = int.from_bytes(hashlib.blake2b(f"{field.name}|{record_id[:15]}".encode(), digest_size=4).digest(), "big")
    if field.type == "boolean":
        return n % 2 == 0
    if field.type in ("double", "currency", "percent"):
        return float(n % 1000)
    if field.type == "date":
        return time.strftime("%Y-%m-%d", time.gmtime(1_700_000_000 + n % 30_000_000))
    return f"@sf{n % 100_000}" if field.type == "string" else f"v{n % 100_000}"


def _with_custom_value(row: Callable[[int, int], dict[str, Any] | None],
                       field: Field) -> Callable[[int, int], dict[str, Any] | None]:
    def wrapped(i: int, t: int) -> dict[str, Any] | None:
        out = row(i, t)
        if out is not None:
            out[field.name] = custom_value(field, out["Id"])
        return out
    return wrapped


def _batch_size(options: str) -> int:
    """``batchSize=N`` of a Sforce-Query-Options header, clamped to Salesforce's 200..2000."""
    m = re.search(r"batchSize\s*=\s*(\d+)", options, re.I)
    return max(200, min(PAGE_SIZE, int(m.group(1)))) if m else PAGE_SIZE


@dataclass
class _Plan:
    """A query resolved against an object: what to select, how to filter and order."""

    obj: SObject
    fields: list[Field]
    count: bool
    predicate: Callable[[dict[str, Any]], bool]
    since: int | None
    order: list[tuple[Field, bool, bool]]
    limit: int | None
    offset: int
    #: the WHERE conditions (compiled into ``predicate``), for filtering without rows
    conds: list[tuple[Field, Cond]] = dataclass_field(default_factory=list)
    where_or: bool = False


#: fields every object's stamps give (LastModifiedDate is SystemModstamp): a query that filters and
#: sorts on these alone is answered from ``SObject.scan`` without building rows
_STAMP_FIELDS = frozenset({"Id", "IsDeleted", "SystemModstamp", "LastModifiedDate"})
_CMP: dict[str, Callable[[Any, Any], Any]] = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                                              ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                                              "=": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _id_indexes(prefix: str, values: tuple[Literal, ...]) -> list[int]:
    """The record indexes of an object whose ids match one of ``values`` on their first 15 characters."""
    out = []
    for x in values:
        if x.kind == "string" and isinstance(x.value, str):
            found = parse_id(x.value[:15])
            if found is not None and found[0] == prefix and sf_id(prefix, found[1])[:15] == x.value[:15]:
                out.append(found[1])
    return out


@dataclass
class _Cursor:
    plan: _Plan
    #: the result's record indexes, in order (int64: 8 bytes a record)
    indexes: np.ndarray
    tick: int
    version: str
    #: the selected fields of every result row, kept when small enough (else rows are rebuilt per page)
    rows: list[dict[str, Any]] | None = None
    #: records per page (``Sforce-Query-Options: batchSize=``, 200..2000)
    page_size: int = PAGE_SIZE
    #: the result's size (a COUNT() keeps no indexes)
    total: int = -1

    def __post_init__(self) -> None:
        if self.total < 0:
            self.total = len(self.indexes)

    def rows_at(self, start: int, stop: int) -> list[dict[str, Any] | None]:
        if self.rows is not None:
            return list(self.rows[start:stop])
        row, t = self.plan.obj.row, self.tick
        return [row(i, t) for i in self.indexes[start:stop].tolist()]


@dataclass
class _Job:
    id: str
    info: dict[str, Any]
    cursor: _Cursor | None
    delimiter: str
    line_ending: str
    polls: int = 0


class SalesforceEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        self.world = world
        self.options = options
        self.objects = build_objects(world)
        self._by_lower = {k.lower(): v for k, v in self.objects.items()}
        self._lock = threading.Lock()
        self._usage = 0
        self._tokens: set[str] = {SESSION_ID}
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._jobs: dict[str, _Job] = {}
        self._seq = itertools.count(1)
        self._fronts: dict[int, TlsFront] = {}
        #: object name -> epoch seconds its metadata last changed (a custom field added); the org's
        #: objects are older than any If-Modified-Since a client sends
        self._meta_changed: dict[str, float] = {}

    # -- Emulator protocol -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            fronts = list(self._fronts.values())
            self._fronts.clear()
        for front in fronts:
            front.close()

    def _front(self, base_url: str) -> TlsFront:
        port = urlparse(base_url).port or 80
        with self._lock:
            front = self._fronts.get(port)
            if front is None:
                front = self._fronts[port] = TlsFront(port)
            return front

    def settings(self, base_url: str) -> dict[str, str]:
        front = self._front(base_url)
        return {"instance_url": front.url, "base_url": front.url, "plain_url": base_url,
                "ca_bundle": str(front.cert_path), "session_id": SESSION_ID, "api_version": API_VERSION,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "username": USERNAME, "password": PASSWORD,
                "security_token": SECURITY_TOKEN, "refresh_token": REFRESH_TOKEN}

    def _instance_url(self, request: Request) -> str:
        return self._front(request.base_url).url

    @staticmethod
    def _match(request: Request) -> tuple[str, dict[str, str]] | None:
        return _ROUTES.match(request)

    def route(self, request: Request) -> str:
        return _ROUTES.route(request)

    def _limit_headers(self, count: bool = True) -> dict[str, str]:
        with self._lock:
            if count:
                self._usage += 1
            usage = self._usage
        return {"Sforce-Limit-Info": f"api-usage={usage}/{DAILY_LIMIT}"}

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        headers = self._limit_headers()
        if rule.kind == "rate_limit":  # Salesforce answers 403, not 429, and sends no Retry-After
            return Response(403, _errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), headers)
        if rule.kind == "expired_token":
            return Response(401, _errors("INVALID_SESSION_ID", "Session expired or invalid"), headers)
        if rule.status == 503:
            return Response(503, _errors("SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again "
                                                                "later."), headers)
        return Response(rule.status, _errors("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include "
                                                                  "this ErrorId if you contact support: "
                                                                  "1432-18734 (-1234567890)"), headers)

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        body = response.body
        if isinstance(body, dict) and isinstance(body.get("compositeResponse"), list):
            # a record inside one of the subresponses (the first one carrying records)
            subs = [r.get("body") for r in body["compositeResponse"] if isinstance(r, dict)]
            body = next((b for b in subs if isinstance(b, dict) and b.get("records")), None)
        if isinstance(body, dict):
            found = body.get("records")
            candidates: list[Any] = found if isinstance(found, list) else [body]
            records = [r for r in candidates if isinstance(r, dict) and "attributes" in r]
            if records:
                target = records[rng.randrange(len(records))]
                if kind == "missing_id":
                    target.pop("Id", None)
                    target["attributes"].pop("url", None)
                else:
                    for name in ("SystemModstamp", "LastModifiedDate"):
                        target[name] = "2026-02-31T25:61:00.000+0000"
        elif isinstance(body, bytes) and response.content_type.startswith("text/csv"):
            response.body = self._corrupt_csv(body, kind, rng)
        return response

    @staticmethod
    def _corrupt_csv(body: bytes, kind: str, rng: random.Random) -> bytes:
        text = body.decode("utf-8")
        header = text.split("\n", 1)[0]
        delim = next((ch for ch in header if ch in '",\t;|^`' and ch != '"'), ",")
        line_end = "\r\n" if header.endswith("\r") else "\n"
        rows = list(csv.reader(io.StringIO(text), delimiter=delim))
        if len(rows) < 2:
            return body
        names = rows[0]
        target = rows[1 + rng.randrange(len(rows) - 1)]
        for n, name in enumerate(names):
            if kind == "missing_id" and name == "Id":
                target[n] = ""
            elif kind == "bad_timestamp" and name in ("SystemModstamp", "LastModifiedDate"):
                target[n] = "2026-02-31T25:61:00.000Z"
        out = io.StringIO()
        csv.writer(out, delimiter=delim, lineterminator=line_end, quoting=csv.QUOTE_ALL).writerows(rows)
        return out.getvalue().encode("utf-8")

    def handle(self, request: Request) -> Response:
        found = self._match(request)
        oauth = found is not None and found[0] == "oauth"
        headers = self._limit_headers(count=not oauth)
        try:
            if found is None:
                raise _not_found()
            name, params = found
            if not oauth and name != "versions":
                self._authenticate(request)
                if params.get("version") not in VERSIONS:
                    raise _not_found()
                with self._lock:
                    usage = self._usage
                if self.options.rate_limits and usage > DAILY_LIMIT:
                    raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            resp: Response = getattr(self, f"_{name}")(request, **params)
        except SalesforceError as exc:
            resp = Response(exc.status, _errors(exc.code, exc.message))
        except SoqlError as exc:
            resp = Response(400, _errors(exc.code, exc.message))
        resp.headers.update(headers)
        return resp

    # -- auth ------------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        with self._lock:
            ok = scheme.lower() in ("bearer", "oauth") and token.strip() in self._tokens
        if not ok:
            raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def _oauth(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        form.update({k: v[-1] for k, v in request.query.items() if k not in form})
        grant = form.get("grant_type", "")

        def fail(error: str, description: str) -> Response:
            return Response(400, {"error": error, "error_description": description})

        if grant not in ("password", "client_credentials", "refresh_token"):
            return fail("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != CLIENT_ID:
            return fail("invalid_client_id", "client identifier invalid")
        if grant == "password":
            if form.get("client_secret", CLIENT_SECRET) != CLIENT_SECRET:
                return fail("invalid_client", "invalid client credentials")
            if form.get("username") != USERNAME or form.get("password") not in (PASSWORD, PASSWORD + SECURITY_TOKEN):
                return fail("invalid_grant", "authentication failure")
        elif grant == "client_credentials":
            if form.get("client_secret") != CLIENT_SECRET:
                return fail("invalid_client", "invalid client credentials")
        elif form.get("refresh_token") != REFRESH_TOKEN:
            return fail("invalid_grant", "expired access/refresh token")
        issued = str(int(time.time() * 1000))
        token = f"{ORG_ID[:15]}!AQ0AQ{base64.urlsafe_b64encode(hashlib.sha256(f'{issued}{next(self._seq)}'.encode()).digest()).decode().rstrip('=')}"
        with self._lock:
            self._tokens.add(token)
        instance = self._instance_url(request)
        ident = f"{instance}/id/{ORG_ID}/{sf_id('005', 0)}"
        signature = base64.b64encode(hmac.new(CLIENT_SECRET.encode(), f"{ident}{issued}".encode(),
                                              hashlib.sha256).digest()).decode()
        body: dict[str, Any] = {"access_token": token, "instance_url": instance, "id": ident, "token_type": "Bearer",
                                "issued_at": issued, "signature": signature}
        if grant == "refresh_token":
            body["scope"] = "api refresh_token"
        return Response(200, body)

    # -- metadata --------------------------------------------------------------------------------

    def _versions(self, request: Request) -> Response:
        out = []
        for v in VERSIONS:
            n = int(float(v))
            year = 2014 + (n - 31) // 3 + (1 if (n - 31) % 3 else 0)
            out.append({"label": f"{_SEASONS[(n - 30) % 3]} '{year % 100:02d}", "url": f"/services/data/v{v}",
                        "version": v})
        return Response(200, out)

    def _resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        return Response(200, {name: f"{base}/{name}" for name in
                              ("sobjects", "query", "queryAll", "limits", "jobs")})

    def _limits(self, request: Request, version: str) -> Response:
        with self._lock:
            used = self._usage
        return Response(200, {"DailyApiRequests": {"Max": DAILY_LIMIT, "Remaining": max(0, DAILY_LIMIT - used)},
                              "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - len(self._jobs)}})

    def _object(self, name: str) -> SObject:
        obj = self._by_lower.get(name.lower())
        if obj is None:
            raise _not_found()
        return obj

    @staticmethod
    def _urls(obj: SObject, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def _sobject_summary(self, obj: SObject, version: str) -> dict[str, Any]:
        return {"name": obj.name, "label": obj.label, "custom": obj.custom, "keyPrefix": obj.prefix,
                "labelPlural": obj.plural, "layoutable": True, "activateable": False, "updateable": True,
                "urls": self._urls(obj, version), "searchable": True, "createable": True, "customSetting": False,
                "deletable": True, "deprecatedAndHidden": False, "feedEnabled": obj.name not in ("User",),
                "mergeable": obj.name in ("Account", "Contact", "Lead"), "queryable": True, "replicateable": True,
                "retrieveable": True, "undeletable": True, "triggerable": True}

    def _describe_global(self, request: Request, version: str) -> Response:
        return Response(200, {"encoding": "UTF-8", "maxBatchSize": 200,
                              "sobjects": [self._sobject_summary(o, version) for o in self.objects.values()]})

    def _sobject_info(self, request: Request, version: str, obj: str) -> Response:
        o = self._object(obj)
        return Response(200, {"objectDescribe": self._sobject_summary(o, version), "recentItems": []})

    @staticmethod
    def _describe_field(f: Field) -> dict[str, Any]:
        text_types = ("string", "email", "phone", "picklist", "textarea", "url", "id", "reference")
        length = f.length or (255 if f.type in ("picklist", "textarea", "url") else 0)
        soap = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
                "date": "xsd:date", "currency": "xsd:double", "double": "xsd:double", "percent": "xsd:double",
                "int": "xsd:int", "address": "urn:address"}.get(f.type, "xsd:string")
        numeric = f.type in ("currency", "double", "percent")
        system = f.name in ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                            "SystemModstamp")
        rel = f.name[:-2] if f.type == "reference" and f.name.endswith("Id") else None
        return {
            "length": length, "name": f.name, "type": f.type, "defaultValue": None, "label": f.label or f.name,
            "updateable": not system and f.type != "address", "calculated": f.type == "address" or f.formula is not None,
            "controllerName": None, "nillable": f.nillable, "unique": False,
            "precision": 18 if numeric else 0, "scale": 2 if f.type == "currency" else 0,
            "caseSensitive": False, "byteLength": length * 3 if f.type not in ("id", "reference") else length,
            "inlineHelpText": None, "nameField": f.name == "Name", "externalId": False,
            "idLookup": f.name in ("Id", "Email", "Username"), "filterable": f.type != "address",
            "soapType": soap, "createable": not system and f.type != "address", "deprecatedAndHidden": False,
            "autoNumber": False, "calculatedFormula": f.formula, "defaultValueFormula": None,
            "defaultedOnCreate": system or f.type == "boolean", "digits": 9 if f.type == "int" else 0,
            "groupable": f.type in text_types or f.type in ("boolean", "date", "int"),
            "picklistValues": [{"value": v, "active": True, "label": v, "defaultValue": False, "validFor": None}
                               for v in f.picklist],
            "referenceTo": list(f.reference_to), "relationshipName": rel, "relationshipOrder": None,
            "restrictedPicklist": False, "namePointing": len(f.reference_to) > 1 and f.name != "OwnerId",
            "custom": f.custom, "htmlFormatted": False, "dependentPicklist": False,
            "writeRequiresMasterRead": False, "sortable": f.type not in ("address", "textarea"),
            "compoundFieldName": f.compound,
        }

    def _not_modified(self, obj: SObject, request: Request) -> bool:
        """``If-Modified-Since`` (``EEE, dd MMM yyyy HH:mm:ss z``) at or after the object's last metadata change."""
        value = request.headers.get("if-modified-since")
        if not value:
            return False
        try:
            when = parsedate_to_datetime(value)
            since = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        except (TypeError, ValueError, IndexError):
            return False  # an unreadable date is ignored, as HTTP servers do
        with self._lock:
            changed = self._meta_changed.get(obj.name, 0.0)
        return int(changed) <= since

    def _describe(self, request: Request, version: str, obj: str) -> Response:
        o = self._object(obj)
        if self._not_modified(o, request):
            return Response(304, None)
        summary = self._sobject_summary(o, version)
        instance = self._instance_url(request)
        summary["urls"].update({"uiEditTemplate": f"{instance}/{{ID}}/e", "uiDetailTemplate": f"{instance}/{{ID}}",
                                "uiNewRecord": f"{instance}/{o.prefix}/e"})
        body = {"name": o.name, "fields": [self._describe_field(f) for f in o.fields], "label": o.label,
                **{k: v for k, v in summary.items() if k not in ("name", "label")},
                "childRelationships": [], "listviewable": None, "lookupLayoutable": None,
                "recordTypeInfos": [{"name": "Master", "available": True, "recordTypeId": "012000000000000AAA",
                                     "defaultRecordTypeMapping": True}],
                "searchLayoutable": None}
        return Response(200, body)

    # -- Tooling API: custom fields --------------------------------------------------------------

    def _custom_field(self, request: Request, version: str) -> Response:
        """``POST tooling/sobjects/CustomField``: add a custom field to an object.

        Its value on every record is a pure function of the field and record id (adding a field
        does not touch SystemModstamp, as in Salesforce).
        """
        payload = request.json() or {}
        full_name = str(payload.get("FullName") or "")
        meta = payload.get("Metadata") or {}
        obj_name, _, name = full_name.partition(".")
        if not name.endswith("__c") or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name):
            raise SalesforceError(400, "INVALID_FIELD", f"invalid custom field name: {full_name}")
        obj = self._object(obj_name)
        kind = {"Number": "double", "Currency": "currency", "Percent": "percent", "Checkbox": "boolean",
                "Date": "date", "Text": "string", "Email": "email", "Phone": "phone",
                "Url": "url"}.get(str(meta.get("type") or "Text"))
        if kind is None:
            raise SalesforceError(400, "INVALID_TYPE", f"unsupported custom field type: {meta.get('type')}")
        with self._lock:
            if name.lower() in obj.by_lower:
                raise SalesforceError(400, "DUPLICATE_DEVELOPER_NAME", f"duplicate field name: {name}")
            field = Field(name, kind, str(meta.get("label") or name[:-3]), custom=True,
                          length=int(meta.get("length") or (255 if kind == "string" else 0)),
                          formula=str(meta["formula"]) if meta.get("formula") else None)
            obj.fields = [*obj.fields, field]
            obj.by_lower = {f.name.lower(): f for f in obj.fields}
            obj.row = _with_custom_value(obj.row, field)
            self._meta_changed[obj.name] = time.time()
            field_id = sf_id("00N", next(self._seq))
        return Response(201, {"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []})

    # -- Composite -------------------------------------------------------------------------------

    def _composite(self, request: Request, version: str) -> Response:
        """``POST composite``: up to 25 subrequests run in order, answered together; ONE API call.

        Each subrequest goes to the same handler as the direct endpoint (same bodies, same errors),
        with the top-level request's authorization and its own ``httpHeaders``. ``allOrNone: true``
        turns every other answer into ``PROCESSING_HALTED`` once one fails (reads have nothing to
        roll back). ``@{ref.field}`` references are not resolved: this connector never uses them.
        """
        try:
            payload = request.json()
        except orjson.JSONDecodeError as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
        subs = payload.get("compositeRequest") if isinstance(payload, dict) else None
        if not isinstance(subs, list) or not subs:
            raise SalesforceError(400, "INVALID_API_INPUT", "compositeRequest is required and must not be empty")
        if len(subs) > COMPOSITE_MAX:
            raise SalesforceError(400, "LIMIT_EXCEEDED",
                                  f"Composite requests can contain at most {COMPOSITE_MAX} subrequests")
        all_or_none = bool(payload.get("allOrNone"))
        plans: list[tuple[str, Request, str, dict[str, str]]] = []
        queries = 0
        seen: set[str] = set()
        for sub in subs:
            if not isinstance(sub, dict):
                raise SalesforceError(400, "INVALID_API_INPUT", "each subrequest must be a JSON object")
            ref, method, url = sub.get("referenceId"), sub.get("method"), sub.get("url")
            if not isinstance(ref, str) or not _COMPOSITE_REF.match(ref):
                raise SalesforceError(400, "INVALID_API_INPUT", f"invalid referenceId: {ref!r}")
            if ref in seen:
                raise SalesforceError(400, "INVALID_API_INPUT", f"Duplicate ReferenceId provided: {ref}")
            seen.add(ref)
            if method not in ("GET", "POST", "PATCH", "DELETE") or not isinstance(url, str) or not url.startswith("/"):
                raise SalesforceError(400, "INVALID_API_INPUT", f"invalid method or url in subrequest {ref}")
            extra = sub.get("httpHeaders") or {}
            if not isinstance(extra, dict) or any(str(k).lower() in _COMPOSITE_INHERITED for k in extra):
                raise SalesforceError(400, "INVALID_API_INPUT",
                                      f"subrequest {ref}: Accept, Authorization and Content-Type come from the "
                                      "top-level request")
            raw_path, _, qs = url.partition("?")
            headers = {k: v for k, v in request.headers.items() if k not in ("content-length", "transfer-encoding")}
            headers.update({str(k).lower(): str(v) for k, v in extra.items()})
            body = orjson.dumps(sub["body"]) if sub.get("body") is not None else b""
            req = Request(method, unquote(raw_path), url, parse_qs(qs, keep_blank_values=True), headers, body,
                          request.base_url)
            found = self._match(req)
            name, params = found if found is not None else ("", {})
            if name in ("query", "query_more"):
                queries += 1
            plans.append((ref, req, name, params))
        if queries > COMPOSITE_MAX_QUERIES:
            raise SalesforceError(400, "LIMIT_EXCEEDED", f"Composite requests can contain at most "
                                  f"{COMPOSITE_MAX_QUERIES} query operations (query, queryAll, query more)")
        out: list[dict[str, Any]] = []
        records = 0
        failed = False
        for ref, req, name, params in plans:
            try:
                if name in ("", "oauth", "versions", "composite") or params.get("version") not in VERSIONS:
                    raise _not_found()
                resp: Response = getattr(self, f"_{name}")(req, **params)
            except SalesforceError as exc:
                resp = Response(exc.status, _errors(exc.code, exc.message))
            except SoqlError as exc:
                resp = Response(400, _errors(exc.code, exc.message))
            failed = failed or resp.status >= 400
            records += resp.records
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
            out.append({"body": resp.body, "httpHeaders": headers, "httpStatusCode": resp.status, "referenceId": ref})
        if all_or_none and failed:
            halted = _errors("PROCESSING_HALTED", "The transaction was rolled back since another operation in the "
                                                  "same transaction failed.")
            out = [r if r["httpStatusCode"] >= 400 else {**r, "body": halted, "httpHeaders": {}, "httpStatusCode": 400}
                   for r in out]
        return Response(200, {"compositeResponse": out}, records=records)

    # -- records ---------------------------------------------------------------------------------

    @staticmethod
    def _json_value(f: Field, row: dict[str, Any]) -> Any:
        if f.type == "address":
            return row[f.name] if f.name in row else address_value(row, f.name[:-len("Address")])
        v = row.get(f.name)
        if v is not None and f.type == "datetime":
            return _sf_dt(v)
        return v

    def _render(self, obj: SObject, fields: list[Field], row: dict[str, Any], version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": obj.name,
                                              "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
        for f in fields:
            out[f.name] = self._json_value(f, row)
        return out

    def _record(self, request: Request, version: str, obj: str, id: str) -> Response:
        o = self._object(obj)
        parsed = parse_id(id)
        if parsed is None or parsed[0] != o.prefix:
            raise _not_found()
        row = o.row(parsed[1], self.world.tick)
        if row is None:
            raise _not_found()
        if row["IsDeleted"]:
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
        fields = o.fields
        wanted = request.arg("fields")
        if wanted:
            fields = [self._field(o, n.strip(), None) for n in wanted.split(",") if n.strip()]
        return Response(200, self._render(o, fields, row, version), records=1)

    def _window(self, request: Request, deleted: bool) -> tuple[int, int, int]:
        start = _parse_time_param(request.arg("start"), "start")
        end = _parse_time_param(request.arg("end"), "end")
        now = max(int(time.time() * 1000), self.world.ticks[-1])
        earliest = (now - REPLICATION_WINDOW_MS) // 60_000 * 60_000
        if end <= start:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "start date must be before end date")
        if start < earliest:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  "startDate before org replication enabled date")
        latest = min(end, now) // 60_000 * 60_000
        return start, latest, earliest

    def _updated(self, request: Request, version: str, obj: str) -> Response:
        o = self._object(obj)
        start, latest, _ = self._window(request, False)
        t = self.world.tick
        ids = []
        for i in o.indexes(t, start):
            row = o.row(i, t)
            if row is not None and not row["IsDeleted"] and start <= row["SystemModstamp"] < latest:
                ids.append(row["Id"])
        return Response(200, {"ids": ids, "latestDateCovered": _sf_dt(latest)}, records=len(ids))

    def _deleted(self, request: Request, version: str, obj: str) -> Response:
        o = self._object(obj)
        start, latest, earliest = self._window(request, True)
        t = self.world.tick
        out = []
        for i in o.indexes(t, start):
            row = o.row(i, t)
            if row is not None and row["IsDeleted"] and start <= row["SystemModstamp"] < latest:
                out.append({"id": row["Id"], "deletedDate": _sf_dt(row["SystemModstamp"])})
        return Response(200, {"deletedRecords": out, "earliestDateAvailable": _sf_dt(earliest),
                              "latestDateCovered": _sf_dt(latest)}, records=len(out))

    # -- SOQL ------------------------------------------------------------------------------------

    @staticmethod
    def _field(obj: SObject, name: str, query: Query | None) -> Field:
        f = obj.by_lower.get(name.lower())
        if f is None:
            pos = query.text.find(name) if query is not None else -1
            where = f"\n{query.text}\n{' ' * max(0, pos)}^\nERROR at Row:1:Column:{pos + 1}\n" if query else ""
            raise SalesforceError(400, "INVALID_FIELD",
                                  f"{where}No such column '{name}' on entity '{obj.name}'. If you are attempting to "
                                  "use a custom field, be sure to append the '__c' after the custom field name. "
                                  "Please reference your WSDL or the describe call for the appropriate names.")
        return f

    def _plan(self, text: str) -> _Plan:
        q = parse(text)
        obj = self._by_lower.get(q.sobject.lower())
        if obj is None:
            pos = q.text.find(q.sobject)
            raise SalesforceError(400, "INVALID_TYPE",
                                  f"\n{q.text}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\nsObject type "
                                  f"'{q.sobject}' is not supported. If you are attempting to use a custom object, be "
                                  "sure to append the '__c' after the entity name. Please reference your WSDL or the "
                                  "describe call for the appropriate names.")
        fields = [self._field(obj, n, q) for n in q.fields]
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise SalesforceError(400, "INVALID_FIELD", f"duplicate field selected: {f.name}")
            seen.add(f.name)
        tests = [self._compile(self._field(obj, c.field, q), c) for c in q.where]
        since: int | None = None
        if not q.where_or:
            for c in q.where:
                if (c.field.lower() in ("systemmodstamp", "lastmodifieddate", "createddate") and c.op in (">", ">=", "=")
                        and c.values[0].kind == "datetime"):
                    bound = int(c.values[0].value)
                    since = bound if since is None else max(since, bound)
        if q.where_or:
            def predicate(row: dict[str, Any]) -> bool:
                return any(test(row) for test in tests)
        else:
            def predicate(row: dict[str, Any]) -> bool:
                return all(test(row) for test in tests)
        order = [(self._field(obj, name, q), desc, nulls_last) for name, desc, nulls_last in q.order]
        conds = [(self._field(obj, c.field, q), c) for c in q.where]
        return _Plan(obj, fields, q.count, predicate, since, order, q.limit, q.offset, conds, q.where_or)

    @staticmethod
    def _compile(f: Field, c: Cond) -> Callable[[dict[str, Any]], bool]:
        expected = {"datetime": "datetime", "date": "date", "boolean": "bool", "currency": "number",
                    "double": "number", "percent": "number", "int": "number"}.get(f.type, "string")
        if f.type == "address":
            raise SalesforceError(400, "INVALID_FIELD", f"field '{f.name}' can not be filtered in a query call")
        values: list[Any] = []
        for lit in c.values:
            if lit.kind == "null":
                values.append(None)
                continue
            if lit.kind != expected:
                quoted = " and should not be enclosed in quotes" if lit.kind == "string" else ""
                kind = {"datetime": "dateTime", "bool": "boolean", "number": "double"}.get(expected, expected)
                raise SalesforceError(400, "INVALID_FIELD",
                                      f"value of filter criterion for field '{f.name}' must be of type {kind}{quoted}")
            v = lit.value
            if f.type in ("id", "reference") and isinstance(v, str):
                v = v[:15]
            elif expected == "string" and isinstance(v, str):
                v = v.lower()
            values.append(v)
        name = f.name
        is_id = f.type in ("id", "reference")

        def get(row: dict[str, Any]) -> Any:
            v = row.get(name)
            if isinstance(v, str):
                return v[:15] if is_id else v.lower()
            return v

        op = c.op
        if op in ("IN", "NOT IN"):
            members = set(values)
            return (lambda row: get(row) in members) if op == "IN" else (lambda row: get(row) not in members)
        target = values[0]
        if op == "LIKE":
            pattern = re.compile("".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
                                         for ch in str(target)), re.S)
            return lambda row: isinstance(get(row), str) and pattern.fullmatch(get(row)) is not None
        if op == "=":
            return lambda row: get(row) == target
        if op == "!=":
            return lambda row: get(row) != target
        if target is None:
            return lambda row: False
        cmp: Callable[[Any, Any], bool] = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                                           ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]
        return lambda row: (v := get(row)) is not None and cmp(v, target)

    def _execute(self, plan: _Plan, all_rows: bool, version: str) -> _Cursor:
        order_names = {f.name for f, _, _ in plan.order}
        if {f.name for f, _ in plan.conds} <= _STAMP_FIELDS and order_names <= _STAMP_FIELDS - {"IsDeleted"}:
            return self._execute_stamps(plan, all_rows, version)
        return self._execute_rows(plan, all_rows, version)

    def _execute_stamps(self, plan: _Plan, all_rows: bool, version: str) -> _Cursor:
        """A query on Id / IsDeleted / SystemModstamp alone: filtered and sorted from the object's
        stamps (numpy arrays, 17 bytes a record), rows built only for the pages served."""
        t = self.world.tick
        obj = plan.obj
        idx, deleted, modified = obj.scan(t, plan.since)
        mask = np.ones(len(idx), dtype=np.bool_) if all_rows else ~deleted
        residual = plan.conds
        if not plan.where_or:
            residual = []
            for f, c in plan.conds:
                v = c.values[0].value if c.values else None
                if f.name in ("SystemModstamp", "LastModifiedDate") and c.op in _CMP and isinstance(v, int) \
                        and c.values[0].kind == "datetime":
                    mask &= _CMP[c.op](modified, v)
                elif f.name == "Id" and c.op in ("=", "IN") and all(x.kind in ("string", "null") for x in c.values):
                    # the records whose id's first 15 characters are one of the values (as _compile)
                    mask &= np.isin(idx, np.array(_id_indexes(obj.prefix, c.values), dtype=np.int64))
                else:
                    residual.append((f, c))
        if residual:
            # the rest (Id bounds, IsDeleted, OR) on each remaining record's stamp, as on its row
            tests = [self._compile(f, c) for f, c in residual]
            test = (lambda row: any(x(row) for x in tests)) if plan.where_or else \
                (lambda row: all(x(row) for x in tests))
            where = np.flatnonzero(mask)
            prefix = obj.prefix
            for pos, i, d, m in zip(where.tolist(), idx[where].tolist(), deleted[where].tolist(),
                                    modified[where].tolist(), strict=True):
                if not test({"Id": sf_id(prefix, i), "IsDeleted": d, "SystemModstamp": m, "LastModifiedDate": m}):
                    mask[pos] = False
        if plan.count and plan.offset == 0 and plan.limit is None:
            return _Cursor(plan, np.zeros(0, np.int64), t, version, total=int(mask.sum()))
        if not mask.all():  # (a full window keeps every record: no copies of the object's stamps)
            where = np.flatnonzero(mask)
            idx, modified = idx[where], modified[where]
        order = [(f.name == "Id", desc) for f, desc, _ in plan.order]
        if order == [(False, False), (True, False)] and (len(idx) < 2 or bool((idx[1:] > idx[:-1]).all())):
            # the connector's SystemModstamp ASC, Id ASC over stamps in Id order: one stable sort
            idx = idx[np.argsort(modified, kind="stable")]
        elif order:
            # Salesforce's multi-key order, ties in scan order (np.lexsort is stable; its last key leads)
            keys = [(-k if desc else k) for k, desc in
                    ((idx if f.name == "Id" else modified, desc) for f, desc, _ in plan.order)]
            idx = idx[np.lexsort(keys[::-1])]
        idx = idx[plan.offset:]
        if plan.limit is not None:
            idx = idx[:plan.limit]
        return _Cursor(plan, np.ascontiguousarray(idx, dtype=np.int64), t, version)

    def _execute_rows(self, plan: _Plan, all_rows: bool, version: str) -> _Cursor:
        t = self.world.tick
        obj = plan.obj
        # each match keeps only its index and sort values;
        # its selected values too while the whole result fits KEEP_VALUES
        order_names = [f.name for f, _, _ in plan.order]
        keep_rows = KEEP_VALUES // (len(plan.fields) + 1)
        keep = True
        rows: list[dict[str, Any]] = []
        for i in obj.indexes(t, plan.since):
            row = obj.row(i, t)
            if row is None or (row["IsDeleted"] and not all_rows) or not plan.predicate(row):
                continue
            slim: dict[str, Any] = {name: row.get(name) for name in order_names}
            slim["__idx"] = i
            if keep:
                if len(rows) >= keep_rows:
                    keep = False
                    for r in rows:
                        r.pop("__kept", None)
                else:
                    slim["__kept"] = {"Id": row["Id"], **{
                        f.name: self._json_value(f, row) if f.type == "address" else row.get(f.name)
                        for f in plan.fields}}
            rows.append(slim)
        for f, desc, nulls_last in reversed(plan.order):
            null_flag = 0 if (not desc and not nulls_last) or (desc and nulls_last) else 2

            # ids sort by their characters (case matters, as in Id comparisons); text ignores case
            fold = f.type not in ("id", "reference")

            def key(row: dict[str, Any], name: str = f.name, flag: int = null_flag,
                    fold: bool = fold) -> tuple[Any, ...]:
                v = row.get(name)
                if v is None:
                    return (flag,)
                return (1, v.lower() if fold and isinstance(v, str) else v)
            rows.sort(key=key, reverse=desc)
        selected = rows[plan.offset:]
        if plan.limit is not None:
            selected = selected[:plan.limit]
        kept = [r["__kept"] for r in selected] if keep else None
        return _Cursor(plan, np.array([r["__idx"] for r in selected], dtype=np.int64), t, version, kept)

    def _page(self, cursor: _Cursor, locator: str, offset: int, kind: str) -> Response:
        plan = cursor.plan
        if plan.count:
            return Response(200, {"totalSize": cursor.total, "done": True, "records": []})
        records = []
        size = cursor.page_size
        for row in cursor.rows_at(offset, min(offset + size, cursor.total)):
            if row is not None:
                records.append(self._render(plan.obj, plan.fields, row, cursor.version))
        body: dict[str, Any] = {"totalSize": cursor.total, "done": offset + size >= cursor.total}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{cursor.version}/{kind}/{locator}-{offset + size}"
        body["records"] = records
        return Response(200, body, records=len(records))

    def _query(self, request: Request, version: str, kind: str) -> Response:
        text = request.arg("q")
        if not text:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        cursor = self._execute(self._plan(text), kind == "queryAll", version)
        cursor.page_size = _batch_size(request.headers.get("sforce-query-options", ""))
        locator = sf_id("01g", next(self._seq))
        if cursor.total > cursor.page_size and not cursor.plan.count:
            with self._lock:
                self._cursors[locator] = cursor
                while len(self._cursors) > CURSOR_CACHE:
                    self._cursors.popitem(last=False)
        return self._page(cursor, locator, 0, "query")

    def _query_more(self, request: Request, version: str, kind: str, locator: str) -> Response:
        # a repeated ``q=`` (some clients send it again) is ignored: the locator says it all
        loc, _, offset = locator.rpartition("-")
        with self._lock:
            cursor = self._cursors.get(loc)
        if cursor is None:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, loc, int(offset), "query")

    # -- Bulk API 2.0 query ----------------------------------------------------------------------

    def _job(self, job: str) -> _Job:
        with self._lock:
            found = self._jobs.get(job)
        if found is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return found

    def _job_create(self, request: Request, version: str) -> Response:
        try:
            payload = request.json() or {}
        except orjson.JSONDecodeError as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
        operation = payload.get("operation")
        if operation not in ("query", "queryAll"):
            raise SalesforceError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        text = payload.get("query") or ""
        delim_name = payload.get("columnDelimiter", "COMMA")
        line_ending = payload.get("lineEnding", "LF")
        if delim_name not in _DELIMITERS or line_ending not in ("LF", "CRLF"):
            raise SalesforceError(400, "INVALIDJOB", "InvalidJob : Invalid columnDelimiter or lineEnding")
        plan = self._plan(text)
        if plan.count or plan.offset:
            raise SalesforceError(400, "API_ERROR", "Aggregate queries and OFFSET are not supported by Bulk API 2.0")
        job_id = sf_id("750", next(self._seq))
        now = _sf_dt(int(time.time() * 1000))
        info: dict[str, Any] = {
            "id": job_id, "operation": operation, "object": plan.obj.name, "createdById": sf_id("005", 0),
            "createdDate": now, "systemModstamp": now, "state": "UploadComplete", "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": float(version), "lineEnding": line_ending,
            "columnDelimiter": delim_name}
        compound = [f.name for f in plan.fields if f.type in _UNSUPPORTED_CSV]
        cursor = None
        if compound:
            info["errorMessage"] = (f"FeatureNotEnabled : Cannot serialize value for '{compound[0]}' in CSV "
                                    "format")
        else:
            cursor = self._execute(plan, operation == "queryAll", version)
        job = _Job(job_id, info, cursor, _DELIMITERS[delim_name], "\r\n" if line_ending == "CRLF" else "\n")
        with self._lock:
            self._jobs[job_id] = job
        return Response(200, dict(info))

    def _job_get(self, request: Request, version: str, job: str) -> Response:
        j = self._job(job)
        with self._lock:
            j.polls += 1
            info = j.info
            if info["state"] in ("UploadComplete", "InProgress"):
                if j.cursor is None:
                    info["state"] = "Failed"
                elif info["state"] == "UploadComplete":
                    info["state"] = "InProgress"
                else:
                    info["state"] = "JobComplete"
                info["systemModstamp"] = _sf_dt(int(time.time() * 1000))
            body = dict(info)
        done = body["state"] == "JobComplete"
        body.update({"numberRecordsProcessed": j.cursor.total if done and j.cursor else 0, "retries": 0,
                     "totalProcessingTime": 40 * j.polls if done else 0, "isPkChunkingSupported": True})
        return Response(200, body)

    def _job_abort(self, request: Request, version: str, job: str) -> Response:
        j = self._job(job)
        payload = request.json() or {}
        if payload.get("state") != "Aborted":
            raise SalesforceError(400, "INVALIDJOB", "InvalidJob : Invalid state for a query job")
        with self._lock:
            if j.info["state"] not in ("JobComplete", "Failed"):
                j.info["state"] = "Aborted"
            body = dict(j.info)
        return Response(200, body)

    def _job_delete(self, request: Request, version: str, job: str) -> Response:
        j = self._job(job)
        with self._lock:
            if j.info["state"] in ("UploadComplete", "InProgress"):
                raise SalesforceError(400, "API_ERROR", "Job is not in a terminal state and cannot be deleted")
            self._jobs.pop(job, None)
        return Response(204, None, content_type="text/plain")

    @staticmethod
    def _csv_value(f: Field, row: dict[str, Any]) -> str:
        v = row.get(f.name)
        if v is None:
            return ""
        if f.type == "datetime":
            return _csv_dt(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    def _job_results(self, request: Request, version: str, job: str) -> Response:
        j = self._job(job)
        if j.info["state"] != "JobComplete" or j.cursor is None:
            raise SalesforceError(400, "API_ERROR", f"Job {job} is not complete: {j.info['state']}")
        locator = request.arg("locator") or ""
        start = 0
        if locator and locator != "null":
            try:
                start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
            except ValueError as exc:
                raise SalesforceError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from exc
        raw_max = request.arg("maxRecords")
        try:
            max_records = int(raw_max) if raw_max else BULK_DEFAULT_MAX
        except ValueError as exc:
            raise SalesforceError(400, "INVALIDPARAMETER", "maxRecords must be a positive integer") from exc
        if max_records <= 0:
            raise SalesforceError(400, "INVALIDPARAMETER", "maxRecords must be a positive integer")
        cursor = j.cursor
        plan = cursor.plan
        stop = min(start + max_records, cursor.total)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=j.delimiter, lineterminator=j.line_ending, quoting=csv.QUOTE_ALL)
        writer.writerow([f.name for f in plan.fields])
        n = 0
        for row in cursor.rows_at(start, stop):
            if row is not None:
                writer.writerow([self._csv_value(f, row) for f in plan.fields])
                n += 1
        next_locator = base64.b64encode(str(stop).encode()).decode().rstrip("=") if stop < cursor.total \
            else "null"
        return Response(200, out.getvalue().encode("utf-8"),
                        {"Sforce-NumberOfRecords": str(n), "Sforce-Locator": next_locator},
                        content_type="text/csv", records=n)
