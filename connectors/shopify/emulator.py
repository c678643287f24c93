"""Shopify GraphQL Admin API emulator for the sandbox: the shop's orders and customers.

The shop's orders are the journeys' orders (:meth:`sandbox.journeys.Journeys.orders`); a person
with orders is a Shopify customer unless the journeys make them a guest buyer
(:meth:`~sandbox.journeys.Journeys.is_guest_buyer`: their orders have ``customer: null``). ``POST /admin/api/{version}/graphql.json`` with
``X-Shopify-Access-Token`` runs real GraphQL (graphql-core over :mod:`connectors.shopify.graphql`):
aliases, fragments, variables and field selection behave as at Shopify; unknown fields are
``undefinedField`` errors. Served:

* ``orders`` / ``customers`` connections (``first``/``after``, ``last``/``before``, ``reverse``,
  ``sortKey``, ``query`` with ``updated_at:>'...'``, ``created_at``, ``processed_at``, ``id``,
  ``email``, ``name``, ``test``, ``status``), ``edges {cursor node}``, ``nodes``, ``pageInfo``;
  ``order(id:)``, ``customer(id:)``, ``shop``; at most 250 per page;
* bulk operations: ``bulkOperationRunQuery`` / ``bulkOperationCancel``, ``currentBulkOperation`` and
  ``bulkOperation(id:)`` (CREATED, then RUNNING on the first poll, which starts writing the JSONL
  page by page to a temporary file in the background; COMPLETED once written, a poll waiting up to
  a second for it); ``url`` points at a small storage server of this emulator that streams that
  file (nested connection rows carry ``__parentId``);
* ``extensions.cost`` on every answer (1 per object, 2 + first x node per connection, 10 per
  mutation; a query over 1000 is ``MAX_COST_EXCEEDED``); with ``rate_limits=True`` a leaky bucket
  (2000 points, 100/s) answers ``THROTTLED`` without ``data`` (without it the bucket stays full).

Listing by the default ``ID`` sort holds no index: an order's idx is ``person * 64 + n``, so a
cursor is a position over person indexes and each page walks the people from there, skipping
those who cannot buy from two hashes (:meth:`ShopifyEmulator.may_buy`; an ``updated_at:>`` bound
after tick 0 visits only :meth:`~sandbox.journeys.Journeys.people_with_orders_since`: O(changed),
also for the other sort keys). Other sort keys without such a bound build a per-tick index of the
buyers' search records on first use (O(buyers) time and memory).

Ids: orders ``gid://shopify/Order/{5000000000 + idx}``, customers ``gid://shopify/Customer/{7000000000
+ person}``, line items ``gid://shopify/LineItem/{13000000000 + 100 x order + line}``. Money: the
shop's currency is USD (``shopMoney``); ``presentmentMoney`` is the order's own currency.
"""

from __future__ import annotations

import base64
import bisect
import functools
import os
import random
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import itemgetter
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qs, urlsplit

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
    parse,
    validate,
)

from connectors.shopify.graphql import SCHEMA, query_cost
from sandbox.faults import FaultRule
from sandbox.journeys import (
    _S_GUEST,
    _S_ORDER,
    _WORLD_S_STAGE,
    GUEST_PCT,
    ORDER_SLOTS,
    UTM_CAMPAIGN_PCT,
    Touch,
)
from sandbox.journeys import _h as _journey_h
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.world import World, _h, format_ms

__all__ = ["ACCESS_TOKEN", "ShopifyEmulator", "emulator_spec"]

ACCESS_TOKEN = "shpat_sandbox0000000000000000000000000"
SHOP_DOMAIN = "factoryline-sandbox.myshopify.com"
SHOP_CURRENCY = "USD"
ORDER_OFFSET = 5_000_000_000
CUSTOMER_OFFSET = 7_000_000_000
LINE_OFFSET = 13_000_000_000
BULK_OFFSET = 3_100_000_000
MAX_PAGE = 250
MAX_QUERY_COST = 1000
BUCKET_SIZE = 2000.0
RESTORE_RATE = 100.0
#: fixed conversion to the shop's currency
FX_TO_USD = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "NZD": 0.61, "JPY": 0.0067,
             "CHF": 1.13, "SEK": 0.095, "NOK": 0.093, "DKK": 0.145, "PLN": 0.25, "BRL": 0.2, "MXN": 0.058,
             "INR": 0.012, "SGD": 0.74, "HKD": 0.128, "ZAR": 0.055, "CZK": 0.043}
_PATH = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/graphql\.json$")
_AUTH_ERROR = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
_SALT = 7300
#: person records kept (an LRU: recent pages, not the population)
_RECORDS_CACHE = 4096
#: parsed and validated queries kept (a connector sends a handful of texts, with variables)
_PARSED_CACHE = 16
#: a status poll while a bulk operation runs waits this long for it (small results complete at once)
_POLL_WAIT = 1.0
#: a bulk operation's filled money bags kept (a few thousand distinct amounts)
_SHARED_MEMO = 8192
_AT = itemgetter(0)
_M64 = (1 << 64) - 1
_SINCE = re.compile(r"(?:^|\s)updated_at:(>=?)('[^']*'|\"[^\"]*\"|\S+)")


def _updated_since(query: str | None) -> int | None:
    """The lower bound (ms) of an ``updated_at:>`` / ``>=`` term of an AND-only query, else ``None``."""
    if not query or re.search(r"\bOR\b", query):
        return None
    m = _SINCE.search(query)
    if m is None:
        return None
    from sandbox.world import parse_time

    try:
        return int(parse_time(m.group(2).strip("'\"")))
    except ValueError:
        return None


def emulator_spec() -> EmulatorSpec:
    """The Shopify GraphQL Admin API emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(name="shopify", factory=ShopifyEmulator,
                        description="Shopify GraphQL Admin API (orders, customers, bulk operations)",
                        notes={"endpoint": "POST {base_url}/admin/api/2025-01/graphql.json",
                               "auth": "X-Shopify-Access-Token: settings['access_token']"})


# -------------------------------------------------------------------------------------------
# formatting
# -------------------------------------------------------------------------------------------


def _dt(ms: int | None) -> str | None:
    if ms is None:
        return None
    return format_ms(ms)[:19] + "Z"  # whole seconds (format_ms's day and second tables, no strftime)


def _sec(ms: int) -> int:
    """Shopify keeps (and filters on) whole seconds."""
    return ms - ms % 1000


@functools.lru_cache(maxsize=4096)
def _amount(cents: int) -> str:
    """``cents / 100`` as Shopify writes a Decimal: no trailing zeros, at least one decimal
    (``12.3``, ``12.0``, ``-0.05``), by integer arithmetic (Decimal took a tenth of an order's time)."""
    whole, frac = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    if frac == 0:
        return f"{sign}{whole}.0"
    return f"{sign}{whole}.{frac // 10}" if frac % 10 == 0 else f"{sign}{whole}.{frac:02d}"


@functools.lru_cache(maxsize=256)
def _hostname(url: str) -> str | None:
    """``urlsplit(url).hostname`` of a referrer (a handful of distinct ones)."""
    return urlsplit(url).hostname


def _money(cents: int, currency: str) -> dict[str, Any]:
    return {"amount": _amount(cents), "currencyCode": currency}


@functools.lru_cache(maxsize=4096)
def _bag(cents: int, currency: str) -> dict[str, Any]:
    """A MoneyBag, shared between the orders with the same amount (a few thousand distinct: prices
    times quantities): resolvers' values are only read (the executors copy what they select)."""
    shop = round(cents * FX_TO_USD.get(currency, 1.0))
    return {"shopMoney": _money(shop, SHOP_CURRENCY), "presentmentMoney": _money(cents, currency)}


def _to_usd(cents: int, currency: str) -> int:
    return round(cents * FX_TO_USD.get(currency, 1.0))


def _gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def _gid_number(gid: str, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    if not gid.startswith(prefix) or not gid[len(prefix):].isdigit():
        return None
    return int(gid[len(prefix):])


def _cursor(key: Any, id_: int) -> str:
    return base64.b64encode(orjson.dumps({"last_id": id_, "last_value": key})).decode()


def _uncursor(raw: str) -> tuple[Any, int]:
    try:
        data = orjson.loads(base64.b64decode(raw.encode(), validate=True))
        return data["last_value"], int(data["last_id"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise GraphQLError("Invalid cursor for current pagination sort.",
                           extensions={"code": "BAD_REQUEST"}) from None


# -------------------------------------------------------------------------------------------
# search syntax
# -------------------------------------------------------------------------------------------

_TERM = re.compile(r"(-?)(\w+):(>=|<=|>|<)?('[^']*'|\"[^\"]*\"|\S+)|(\S+)")
_Pred = Callable[[dict[str, Any]], bool]


def _compile_search(query: str | None) -> list[_Pred]:
    """Shopify's search syntax, the subset connectors use: AND of ``field:value`` and
    ``field:>value`` terms (``>``, ``>=``, ``<``, ``<=``), quoted values, ``-field:value``."""
    preds: list[_Pred] = []
    if not query:
        return preds
    for m in _TERM.finditer(query):
        neg, name, op, raw, bare = m.groups()
        if bare is not None:
            continue  # AND / OR / free text: ignored, as Shopify ignores terms it cannot match
        value = raw.strip("'\"")
        preds.append(_term(name.lower(), op or ":", value, bool(neg)))
    return preds


def _term(name: str, op: str, value: str, neg: bool) -> _Pred:
    parsed: Any = value
    if name in ("updated_at", "created_at", "processed_at"):
        from sandbox.world import parse_time

        try:
            parsed = parse_time(value)
        except ValueError:
            parsed = None
    elif name == "id":
        parsed = int(value) if value.isdigit() else None
    else:
        parsed = value.lower()

    def test(rec: dict[str, Any]) -> bool:
        if name not in rec:
            return True  # unknown search fields are ignored (Shopify warns in extensions.search)
        got = rec[name]
        if parsed is None or got is None:
            ok = False
        elif op == ">":
            ok = got > parsed
        elif op == ">=":
            ok = got >= parsed
        elif op == "<":
            ok = got < parsed
        elif op == "<=":
            ok = got <= parsed
        elif isinstance(got, int) and isinstance(parsed, int):
            ok = got == parsed
        elif name in ("updated_at", "created_at", "processed_at"):  # a day: that whole day
            ok = parsed <= got < parsed + 86_400_000
        else:
            ok = str(got).lower() == parsed or (name == "status" and parsed == "any")
        return ok != neg

    return test


# -------------------------------------------------------------------------------------------
# the per-tick index of orders and customers
# -------------------------------------------------------------------------------------------


@dataclass
class _Index:
    tick: int
    #: order idx -> search record {id, person, created_at, updated_at, ...}
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: person idx -> order idxs
    by_person: dict[int, list[int]] = field(default_factory=dict)
    #: person idx -> customer search record (not for guests)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    sorted_cache: dict[tuple[str, str], list[tuple[Any, int]]] = field(default_factory=dict)


_ORDER_SORT = {"CREATED_AT": "created_at", "PROCESSED_AT": "created_at", "UPDATED_AT": "updated_at",
               "ORDER_NUMBER": "id", "TOTAL_PRICE": "total", "CUSTOMER_NAME": "customer_name"}
_CUSTOMER_SORT = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "NAME": "name"}
#: the fields of :meth:`ShopifyEmulator._customer_totals`
_CUSTOMER_TOTALS = ("createdAt", "updatedAt", "numberOfOrders", "amountSpent")


@dataclass
class _Bulk:
    number: int
    query: str
    document: DocumentNode
    tick: int
    created_ms: int
    status: str = "CREATED"
    completed_ms: int | None = None
    object_count: int = 0
    root_count: int = 0
    file_size: int | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: the result file, once COMPLETED
    path: str | None = None
    worker: threading.Thread | None = None
    error_code: str | None = None

    @property
    def gid(self) -> str:
        return _gid("BulkOperation", BULK_OFFSET + self.number)


class _CampaignTouch(NamedTuple):
    """The part of a :class:`~sandbox.journeys.Touch` that ``Journeys._orders`` reads."""

    at_ms: int
    campaign_idx: int | None


@dataclass(slots=True)
class _Buyer:
    """A person's shop side at one tick (:meth:`ShopifyEmulator.buyer`)."""

    #: journeys' orders, by creation
    orders: list[Any]
    guest: bool
    #: the person's names (not the person: the LRU keeps a few thousand buyers)
    first_name: str
    last_name: str
    #: the orders' ids (``ORDER_OFFSET + idx``)
    ids: list[int]
    #: their search records {id, person, created_at, updated_at, ...}, and the customer's (``None``
    #: for guests and people without orders): built on first use (:meth:`ShopifyEmulator.person_records`),
    #: as an ID-sorted page without a search needs only the ids
    records: list[dict[str, Any]] | None = None
    customer: dict[str, Any] | None = None


_NO_BUYER = _Buyer([], False, "", "", [], [], None)


class _Bucket:
    """Shopify's leaky bucket of query cost points."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.available = BUCKET_SIZE
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.available = min(BUCKET_SIZE, self.available + (now - self._last) * RESTORE_RATE)
        self._last = now

    def take(self, cost: int) -> bool:
        with self._lock:
            self._refill()
            if not self.enforce:
                return True  # limits off: an unlimited plan, the bucket stays full (connectors need not pace)
            if cost > self.available:
                return False
            self.available = max(0.0, self.available - cost)
            return True

    def refund(self, points: int) -> None:
        with self._lock:
            if self.enforce:
                self.available = min(BUCKET_SIZE, self.available + max(0, points))

    def status(self) -> dict[str, Any]:
        with self._lock:
            self._refill()
            return {"maximumAvailable": BUCKET_SIZE, "currentlyAvailable": int(self.available),
                    "restoreRate": RESTORE_RATE}


def _cost_body(bucket: _Bucket, requested: int, actual: int | None) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": bucket.status()}}


def _error(message: str, **extensions: Any) -> dict[str, Any]:
    return {"message": message, "extensions": extensions} if extensions else {"message": message}


def _format_error(err: GraphQLError) -> dict[str, Any]:
    """graphql-core's error in the shape (and, for common cases, the words) of Shopify's."""
    out: dict[str, Any] = {"message": err.message}
    if err.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations]
    if err.path:
        out["path"] = list(err.path)
    m = re.fullmatch(r"Cannot query field '(\w+)' on type '(\w+)'\.(?: .*)?", err.message)
    if m:
        out["message"] = f"Field '{m[1]}' doesn't exist on type '{m[2]}'"
        out["extensions"] = {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]}
        return out
    m = re.fullmatch(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'\.(?: .*)?", err.message)
    if m:
        out["message"] = f"Field '{m[3]}' doesn't accept argument '{m[1]}'"
        out["extensions"] = {"code": "argumentNotAccepted", "name": m[3], "typeName": "Field", "argumentName": m[1]}
        return out
    if err.extensions:
        out["extensions"] = dict(err.extensions)
    return out


def _count_objects(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_count_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_objects(v) for v in value)
    return 0


# -------------------------------------------------------------------------------------------
# the emulator
# -------------------------------------------------------------------------------------------


class ShopifyEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        from sandbox.journeys import Journeys

        self.world = world
        self.journeys = Journeys(world)
        self.bucket = _Bucket(options.rate_limits)
        self._lock = threading.Lock()
        self._indexes: dict[int, _Index] = {}
        self._bulk_lock = threading.Lock()
        self._bulks: list[_Bulk] = []
        self._storage: _Storage | None = None
        self._bulk_tmp: str | None = None
        self._root: dict[str, Any] = {
            "orders": self._orders, "order": self._order, "customers": self._customers,
            "customer": self._customer, "shop": self._shop, "currentBulkOperation": self._current_bulk,
            "bulkOperation": self._bulk_by_id, "bulkOperationRunQuery": self._bulk_run,
            "bulkOperationCancel": self._bulk_cancel,
        }
        self._records_lock = threading.Lock()
        #: (person, tick) -> that buyer: a small LRU, not an index
        self._buyers: OrderedDict[tuple[int, int], _Buyer] = OrderedDict()
        self._parsed_lock = threading.Lock()
        #: query text -> (document or None, its parse or validation errors)
        self._parsed: OrderedDict[str, tuple[DocumentNode | None, list[GraphQLError]]] = OrderedDict()

    # -- Emulator protocol -----------------------------------------------------------------------

    def close(self) -> None:
        if self._storage is not None:
            self._storage.stop()
        if self._bulk_tmp is not None:
            shutil.rmtree(self._bulk_tmp, ignore_errors=True)

    def settings(self, base_url: str) -> dict[str, str]:
        return {"base_url": base_url, "access_token": ACCESS_TOKEN, "shop": SHOP_DOMAIN, "api_version": "2025-01",
                "graphql_url": f"{base_url}/admin/api/2025-01/graphql.json"}

    def route(self, request: Request) -> str:
        if request.method == "POST" and _PATH.match(request.path):
            return "POST /admin/api/{version}/graphql.json"
        return f"{request.method} (unknown)"

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind == "rate_limit":
            body = {"errors": [_error("Throttled", code="THROTTLED")], "extensions": _cost_body(self.bucket, 0, None)}
            return Response(429, body, {"Retry-After": f"{rule.retry_after:g}"})
        if rule.kind == "expired_token":
            return Response(401, _AUTH_ERROR, {"WWW-Authenticate": 'Bearer realm="Shopify"'})
        request_id = str(uuid.uuid4())
        return Response(rule.status, {"errors": [_error(
            f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} (include "
            "this in support requests).", code="INTERNAL_SERVER_ERROR", requestId=request_id)]},
            {"X-Request-Id": request_id})

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        body = response.body
        nodes: list[dict[str, Any]] = []
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            for conn in body["data"].values():
                if isinstance(conn, dict):
                    nodes.extend(n for n in conn.get("nodes") or () if isinstance(n, dict))
                    nodes.extend(e["node"] for e in conn.get("edges") or () if isinstance(e, dict)
                                 and isinstance(e.get("node"), dict))
        if nodes:
            target = nodes[rng.randrange(len(nodes))]
            if kind == "missing_id":
                target.pop("id", None)
            else:
                for key in ("updatedAt", "createdAt"):
                    if key in target:
                        target[key] = "2026-02-31T25:61:00Z"
        return response

    def handle(self, request: Request) -> Response:
        m = _PATH.match(request.path)
        token = request.headers.get("x-shopify-access-token")
        if token != ACCESS_TOKEN:
            return Response(401, _AUTH_ERROR)
        if m is None or request.method != "POST":
            return Response(404, {"errors": "Not Found"})
        headers = {"X-Shopify-API-Version": m["version"], "X-Request-Id": str(uuid.uuid4())}
        resp = self._graphql(request)
        resp.headers.update(headers)
        return resp

    # -- GraphQL ---------------------------------------------------------------------------------

    def _graphql(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/graphql"):
                query, variables, op_name = request.body.decode(), cast(dict[str, Any], {}), None
            else:
                payload = request.json()
                if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                    return Response(400, {"errors": {"query": "Required parameter missing or invalid"}})
                query = payload["query"]
                variables = payload.get("variables") or {}
                op_name = payload.get("operationName")
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            return Response(400, {"errors": "Bad Request"})
        document, errors = self._parse(query)
        if errors:
            return Response(200, {"errors": [_format_error(e) for e in errors]})
        assert document is not None
        requested = query_cost(document, op_name, variables if isinstance(variables, dict) else {})
        if requested > MAX_QUERY_COST:
            msg = (f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n"
                   "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
                   "cost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk "
                   "operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-"
                   "operations-with-admin-api for usage details.\n")
            return Response(200, {"errors": [_error(msg, code="MAX_COST_EXCEEDED", cost=requested,
                                                    maxCost=MAX_QUERY_COST)],
                                  "extensions": _cost_body(self.bucket, requested, None)})
        if not self.bucket.take(requested):
            return Response(200, {"errors": [_error("Throttled", code="THROTTLED")],
                                  "extensions": _cost_body(self.bucket, requested, None)})
        context = {"tick": self.world.tick, "bulk": False}
        result = self._execute(document, context, variables, op_name)
        objects = context.pop("objects", None)
        actual = min(requested, max(1, _count_objects(result.data) if objects is None else objects))
        self.bucket.refund(requested - actual)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(e) for e in result.errors]
        body["data"] = result.data
        body["extensions"] = _cost_body(self.bucket, requested, actual)
        return Response(200, body, records=int(context.get("records", 0)))

    def _parse(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """The parsed document and its validation errors, through a small LRU by query text: a
        connector sends the same query with other variables page after page."""
        with self._parsed_lock:
            found = self._parsed.get(query)
            if found is not None:
                self._parsed.move_to_end(query)
                return found
        try:
            document: DocumentNode | None = parse(query)
        except GraphQLError as exc:
            found = (None, [exc])
        else:
            assert document is not None
            found = (document, validate(SCHEMA, document))
        with self._parsed_lock:
            self._parsed[query] = found
            while len(self._parsed) > _PARSED_CACHE:
                self._parsed.popitem(last=False)
        return found

    def _execute(self, document: DocumentNode, context: dict[str, Any], variables: Any,
                 op_name: str | None) -> ExecutionResult:
        """:func:`_fast_execute`, or graphql-core's ``execute`` (errors, directives, anything unusual)."""
        fast_context = dict(context)
        try:
            data = _fast_execute(document, self._root, fast_context, variables, op_name)
        except (_Unsupported, GraphQLError):
            data = None
        if data is not None:
            context.update(fast_context)
            return ExecutionResult(data, None)
        result = execute(SCHEMA, document, root_value=self._root, context_value=context,
                         variable_values=variables, operation_name=op_name)
        assert isinstance(result, ExecutionResult)
        return result

    # -- the index -------------------------------------------------------------------------------

    def index(self, tick: int | None = None) -> _Index:
        t = self.world.tick if tick is None else tick
        with self._lock:
            found = self._indexes.get(t)
            if found is not None:
                return found
            prev = max((k for k in self._indexes if k < t), default=None)
            j = self.journeys
            idx = _Index(t)
            people: Any
            if prev is None:  # every buyer (people_with_orders_since(0, t) built every person twice)
                may_buy = self.may_buy
                people = (p for p in range(self.world.people.count(t)) if may_buy(p, t))
            else:
                old = self._indexes[prev]
                changed = set(j.people_with_orders_since(self.world.ticks[prev] + 1, t))
                changed.update(range(self.world.people.count(prev), self.world.people.count(t)))
                for p, order_ids in old.by_person.items():
                    if p not in changed:
                        idx.by_person[p] = order_ids
                        for o in order_ids:
                            idx.orders[o] = old.orders[o]
                        if p in old.customers:
                            idx.customers[p] = old.customers[p]
                people = changed
            for p in people:
                self._index_person(idx, p, t)
            self._indexes[t] = idx
            for k in [k for k in self._indexes if k < t - 1]:
                del self._indexes[k]
            return idx

    def _index_person(self, idx: _Index, p: int, t: int) -> None:
        orders, customer = self.search_records(p, t)
        if not orders:
            return
        idx.by_person[p] = [r["id"] - ORDER_OFFSET for r in orders]
        for r in orders:
            idx.orders[r["id"] - ORDER_OFFSET] = r
        if customer is not None:
            idx.customers[p] = customer

    def may_buy(self, p: int, t: int) -> bool:
        """``False`` only for people who cannot have orders by tick ``t`` (see ``Journeys._orders``:
        neither a guest buyer nor ever a customer), from two hashes instead of building the person:
        four in five people are not buyers, and building them was most of an ID-sorted page."""
        # the hashes inlined (journeys' _h and world's _h): this runs for every person a page walks
        seed = self.world.seed
        if (hash((seed, _S_GUEST, p, 0)) & _M64) % 100 < GUEST_PCT:
            return True  # may be a guest buyer (Journeys.is_guest_buyer decides)
        # World.person's base stage roll: 870..974 customer, 975..989 evangelist, 990.. other (never
        # a customer); a lower stage becomes a customer only through this person's tick changes
        roll = ((hash((seed, _WORLD_S_STAGE, p)) & _M64) >> 48) % 1000
        if roll >= 990:
            return False
        if roll >= 870:
            return True
        if not t:
            return False
        space = self.world.people
        return bool(space.changes(p, t, space.created_tick(p)))

    def buyer(self, p: int, t: int, may_buy: bool = False) -> _Buyer:
        """Person ``p``'s orders, their search records and the customer's at tick ``t`` (a pure
        function of ``(p, t)``), through a small LRU: one page asks for them from the walk, the
        order nodes and the customer node, and each piece needs the same person built. ``may_buy``:
        the caller (the walk) has seen ``p`` exist and :meth:`may_buy`."""
        key = (p, t)
        with self._records_lock:
            found = self._buyers.get(key)
            if found is not None:
                self._buyers.move_to_end(key)
                return found
        if not may_buy and (not 0 <= p < self.world.people.count(t) or not self.may_buy(p, t)):
            return _NO_BUYER  # not cached: the LRU keeps buyers
        found = self._make_buyer(p, t)
        with self._records_lock:
            self._buyers[key] = found
            while len(self._buyers) > _RECORDS_CACHE:
                self._buyers.popitem(last=False)
        return found

    def _make_buyer(self, p: int, t: int) -> _Buyer:
        """``journeys.orders(p, t)`` and the records. A buyer's orders carry the campaign of the last
        touch before each (``Journeys._orders`` walks the time-ordered touches for it): hand it only
        the touches with a campaign, in the same order, instead of every touch as a record (building
        those was a third of a buyer's cost). Not buyers (no customer stage, not a guest): as is."""
        j = self.journeys
        person = self.world.person(p, t)
        # Journeys.is_guest_buyer's answer: its base stages are this person's at any later tick
        guest = j._buyer(person)[1]
        if "customer" not in person.stage_dates and not guest:
            orders = list(j._orders(person, t))
        else:
            # Journeys._orders reads the touches only for an order whose utm roll is under
            # UTM_CAMPAIGN_PCT (the others ignore the last campaign): when no order the buyer has
            # rolls that, no touches give the same orders (the touches were half of a buyer's cost)
            seed, base = self.world.seed, p * ORDER_SLOTS
            first = next((n for n in range(ORDER_SLOTS)
                          if (_journey_h(seed, _S_ORDER, base + n, -1) >> 32) % 100 < UTM_CAMPAIGN_PCT), ORDER_SLOTS)
            orders = list(j._orders(person, t, [])) if first else []
            if len(orders) > first or not first:
                evs = j._base_events(person)
                evs.sort(key=_AT)  # stable, as Journeys._touches
                evs.extend(j._tick_events(person, t))
                # _orders reads a touch's at_ms and campaign_idx only
                touches = cast(list[Touch], [_CampaignTouch(at, camp) for at, _, camp, _, _ in evs if camp is not None])
                orders = list(j._orders(person, t, touches))
        if not orders:
            return _Buyer([], guest, person.first_name, person.last_name, [], [], None)
        return _Buyer(orders, guest, person.first_name, person.last_name, [ORDER_OFFSET + o.idx for o in orders])

    def person_records(self, p: int, t: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The search records of person ``p``'s orders (by id) and of its customer (``None`` for
        guests and people without orders) at tick ``t``: a pure function of ``(p, t)``."""
        b = self.buyer(p, t)
        if b.records is None:  # two threads may both build them: the same values
            b.customer = self._customer_record(b, p)
            b.records = self._order_records(b, p)
        return b.records, b.customer

    def search_records(self, p: int, t: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """:meth:`person_records` for the index and the changed records, which visit many more
        buyers than a page shows: no order carries its campaign (the records do not read it, and
        without the touches a buyer costs half), and the buyer is not kept (it would evict the
        page's buyers from the LRU, and its orders lack their campaigns)."""
        with self._records_lock:
            cached = (p, t) in self._buyers
        if cached or not 0 <= p < self.world.people.count(t) or not self.may_buy(p, t):
            return self.person_records(p, t)
        j = self.journeys
        person = self.world.person(p, t)
        guest = j._buyer(person)[1]
        orders = list(j._orders(person, t, [])) if "customer" in person.stage_dates or guest else []
        if not orders:
            return [], None
        b = _Buyer(orders, guest, person.first_name, person.last_name, [])
        return self._order_records(b, p), self._customer_record(b, p)

    def _order_records(self, b: _Buyer, p: int) -> list[dict[str, Any]]:
        name = f"{b.last_name} {b.first_name}".lower()
        records: list[dict[str, Any]] = []
        for o in b.orders:
            total = sum(line.quantity * line.unit_price_cents for line in o.lines)
            records.append({
                "id": ORDER_OFFSET + o.idx, "person": p, "created_at": _sec(o.created_ms),
                "processed_at": _sec(o.created_ms), "updated_at": _sec(o.updated_ms),
                "email": (o.email or "").strip().lower() or None, "name": o.number.lower(),
                "test": "true" if o.test else "false", "total": _to_usd(total, o.currency),
                "status": "cancelled" if o.cancelled_ms is not None else "open", "customer_name": name})
        return records

    def _customer_record(self, b: _Buyer, p: int) -> dict[str, Any] | None:
        if b.guest or not b.orders:
            return None
        orders = b.orders
        latest = max(orders, key=lambda o: o.updated_ms)
        created = self._customer_created(p, orders)
        return {"id": CUSTOMER_OFFSET + p, "created_at": _sec(created),
                "updated_at": _sec(max(max(o.updated_ms for o in orders), created)),
                "email": (latest.email or "").strip().lower() or None,
                "name": f"{b.last_name} {b.first_name}".lower()}

    def _order_record(self, o_idx: int, t: int) -> dict[str, Any] | None:
        if o_idx < 0:
            return None
        orders, _ = self.person_records(o_idx // ORDER_SLOTS, t)
        return next((r for r in orders if r["id"] == ORDER_OFFSET + o_idx), None)

    def _people(self, t: int, start: int, descending: bool, query: str | None) -> Iterator[int]:
        """Person indexes from ``start`` (inclusive) up or down that may hold matching records: every
        person, or with an ``updated_at:>`` bound only the people with orders updated since (O(changed))."""
        count = self.world.people.count(t)
        since = _updated_since(query)
        if since is None:
            yield from (range(min(start, count - 1), -1, -1) if descending else range(max(0, start), count))
        elif descending:
            yield from reversed([p for p in self.journeys.people_with_orders_since(since, t) if p <= start])
        else:
            yield from (p for p in self.journeys.people_with_orders_since(since, t) if p >= start)

    def _changed_records(self, kind: str, t: int, query: str | None) -> dict[int, dict[str, Any]] | None:
        """id -> record of the records an ``updated_at:>`` bound after tick 0 can match (O(changed)),
        or ``None`` when the query has no such bound (then other sort keys need the index)."""
        since = _updated_since(query)
        if since is None or since <= self.world.ticks[0] - 86_400_000:  # base edits end a day before tick 0
            return None
        out: dict[int, dict[str, Any]] = {}
        for p in self.journeys.people_with_orders_since(since, t):
            orders, customer = self.search_records(p, t)
            for r in (orders if kind == "orders" else [customer] if customer is not None else []):
                out[r["id"]] = r
        return out

    def _walk(self, kind: str, t: int, after_id: int | None, descending: bool,
              query: str | None) -> Iterator[int]:
        """Ids of ``kind`` in id order (descending if asked), strictly past ``after_id``."""
        offset = ORDER_OFFSET if kind == "orders" else CUSTOMER_OFFSET
        count = self.world.people.count(t)
        if after_id is None:
            start = count - 1 if descending else 0
        else:
            n = after_id - offset
            start = (n // ORDER_SLOTS if kind == "orders" else n) if n >= 0 else (-1 if descending else 0)
        may_buy, buyer, orders = self.may_buy, self.buyer, kind == "orders"
        for p in self._people(t, start, descending, query):
            if not may_buy(p, t):
                continue
            b = buyer(p, t, True)
            ids = b.ids if orders else [CUSTOMER_OFFSET + p] if b.ids and not b.guest else []
            for i in (reversed(ids) if descending else ids):
                if after_id is not None and (i >= after_id if descending else i <= after_id):
                    continue
                yield i

    def _id_window(self, kind: str, t: int, preds: list[_Pred], query: str | None, size: int, forward: bool,
                   reverse: bool, after: str | None, before: str | None) -> tuple[list[tuple[Any, int]], bool, bool]:
        """:meth:`_window` for the ID sort without an index: walk the person indexes from the cursor."""
        after_id = _uncursor(after)[1] if after else None
        before_id = _uncursor(before)[1] if before else None
        # display order is ascending ids unless reversed; a backward page walks display order backwards
        descending = reverse == forward
        start_id, stop_id = (after_id, before_id) if forward else (before_id, after_id)
        page: list[tuple[Any, int]] = []
        offset = ORDER_OFFSET if kind == "orders" else CUSTOMER_OFFSET
        for i in self._walk(kind, t, start_id, descending, query):
            if stop_id is not None and (i <= stop_id if descending else i >= stop_id):
                break
            if preds:
                person = (i - offset) // ORDER_SLOTS if kind == "orders" else i - offset
                orders, customer = self.person_records(person, t)
                r = next(r for r in orders if r["id"] == i) if kind == "orders" else customer
                assert r is not None
                if not all(p(r) for p in preds):
                    continue
            if len(page) == size:
                page.append((i, i))
                break
            page.append((i, i))
        more = len(page) > size
        page = page[:size]
        if forward:
            return page, more, after is not None
        return list(reversed(page)), before is not None, more

    def _customer_created(self, p: int, orders: list[Any]) -> int:
        first = min(o.created_ms for o in orders)
        return first - _h(self.world.seed, _SALT + 1, p) % 3_600_000

    def _sorted(self, idx: _Index, kind: str, key: str) -> list[tuple[Any, int]]:
        cached = idx.sorted_cache.get((kind, key))
        if cached is None:
            records = idx.orders.values() if kind == "orders" else idx.customers.values()
            cached = sorted((r[key], r["id"]) for r in records)
            idx.sorted_cache[(kind, key)] = cached
        return cached

    # -- connections -----------------------------------------------------------------------------

    @staticmethod
    def _page_args(info: GraphQLResolveInfo, args: dict[str, Any]) -> tuple[int, bool]:
        """(page size, forward?) of a connection, with Shopify's argument errors."""
        first, last = args.get("first"), args.get("last")
        bulk = info.context.get("bulk")
        if bulk:
            return MAX_PAGE, True
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
        if first is not None and last is not None:
            raise GraphQLError("providing both first and last is not supported", extensions={"code": "BAD_REQUEST"})
        size = first if first is not None else last
        assert isinstance(size, int)
        if size > MAX_PAGE or size < 0:
            raise GraphQLError(f"The maximum page size is {MAX_PAGE} items; got {size}.",
                               extensions={"code": "MAX_PAGE_SIZE_EXCEEDED"})
        return size, first is not None

    def _window(self, items: list[tuple[Any, int]], records: Callable[[int], dict[str, Any]],
                preds: list[_Pred], size: int, forward: bool, reverse: bool, after: str | None,
                before: str | None) -> tuple[list[tuple[Any, int]], bool, bool]:
        """The page of ``items`` (ascending (sort value, id)) that matches ``preds``: the page in
        display order, hasNextPage, hasPreviousPage."""
        n = len(items)

        # positions in display order: display i -> items[i] or items[n - 1 - i] when reversed
        def at(i: int) -> tuple[Any, int]:
            return items[n - 1 - i] if reverse else items[i]

        def position_after(raw: str) -> int:
            key = _uncursor(raw)
            return n - bisect.bisect_left(items, key) if reverse else bisect.bisect_right(items, key)

        def position_before(raw: str) -> int:
            key = _uncursor(raw)
            return n - bisect.bisect_right(items, key) if reverse else bisect.bisect_left(items, key)

        lo = position_after(after) if after else 0
        hi = position_before(before) if before else n
        page: list[tuple[Any, int]] = []

        def ok(item: tuple[Any, int]) -> bool:
            return all(p(records(item[1])) for p in preds)

        if forward:
            i = lo
            while i < hi and len(page) <= size:
                if ok(at(i)):
                    page.append(at(i))
                i += 1
            more = len(page) > size
            return page[:size], more, lo > 0
        i = hi - 1
        while i >= lo and len(page) <= size:
            if ok(at(i)):
                page.append(at(i))
            i -= 1
        more = len(page) > size
        return list(reversed(page[:size])), hi < n, more

    def _connection(self, info: GraphQLResolveInfo, args: dict[str, Any], items: list[tuple[Any, int]] | None,
                    records: Callable[[int], dict[str, Any]], build: Callable[[list[int]], list[dict[str, Any]]],
                    walk: str | None = None) -> dict[str, Any]:
        size, forward = self._page_args(info, args)
        ctx = info.context
        top = info.path.prev is None
        after = args.get("after")
        if ctx.get("bulk"):
            after = ctx.get("after") if top else None
            if not top:
                size = len(items or ())
        preds = _compile_search(args.get("query"))
        if items is None:
            assert walk is not None
            page, has_next, has_prev = self._id_window(walk, ctx["tick"], preds, args.get("query"), size, forward,
                                                       bool(args.get("reverse")), after, args.get("before"))
        elif ctx.get("bulk") and not top and not preds and not args.get("reverse") and not args.get("before"):
            page, has_next, has_prev = items, False, False  # _window's answer: every item, in order
        else:
            page, has_next, has_prev = self._window(items, records, preds, size, forward,
                                                    bool(args.get("reverse")), after, args.get("before"))
        nodes = build([id_ for _, id_ in page]) if page else []
        if getattr(info, "split", False):  # (GraphQLResolveInfo has no split) a bulk row reads the nodes only
            ctx["records"] = ctx.get("records", 0) + len(nodes)
            if top and ctx.get("bulk"):
                ctx["page"] = {"hasNextPage": has_next, "endCursor": _cursor(*page[-1]) if page else None}
            return {"nodes": nodes}
        cursors = [_cursor(key, id_) for key, id_ in page]
        ctx["records"] = ctx.get("records", 0) + len(nodes)
        if top and ctx.get("bulk"):
            ctx["page"] = {"hasNextPage": has_next, "endCursor": cursors[-1] if cursors else None}
        return {"edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)], "nodes": nodes,
                "pageInfo": {"hasNextPage": has_next, "hasPreviousPage": has_prev,
                             "startCursor": cursors[0] if cursors else None,
                             "endCursor": cursors[-1] if cursors else None}}

    def _orders(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        tick = info.context["tick"]
        key = _ORDER_SORT.get(args.get("sortKey") or "ID", "id")
        if key == "id":  # ids follow the person index: no index needed
            return self._connection(info, args, None, lambda i: {},
                                    lambda ids: self._order_nodes([i - ORDER_OFFSET for i in ids], tick), "orders")
        changed = self._changed_records("orders", tick, args.get("query"))
        if changed is not None:  # an incremental sync: sort only the records changed since
            return self._connection(info, args, sorted((r[key], i) for i, r in changed.items()),
                                    changed.__getitem__,
                                    lambda ids: self._order_nodes([i - ORDER_OFFSET for i in ids], tick))
        idx = self.index(tick)
        return self._connection(info, args, self._sorted(idx, "orders", key),
                                lambda i: idx.orders[i - ORDER_OFFSET],
                                lambda ids: self._order_nodes([i - ORDER_OFFSET for i in ids], tick), )

    def _customers(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        tick = info.context["tick"]
        key = _CUSTOMER_SORT.get(args.get("sortKey") or "ID", "id")
        if key == "id":
            return self._connection(info, args, None, lambda i: {},
                                    lambda ids: [self._customer_node(i - CUSTOMER_OFFSET, tick) for i in ids],
                                    "customers")
        changed = self._changed_records("customers", tick, args.get("query"))
        if changed is not None:
            return self._connection(info, args, sorted((r[key], i) for i, r in changed.items()),
                                    changed.__getitem__,
                                    lambda ids: [self._customer_node(i - CUSTOMER_OFFSET, tick) for i in ids])
        idx = self.index(tick)
        return self._connection(info, args, self._sorted(idx, "customers", key),
                                lambda i: idx.customers[i - CUSTOMER_OFFSET],
                                lambda ids: [self._customer_node(i - CUSTOMER_OFFSET, tick) for i in ids])

    def _order(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
        tick = info.context["tick"]
        n = _gid_number(id, "Order")
        if n is None or self._order_record(n - ORDER_OFFSET, tick) is None:
            return None
        return self._order_nodes([n - ORDER_OFFSET], tick)[0]

    def _customer(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
        tick = info.context["tick"]
        n = _gid_number(id, "Customer")
        if n is None or self.person_records(n - CUSTOMER_OFFSET, tick)[1] is None:
            return None
        return self._customer_node(n - CUSTOMER_OFFSET, tick)

    @staticmethod
    def _shop(info: GraphQLResolveInfo) -> dict[str, Any]:
        return {"id": _gid("Shop", 60_000_000_001), "name": "Factoryline Sandbox Store", "email": "shop@factoryline.io",
                "myshopifyDomain": SHOP_DOMAIN, "currencyCode": SHOP_CURRENCY, "ianaTimezone": "Etc/UTC"}

    # -- nodes -----------------------------------------------------------------------------------

    def _order_nodes(self, order_idxs: list[int], tick: int) -> list[dict[str, Any]]:
        by_person: dict[int, tuple[dict[int, Any], list[int], bool]] = {}
        out = []
        for o_idx in order_idxs:
            p = o_idx // ORDER_SLOTS
            found = by_person.get(p)
            if found is None:
                b = self.buyer(p, tick)
                orders = {o.idx: o for o in b.orders}
                found = by_person[p] = (orders, list(orders), b.guest)
            out.append(self._order_node(found[0][o_idx], found[1], found[2], tick))
        return out

    def _order_node(self, o: Any, siblings: list[int], guest: bool, tick: int) -> dict[str, Any]:
        total = sum(line.quantity * line.unit_price_cents for line in o.lines)
        cancelled = o.cancelled_ms is not None
        h = _h(self.world.seed, _SALT + 2, o.idx)
        if cancelled:
            financial = "REFUNDED"
        else:
            financial = ("PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PENDING",
                         "PARTIALLY_REFUNDED")[h % 10]
        fulfilled = not cancelled and self.world.ticks[tick] - o.created_ms > 3 * 86_400_000
        customer_p = None if guest else o.person_idx
        tags = ["test"] if o.test else []
        if h % 7 == 0:
            tags.append("wholesale")
        created, cancelled_at = _dt(o.created_ms), _dt(o.cancelled_ms)
        bag, zero = _bag(total, o.currency), _bag(0, o.currency)
        return {
            "id": _gid("Order", ORDER_OFFSET + o.idx), "legacyResourceId": str(ORDER_OFFSET + o.idx),
            "name": o.number, "email": o.email, "phone": None,
            "createdAt": created, "updatedAt": _dt(o.updated_ms), "processedAt": created,
            "cancelledAt": cancelled_at, "closedAt": cancelled_at,
            "cancelReason": "CUSTOMER" if cancelled else None, "closed": cancelled, "test": o.test,
            "confirmed": True, "sourceName": "web", "displayFinancialStatus": financial,
            "displayFulfillmentStatus": "FULFILLED" if fulfilled else "UNFULFILLED",
            "currencyCode": SHOP_CURRENCY, "presentmentCurrencyCode": o.currency,
            # _bag's shared values (an LRU hit each), cheaper than a resolver that builds them
            "totalPriceSet": bag, "subtotalPriceSet": bag, "currentTotalPriceSet": zero if cancelled else bag,
            "totalDiscountsSet": zero, "totalTaxSet": zero,
            "customer": (lambda info: self._customer_node(customer_p, tick, True)) if customer_p is not None else None,
            "customerJourneySummary": lambda info: self._journey(o, siblings),
            "lineItems": lambda info, **args: self._lines(info, args, o),
            "tags": tags, "note": None,
        }

    def _journey(self, o: Any, siblings: list[int]) -> dict[str, Any]:
        visit: dict[str, Any] | None = None
        if o.landing_site or o.referring_site:
            landing = o.landing_site
            if landing and landing.startswith("/"):
                landing = f"https://{SHOP_DOMAIN}{landing}"
            utm = None
            if o.utm_source or o.utm_medium or o.utm_campaign:
                utm = {"source": o.utm_source, "medium": o.utm_medium, "campaign": o.utm_campaign, "content": None,
                       "term": None}
            referrer = o.referring_site or None
            source = o.utm_source or (_hostname(referrer) if referrer else None) or "direct"
            visit = {"id": _gid("CustomerVisit", 90_000_000_000 + o.idx), "landingPage": landing,
                     "landingPageHtml": None, "referrerUrl": referrer, "referralCode": None, "source": source,
                     "sourceType": "SEARCH" if o.utm_medium in ("cpc", "organic") else None,
                     "sourceDescription": None,
                     "occurredAt": _dt(o.created_ms - _h(self.world.seed, _SALT + 3, o.idx) % 86_400_000),
                     "utmParameters": utm}
        return {"ready": True, "customerOrderIndex": siblings.index(o.idx) if o.idx in siblings else 0,
                "daysToConversion": 0 if visit else None, "momentsCount": 1 if visit else 0,
                "firstVisit": visit, "lastVisit": visit}

    def _lines(self, info: GraphQLResolveInfo, args: dict[str, Any], o: Any) -> dict[str, Any]:
        first = LINE_OFFSET + 100 * o.idx
        lines = {first + k: line for k, line in enumerate(o.lines)}
        cancelled = o.cancelled_ms is not None

        def build(ids: Iterable[int]) -> list[dict[str, Any]]:
            out = []
            for i in ids:
                line = lines[i]
                unit = _bag(line.unit_price_cents, o.currency)
                out.append({"id": _gid("LineItem", i), "sku": line.sku, "title": line.title, "name": line.title,
                            "quantity": line.quantity, "currentQuantity": 0 if cancelled else line.quantity,
                            "variantTitle": None, "vendor": "Factoryline",
                            "originalUnitPriceSet": unit, "discountedUnitPriceSet": unit,
                            "originalTotalSet": _bag(line.unit_price_cents * line.quantity, o.currency)})
            return out

        ctx = info.context
        if getattr(info, "split", False) and ctx.get("bulk") and not (
                args.get("query") or args.get("reverse") or args.get("before")):
            # a bulk row's nested lines (_connection's answer for them: every line, nodes only)
            nodes = build(lines)
            ctx["records"] = ctx.get("records", 0) + len(nodes)
            return {"nodes": nodes}
        return self._connection(info, args, [(i, i) for i in lines], lambda i: {}, build)

    def _customer_node(self, p: int, tick: int, lazy: bool = False) -> dict[str, Any]:
        """Customer ``p``'s node; ``lazy`` (an order's customer, which queries select as ``{ id
        email }``): the fields that read every order (dates, counts, amount) are resolvers."""
        b = self.buyer(p, tick)
        latest = max(b.orders, key=lambda o: o.updated_ms)
        state = "DISABLED" if _h(self.world.seed, _SALT + 4, p) % 3 else "ENABLED"
        node = {
            "id": _gid("Customer", CUSTOMER_OFFSET + p), "legacyResourceId": str(CUSTOMER_OFFSET + p),
            "email": latest.email, "firstName": b.first_name, "lastName": b.last_name,
            "displayName": f"{b.first_name} {b.last_name}", "phone": None, "state": state,
            "verifiedEmail": state == "ENABLED", "tags": [], "note": None,
            "orders": lambda info, **args: self._customer_orders(info, args, p, tick),
        }
        if lazy:
            for key in _CUSTOMER_TOTALS:
                node[key] = lambda info, key=key: self._customer_totals(b, p)[key]
        else:
            node.update(self._customer_totals(b, p))
        return node

    def _customer_totals(self, b: _Buyer, p: int) -> dict[str, Any]:
        """The customer fields that read every order (:data:`_CUSTOMER_TOTALS`)."""
        # the customer's record alone (person_records also builds every order's)
        rec = b.customer if b.records is not None else self._customer_record(b, p)
        assert rec is not None
        real = [o for o in b.orders if not o.test]
        spent = sum(_to_usd(sum(li.quantity * li.unit_price_cents for li in o.lines), o.currency)
                    for o in real if o.cancelled_ms is None)
        return {"createdAt": _dt(rec["created_at"]), "updatedAt": _dt(rec["updated_at"]),
                "numberOfOrders": str(len(real)), "amountSpent": _money(spent, SHOP_CURRENCY)}

    def _customer_orders(self, info: GraphQLResolveInfo, args: dict[str, Any], p: int, tick: int) -> dict[str, Any]:
        key = _ORDER_SORT.get(args.get("sortKey") or "ID", "id")
        records = {r["id"]: r for r in self.person_records(p, tick)[0]}
        items = sorted((r[key], i) for i, r in records.items())
        return self._connection(info, args, items, lambda i: records[i],
                                lambda ids: self._order_nodes([i - ORDER_OFFSET for i in ids], tick))

    # -- bulk operations -------------------------------------------------------------------------

    def _bulk_node(self, op: _Bulk, advance: bool) -> dict[str, Any]:
        if advance:
            self._step(op)
        url = None
        if op.status == "COMPLETED" and op.object_count:
            url = self._storage_url(op)
        return {"id": op.gid, "status": op.status, "errorCode": op.error_code, "createdAt": _dt(op.created_ms),
                "completedAt": _dt(op.completed_ms), "objectCount": str(op.object_count),
                "rootObjectCount": str(op.root_count), "fileSize": None if op.file_size is None else str(op.file_size),
                "url": url, "partialDataUrl": None, "query": op.query, "type": "QUERY"}

    def _step(self, op: _Bulk) -> None:
        """One poll: CREATED -> RUNNING starts writing the result in the background (as Shopify runs
        it asynchronously); a poll while RUNNING waits up to a second for it, then reports."""
        with self._bulk_lock:
            if op.status == "CREATED":
                op.status = "RUNNING"
                op.worker = threading.Thread(target=self._write_result, args=(op,), daemon=True,
                                             name=f"sandbox-shopify-bulk-{op.number}")
                op.worker.start()
                return
            worker = op.worker if op.status == "RUNNING" else None
        if worker is not None:
            worker.join(timeout=_POLL_WAIT)

    def _write_result(self, op: _Bulk) -> None:
        objects = roots = size = 0
        # the result is written once, as at Shopify: downloads stream the file (flat memory) instead
        # of executing the whole query again for every reader
        fd, path = tempfile.mkstemp(prefix=f"bulk-{op.number}-", suffix=".jsonl", dir=self._bulk_dir())
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as out:
                for line in self.bulk_lines(op):
                    objects += 1
                    roots += b'"__parentId"' not in line
                    size += len(line)
                    out.write(line)
        except Exception:
            with self._bulk_lock:
                if op.status == "RUNNING":
                    op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            os.unlink(path)
            return
        with self._bulk_lock:
            if op.status == "RUNNING":
                op.object_count, op.root_count, op.file_size = objects, roots, size
                op.completed_ms = int(time.time() * 1000)
                op.path = path
                op.status = "COMPLETED"
                return
        os.unlink(path)  # cancelled meanwhile

    def _bulk_dir(self) -> str:
        with self._bulk_lock:
            if self._bulk_tmp is None:
                self._bulk_tmp = tempfile.mkdtemp(prefix="sandbox-shopify-bulk-")
            return self._bulk_tmp

    def bulk_chunks(self, op: _Bulk, size: int = 65_536) -> Iterator[bytes]:
        """The bulk result file in chunks of about ``size`` bytes."""
        if op.path is not None and os.path.exists(op.path):
            with open(op.path, "rb") as f:
                while chunk := f.read(size):
                    yield chunk
            return
        buf = bytearray()
        for line in self.bulk_lines(op):
            buf += line
            if len(buf) >= size:
                yield bytes(buf)
                buf.clear()
        if buf:
            yield bytes(buf)

    def _current_bulk(self, info: GraphQLResolveInfo, type: str = "QUERY") -> dict[str, Any] | None:
        if type != "QUERY" or not self._bulks:
            return None
        return self._bulk_node(self._bulks[-1], True)

    def _bulk_by_id(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
        n = _gid_number(id, "BulkOperation")
        for op in self._bulks:
            if n == BULK_OFFSET + op.number:
                return self._bulk_node(op, True)
        return None

    def _bulk_cancel(self, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:
        n = _gid_number(id, "BulkOperation")
        for op in self._bulks:
            if n == BULK_OFFSET + op.number:
                with self._bulk_lock:
                    if op.status in ("CREATED", "RUNNING"):
                        op.status = "CANCELED"
                        return {"bulkOperation": self._bulk_node(op, False), "userErrors": []}
                return {"bulkOperation": self._bulk_node(op, False), "userErrors": [
                    {"field": None, "message": f"A bulk operation cannot be canceled when it is {op.status.lower()}",
                     "code": None}]}
        return {"bulkOperation": None, "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist",
                                                       "code": None}]}

    def _bulk_run(self, info: GraphQLResolveInfo, query: str, groupObjects: bool = False) -> dict[str, Any]:
        def user_error(message: str, code: str = "INVALID") -> dict[str, Any]:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": message, "code": code}]}

        with self._bulk_lock:
            running = next((b for b in self._bulks if b.status in ("CREATED", "RUNNING")), None)
        if running is not None:
            return {"bulkOperation": None, "userErrors": [{
                "field": None, "code": "OPERATION_IN_PROGRESS",
                "message": f"A bulk query operation for this app and shop is already in progress: {running.gid}."}]}
        try:
            document = parse(query)
        except GraphQLError as exc:
            return user_error(f"Invalid bulk query: {exc.message}")
        errors = validate(SCHEMA, document)
        if errors:
            return user_error(f"Invalid bulk query: {_format_error(errors[0])['message']}")
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation.value != "query":
            return user_error("Bulk queries must contain exactly one query operation.")
        top = [s for s in ops[0].selection_set.selections if isinstance(s, FieldNode)]
        if len(top) != 1 or top[0].name.value not in ("orders", "customers"):
            return user_error("Bulk queries must contain at least one connection.")
        problem = _nested_connection_problem(top[0])
        if problem:
            return user_error(problem)
        with self._bulk_lock:
            op = _Bulk(len(self._bulks) + 1, query, document, info.context["tick"], int(time.time() * 1000))
            self._bulks.append(op)
        return {"bulkOperation": self._bulk_node(op, False), "userErrors": []}

    def bulk_lines(self, op: _Bulk) -> Iterator[bytes]:
        """The JSONL of a bulk operation, one page of 250 root objects at a time: the rows straight
        from the resolvers' values (:class:`_BulkRows`), or, for a query it does not handle or a page
        whose resolver raises, the executed page flattened (the same lines)."""
        after: str | None = None
        try:
            rows: _BulkRows | None = _BulkRows(op.document)
        except _Unsupported:
            rows = None
        while True:
            context: dict[str, Any] = {"tick": op.tick, "bulk": True, "after": after}
            lines: list[bytes] | None = None
            if rows is not None:
                try:
                    lines = rows.page(self._root, context)
                except (_Unsupported, GraphQLError):
                    context = {"tick": op.tick, "bulk": True, "after": after}
            if lines is not None:
                yield from lines
            else:
                result = self._execute(op.document, context, {}, None)
                if result.errors or not result.data:
                    return
                conn = next(iter(result.data.values()))
                nodes = conn.get("nodes") or [e["node"] for e in conn.get("edges") or ()]
                for node in nodes:
                    yield from _flatten(node, None)
            page = context.get("page") or {}
            if not page.get("hasNextPage"):
                return
            after = page["endCursor"]

    def _storage_url(self, op: _Bulk) -> str:
        with self._bulk_lock:
            if self._storage is None:
                self._storage = _Storage(self)
        expires = int(time.time()) + 7 * 86_400
        return (f"{self._storage.base_url}/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/{op.token}-final"
                f"?GoogleAccessId=sandbox%40shopify-tiers.iam.gserviceaccount.com&Expires={expires}"
                f"&Signature=sandbox&response-content-type=application%2Fjsonl")

    def bulk_for_token(self, token: str) -> _Bulk | None:
        return next((b for b in self._bulks if b.token == token and b.status == "COMPLETED"), None)


# -------------------------------------------------------------------------------------------
# a fast executor for the queries connectors send
# -------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """The fast executor does not handle this request: graphql-core executes it."""


class _Plan(NamedTuple):
    """How :func:`_fast_execute` selects the fields of one selection set on one type."""

    type_name: str
    #: (name, response key, definition or None for __typename, shape, its type, node): the shape is
    #: -1 __typename, 0 a leaf, 1 an object, 2 a list of objects, 3 anything else
    entries: list[tuple[str, str, Any, int, Any, FieldNode]]
    names: tuple[str, ...]
    keys: tuple[str, ...]
    #: response keys of the leaves
    leaf_keys: tuple[str, ...]
    #: the entries that are not leaves
    rest: list[tuple[str, str, Any, int, Any, FieldNode]]


class _Path(NamedTuple):
    """A response path (``info.path``): a tuple, as one is made for every field served."""

    prev: Any
    key: str


class _Info(NamedTuple):
    """The part of ``GraphQLResolveInfo`` the resolvers read: ``context`` and ``path.prev`` (a
    tuple: a frozen dataclass took a microsecond to make, and one is made for every resolver call)."""

    context: dict[str, Any]
    path: _Path
    #: set by :class:`_BulkRows` for a connection whose nodes become rows of their own: it reads
    #: only the nodes, so the resolver may leave out cursors and pageInfo (``{"nodes": [...]}``)
    split: bool = False


#: the path :class:`_BulkRows` hands every resolver below the root: the resolvers read only
#: whether a field is the root's (``info.path.prev is None``), so one path stands for all
_BELOW_ROOT = _Path(_Path(None, ""), "")


def _fields_of(selection_set: SelectionSetNode, type_name: str,
               fragments: dict[str, FragmentDefinitionNode]) -> list[FieldNode]:
    """The fields a selection asks of ``type_name``, inline fragments and named ones spread out."""
    out: list[FieldNode] = []
    for sel in selection_set.selections:
        if sel.directives:
            raise _Unsupported("directives")
        if isinstance(sel, FieldNode):
            out.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            if sel.type_condition is None or sel.type_condition.name.value == type_name:
                out.extend(_fields_of(sel.selection_set, type_name, fragments))
        elif isinstance(sel, FragmentSpreadNode):
            frag = fragments.get(sel.name.value)
            if frag is None:
                raise _Unsupported("fragment")
            if frag.type_condition.name.value == type_name:
                out.extend(_fields_of(frag.selection_set, type_name, fragments))
    return out


def _fast_execute(document: DocumentNode, root: dict[str, Any], context: dict[str, Any], variables: Any,
                  op_name: str | None) -> dict[str, Any] | None:
    """Execute a validated document over the resolver dicts without graphql-core's executor.

    graphql-core spends most of a page's time completing values field by field through its
    generic machinery; the schema served here has only objects, lists, scalars and enums (no
    interfaces, unions or custom serialisers), so a direct walk gives the same ``data``. Raises
    :class:`_Unsupported` for directives, repeated response keys and variable errors, and lets a
    resolver's ``GraphQLError`` through: the caller then runs graphql-core, which reports them.
    """
    from graphql import GraphQLList, GraphQLNonNull, get_argument_values, get_variable_values

    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if op_name is None or (o.name and o.name.value == op_name)), None)
    if op is None or (op_name is None and len(ops) > 1):
        raise _Unsupported("operation")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    coerced = get_variable_values(SCHEMA, op.variable_definitions or (), dict(variables or {}))
    if isinstance(coerced, list):
        raise _Unsupported("variables")
    root_type = SCHEMA.mutation_type if op.operation.value == "mutation" else SCHEMA.query_type
    assert root_type is not None

    def fields_of(selection_set: SelectionSetNode, type_name: str) -> list[FieldNode]:
        return _fields_of(selection_set, type_name, fragments)

    def complete(value: Any, gtype: Any, node: FieldNode, path: _Path) -> Any:
        if value is None:
            return None
        if isinstance(gtype, GraphQLNonNull):
            gtype = gtype.of_type
        if isinstance(gtype, GraphQLList):
            return [complete(v, gtype.of_type, node, path) for v in value]
        if isinstance(gtype, GraphQLObjectType):
            assert node.selection_set is not None
            return select(value, gtype, node.selection_set, path)
        return value  # scalars and enums are served already serialised

    #: id(selection set) -> its _Plan: worked out once per query, not for every object of a page
    plans: dict[int, _Plan] = {}
    #: id(field node) -> its coerced arguments (the variables are fixed for this execution)
    arg_values: dict[int, dict[str, Any]] = {}
    #: objects in ``data`` (the cost's actualQueryCost)
    objects = 0

    def plan(selection_set: SelectionSetNode, otype: GraphQLObjectType) -> _Plan:
        found = plans.get(id(selection_set))
        if found is not None and found.type_name == otype.name:
            return found
        out: list[tuple[str, str, Any, int, Any, FieldNode]] = []
        keys: set[str] = set()
        for node in fields_of(selection_set, otype.name):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if key in keys:
                raise _Unsupported("repeated response key")
            keys.add(key)
            if name == "__typename":
                out.append((name, key, None, -1, None, node))
                continue
            fdef = otype.fields[name]
            kind, sub = _shape(fdef.type)
            out.append((name, key, fdef, kind, sub if kind != 3 else fdef.type, node))
        found = plans[id(selection_set)] = _Plan(
            otype.name, out, tuple(e[0] for e in out), tuple(e[1] for e in out),
            tuple(e[1] for e in out if e[3] == 0), [e for e in out if e[3] != 0])
        return found

    def resolve(value: Any, key: str, fdef: Any, node: FieldNode, prev: Any) -> tuple[Any, _Path]:
        """A resolver's value (``value`` is callable) and its path."""
        path = _Path(prev, key)
        if fdef.args:
            args = arg_values.get(id(node))
            if args is None:
                args = arg_values[id(node)] = get_argument_values(fdef, node, coerced)
            return value(_Info(context, path), **args), path
        return value(_Info(context, path)), path

    def select(obj: Any, otype: GraphQLObjectType, selection_set: SelectionSetNode, prev: Any) -> dict[str, Any]:
        nonlocal objects
        objects += 1
        p = plan(selection_set, otype)
        out: dict[str, Any]
        if type(obj) is dict:
            # every field's raw value in one C-level pass (in selection order), then the objects,
            # lists and resolvers replace theirs in place (a dict keeps a key's position)
            out = dict(zip(p.keys, map(obj.get, p.names), strict=True))
            if not any(map(callable, map(out.__getitem__, p.leaf_keys))):
                for _name, key, fdef, kind, sub, node in p.rest:
                    if kind < 0:
                        out[key] = otype.name
                        continue
                    value = out[key]
                    if value is None:
                        continue
                    if callable(value):
                        value, path = resolve(value, key, fdef, node, prev)
                        if value is None:
                            out[key] = None
                            continue
                    else:
                        path = _Path(prev, key)
                    out[key] = complete_as(value, kind, sub, node, path)
                return out
        out = {}  # an object, or a resolver among the scalars: field by field
        for name, key, fdef, kind, sub, node in p.entries:
            if kind < 0:
                out[key] = otype.name
                continue
            value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
            if callable(value):
                value, path = resolve(value, key, fdef, node, prev)
            else:
                path = _Path(prev, key)
            if kind == 0 or value is None:
                out[key] = value
                continue
            out[key] = complete_as(value, kind, sub, node, path)
        return out

    def complete_as(value: Any, kind: int, sub: Any, node: FieldNode, path: _Path) -> Any:
        """A non-null object (1), list of objects (2) or other non-leaf (3) value, completed."""
        sel = node.selection_set
        if kind == 1:
            assert sel is not None
            return select(value, sub, sel, path)
        if kind == 2:
            assert sel is not None
            return [None if v is None else select(v, sub, sel, path) for v in value]
        return complete(value, sub, node, path)

    data = select(root, root_type, op.selection_set, None)
    context["objects"] = objects
    return data


_CONNECTION_KEYS = frozenset(("edges", "nodes", "pageInfo"))


def _shape(gtype: Any) -> tuple[int, Any]:
    """How a field's values complete: (0, None) a leaf (scalar or enum, served as it is), (1, type)
    an object, (2, type) a list of objects, (3, type) anything else (``complete`` in
    :func:`_fast_execute`)."""
    from graphql import GraphQLList, GraphQLNonNull

    if isinstance(gtype, GraphQLNonNull):
        gtype = gtype.of_type
    if isinstance(gtype, GraphQLObjectType):
        return 1, gtype
    if isinstance(gtype, GraphQLList):
        inner = gtype.of_type.of_type if isinstance(gtype.of_type, GraphQLNonNull) else gtype.of_type
        return (2, inner) if isinstance(inner, GraphQLObjectType) else (3, gtype)
    return 0, None


def _complete_leaves(value: Any, gtype: Any) -> Any:
    """:func:`_fast_execute`'s ``complete`` of a value without objects (lists of scalars)."""
    from graphql import GraphQLList, GraphQLNonNull

    if value is None:
        return None
    if isinstance(gtype, GraphQLNonNull):
        gtype = gtype.of_type
    if isinstance(gtype, GraphQLList):
        return [_complete_leaves(v, gtype.of_type) for v in value]
    if isinstance(gtype, GraphQLObjectType):
        raise _Unsupported("objects in a list of lists")
    return value


def _leaf_list(gtype: Any) -> bool:
    """A list of scalars or enums (not of lists or objects), nullable or not."""
    from graphql import GraphQLList, GraphQLNonNull

    if isinstance(gtype, GraphQLNonNull):
        gtype = gtype.of_type
    if not isinstance(gtype, GraphQLList):
        return False
    inner = gtype.of_type.of_type if isinstance(gtype.of_type, GraphQLNonNull) else gtype.of_type
    return not isinstance(inner, GraphQLList | GraphQLObjectType)


def _flatten(node: dict[str, Any], parent_id: str | None) -> Iterator[bytes]:
    row: dict[str, Any] = {}
    children: list[dict[str, Any]] = []
    for key, value in node.items():
        if type(value) is dict and ("edges" in value or "nodes" in value) and value.keys() <= _CONNECTION_KEYS:
            children.append(value)  # a nested connection: its nodes are rows of their own
        else:
            row[key] = value
    if parent_id is not None:
        row["__parentId"] = parent_id
    yield orjson.dumps(row) + b"\n"
    for conn in children:
        for child in conn.get("nodes") or [e["node"] for e in conn.get("edges") or ()]:
            yield from _flatten(child, node.get("id"))


#: a planned field: (name, response key, definition or None for __typename, shape as in _Plan or 4
#: for a list of leaves, its
#: type (the object's type name for __typename), node, sub-plan of an object or list of objects,
#: connection parts) where the connection parts (:meth:`_BulkRows.connection_parts`) are set for a
#: value _flatten splits off a row (a connection selecting only edges/nodes/pageInfo)
_RowEntry = tuple[str, str, Any, int, Any, FieldNode, Any, Any]


class _RowPlan(NamedTuple):
    """The fields :class:`_BulkRows` selects on one type (as :class:`_Plan`)."""

    entries: list[_RowEntry]
    names: tuple[str, ...]
    keys: tuple[str, ...]
    leaf_keys: tuple[str, ...]
    rest: list[_RowEntry]
    #: an object's values of ``names``, a tuple (KeyError if one is missing)
    values: Callable[[Any], tuple[Any, ...]]
    #: the leaves' among those values
    leaves: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    #: a MoneyBag: :func:`_bag`'s values, shared between orders and never changed, so the same
    #: value fills the same way (:meth:`_BulkRows.fill` keeps its answers)
    shared: bool


def _getter(items: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``itemgetter(*items)`` that always answers a tuple (itemgetter of one item answers the item)."""
    if len(items) > 1:
        return itemgetter(*items)
    if items:
        one = items[0]
        return lambda obj: (obj[one],)
    return lambda obj: ()


class _BulkRows:
    """The JSONL lines of a bulk query's pages built straight from the resolvers' values.

    The same lines as :func:`_fast_execute` then :func:`_flatten` (the same resolver calls in the
    same order, the same values and key order), without completing each object through the generic
    walk and then walking the result again: a nested connection's nodes become rows directly, and
    each row is encoded once. The constructor raises :class:`_Unsupported` for any query it does not
    mirror exactly (directives, repeated keys, aliased connection parts, more than one root field).
    """

    def __init__(self, document: DocumentNode) -> None:
        from graphql import get_variable_values

        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1:
            raise _Unsupported("operation")
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        coerced = get_variable_values(SCHEMA, ops[0].variable_definitions or (), {})
        if isinstance(coerced, list):
            raise _Unsupported("variables")
        self.coerced = coerced
        self.arg_values: dict[int, dict[str, Any]] = {}
        #: (id(value), id(plan)) -> (value, its fill) of shared values (:meth:`shared`)
        self.memo: dict[tuple[int, int], tuple[Any, dict[str, Any]]] = {}
        root_type = SCHEMA.query_type
        assert root_type is not None
        top = self.fields_of(ops[0].selection_set, root_type.name)
        if len(top) != 1 or top[0].name.value not in ("orders", "customers") or top[0].alias is not None:
            raise _Unsupported("root")
        self.top = top[0]
        self.top_def = root_type.fields[self.top.name.value]
        kind, conn_type = _shape(self.top_def.type)
        assert kind == 1 and self.top.selection_set is not None
        self.top_conn = self.connection_parts(self.plan(self.top.selection_set, conn_type).entries)

    def fields_of(self, selection_set: SelectionSetNode, type_name: str) -> list[FieldNode]:
        return _fields_of(selection_set, type_name, self.fragments)

    def plan(self, selection_set: SelectionSetNode, otype: GraphQLObjectType) -> _RowPlan:
        out: list[_RowEntry] = []
        keys: set[str] = set()
        for node in self.fields_of(selection_set, otype.name):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if key in keys:
                raise _Unsupported("repeated response key")
            keys.add(key)
            if name == "__typename":
                out.append((name, key, None, -1, otype.name, node, None, None))
                continue
            fdef = otype.fields[name]
            kind, sub = _shape(fdef.type)
            if kind == 3 and _leaf_list(fdef.type):
                kind = 4  # a list of leaves (tags): its copy is _complete_leaves's answer
            sub_plan: _RowPlan | None = None
            conn: tuple[Any, Any] | None = None
            if kind in (1, 2):
                assert node.selection_set is not None
                sub_plan = self.plan(node.selection_set, sub)
                sub_keys = set(sub_plan.keys)
                if kind == 1 and ("edges" in sub_keys or "nodes" in sub_keys) and sub_keys <= _CONNECTION_KEYS:
                    conn = self.connection_parts(sub_plan.entries)  # in a row, _flatten splits this value off
            out.append((name, key, fdef, kind, sub if kind < 3 else fdef.type, node, sub_plan, conn))
        if any(e[7] is not None and e[1] == "id" for e in out):
            raise _Unsupported("a connection keyed id")
        names = tuple(e[0] for e in out)
        return _RowPlan(out, names, tuple(e[1] for e in out), tuple(e[1] for e in out if e[3] == 0),
                        [e for e in out if e[3] != 0], _getter(names),
                        _getter(tuple(i for i, e in enumerate(out) if e[3] == 0)), otype.name == "MoneyBag")

    @staticmethod
    def connection_parts(entries: list[_RowEntry]) -> tuple[_RowPlan | None, _RowPlan | None]:
        """(plan of ``nodes``, plan of ``edges { node }``'s node) of a connection's selection."""
        nodes = edges = None
        for name, key, _fdef, kind, _sub, _node, sub_plan, _conn in entries:
            if key != name or (key != "pageInfo" and kind != 2):
                raise _Unsupported("aliased connection part")
            if key == "nodes":
                nodes = sub_plan
            elif key == "edges":
                node = [e for e in sub_plan.entries if e[1] == "node"]
                if not node or node[0][0] != "node" or node[0][3] != 1:
                    raise _Unsupported("edges without node")
                edges = node[0][6]
        return nodes, edges

    def call(self, value: Any, fdef: Any, node: FieldNode, info: _Info) -> Any:
        if fdef.args:
            args = self.arg_values.get(id(node))
            if args is None:
                from graphql import get_argument_values

                args = self.arg_values[id(node)] = get_argument_values(fdef, node, self.coerced)
            return value(info, **args)
        return value(info)

    def page(self, root: dict[str, Any], context: dict[str, Any]) -> list[bytes]:
        """One page's lines (the root connection's resolver sets ``context["page"]``)."""
        name = self.top.name.value
        conn = self.call(root[name], self.top_def, self.top, _Info(context, _Path(None, name), True))
        # the infos of every resolver below the root: (not split, split)
        infos = (_Info(context, _BELOW_ROOT), _Info(context, _BELOW_ROOT, True))
        lines: list[bytes] = []
        for node, node_plan in self.children(conn, self.top_conn):
            self.rows(node, node_plan, infos, None, lines)
        return lines

    @staticmethod
    def children(conn: Any, parts: tuple[Any, Any]) -> list[tuple[Any, Any]]:
        """The raw nodes of a connection value as _flatten picks them: ``nodes`` when selected and
        not empty, else the edges' nodes. A resolver called with ``split`` answers ``{"nodes":
        [...]}``: the same nodes its edges hold."""
        if type(conn) is not dict:
            raise _Unsupported("connection value")
        nodes_plan, edges_plan = parts
        if "edges" not in conn:
            nodes = conn.get("nodes")
            if type(nodes) is not list or None in nodes:
                raise _Unsupported("nodes value")
            plan = nodes_plan if nodes_plan is not None else edges_plan
            return [] if plan is None else [(n, plan) for n in nodes]
        if nodes_plan is not None:
            nodes = conn.get("nodes")
            if callable(nodes) or nodes is None:
                raise _Unsupported("nodes value")
            if nodes:
                if any(n is None for n in nodes):
                    raise _Unsupported("a null node")
                return [(n, nodes_plan) for n in nodes]
        if edges_plan is None:
            return []
        edges = conn.get("edges")
        if callable(edges) or edges is None:
            raise _Unsupported("edges value")
        out = []
        for e in edges:
            n = e.get("node") if type(e) is dict else None
            if n is None or callable(n):
                raise _Unsupported("edge value")
            out.append((n, edges_plan))
        return out

    def rows(self, obj: Any, plan: _RowPlan, infos: tuple[_Info, _Info], parent_id: Any,
             lines: list[bytes]) -> None:
        """``obj``'s row (its nested connections split off, as :func:`_flatten`), then theirs."""
        split: list[tuple[Any, Any]] = []
        row = self.fill(obj, plan, infos, split)
        if parent_id is not None:
            row["__parentId"] = parent_id
        lines.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        if split:
            pid = row.get("id")
            for child, child_plan in split:
                self.rows(child, child_plan, infos, pid, lines)

    def shared(self, value: Any, plan: _RowPlan, infos: tuple[_Info, _Info]) -> dict[str, Any]:
        """:meth:`fill` of a shared value (``plan.shared``): the answer kept by the value's identity
        (with the value, so that identity is not reused), for the rows to share."""
        key = (id(value), id(plan))
        found = self.memo.get(key)
        if found is not None and found[0] is value:
            return found[1]
        if len(self.memo) >= _SHARED_MEMO:
            self.memo.clear()
        out = self.memo[key] = (value, self.fill(value, plan, infos, None))
        return out[1]

    def fill(self, obj: Any, plan: _RowPlan, infos: tuple[_Info, _Info],
             split: list[tuple[Any, Any]] | None) -> dict[str, Any]:
        """A selected object's value (as :func:`_fast_execute`'s ``select``); with ``split`` (a row)
        the nodes of its nested connections go there instead."""
        out: dict[str, Any]
        if type(obj) is dict:
            # the raw values in one C-level pass (in selection order); the others replace theirs in
            # place (a dict keeps a key's position, and a deleted key leaves the others' order)
            try:
                values = plan.values(obj)
            except KeyError:
                values = tuple(map(obj.get, plan.names))
            if not any(map(callable, plan.leaves(values))):
                out = dict(zip(plan.keys, values, strict=False))  # one length: the plan's
                for _name, key, fdef, kind, sub, node, sub_plan, conn in plan.rest:
                    if kind < 0:
                        out[key] = sub
                        continue
                    value = out[key]
                    if value is None:
                        continue
                    splits = conn is not None and split is not None
                    if callable(value):
                        value = self.call(value, fdef, node, infos[splits])
                        if value is None:
                            out[key] = None
                            continue
                    if splits:
                        del out[key]
                        split.extend(self.children(value, conn))  # type: ignore[union-attr]
                    elif kind == 1:
                        if not sub_plan.rest and type(value) is dict:
                            # leaves only (money, utm parameters): fill's fast path inline, not a call
                            try:
                                leaves = sub_plan.values(value)
                            except KeyError:
                                leaves = tuple(map(value.get, sub_plan.names))
                            if not any(map(callable, leaves)):
                                out[key] = dict(zip(sub_plan.keys, leaves, strict=False))
                                continue
                        if sub_plan.shared:
                            out[key] = self.shared(value, sub_plan, infos)
                            continue
                        out[key] = self.fill(value, sub_plan, infos, None)
                    elif kind == 2:
                        out[key] = [None if v is None else self.fill(v, sub_plan, infos, None) for v in value]
                    elif kind == 4:
                        out[key] = list(value)
                    else:
                        out[key] = _complete_leaves(value, sub)
                return out
        out = {}  # an object, or a resolver among the leaves: field by field
        is_dict = isinstance(obj, dict)
        for name, key, fdef, kind, sub, node, sub_plan, conn in plan.entries:
            if kind < 0:
                out[key] = sub
                continue
            value = obj.get(name) if is_dict else getattr(obj, name, None)
            splits = conn is not None and split is not None
            if callable(value):
                value = self.call(value, fdef, node, infos[splits])
            if kind == 0 or value is None:
                out[key] = value
            elif splits:
                split.extend(self.children(value, conn))  # type: ignore[union-attr]
            elif kind == 1:
                out[key] = self.fill(value, sub_plan, infos, None)
            elif kind == 2:
                out[key] = [None if v is None else self.fill(v, sub_plan, infos, None) for v in value]
            elif kind == 4:
                out[key] = list(value)
            else:
                out[key] = _complete_leaves(value, sub)
        return out


def _nested_connection_problem(field: FieldNode) -> str | None:
    """Shopify's bulk rule: a node with a nested connection must select ``id`` (without an alias)."""
    def node_selections(conn: FieldNode) -> list[FieldNode]:
        out = []
        for sub in conn.selection_set.selections if conn.selection_set else ():
            if isinstance(sub, FieldNode) and sub.name.value == "nodes":
                out.append(sub)
            elif isinstance(sub, FieldNode) and sub.name.value == "edges" and sub.selection_set:
                out.extend(s for s in sub.selection_set.selections
                           if isinstance(s, FieldNode) and s.name.value == "node")
        return out

    for node in node_selections(field):
        subs = [s for s in node.selection_set.selections if isinstance(s, FieldNode)] if node.selection_set else []
        nested = [s for s in subs if s.name.value in ("lineItems", "orders")]
        if nested and not any(s.name.value == "id" and s.alias is None for s in subs):
            return ("The parent 'node' field for a nested connection must select the 'id' field without an alias "
                    "and must be of 'ID' return type.")
        for conn in nested:
            problem = _nested_connection_problem(conn)
            if problem:
                return problem
    return None


# -------------------------------------------------------------------------------------------
# the storage server that holds bulk operation results (Google Cloud Storage at Shopify)
# -------------------------------------------------------------------------------------------


class _StorageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StorageServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        token = parts.path.rsplit("/", 1)[-1].removesuffix("-final")
        op = self.server.emulator.bulk_for_token(token)
        expires = parse_qs(parts.query).get("Expires", ["0"])[-1]
        if op is None or not expires.isdigit() or int(expires) < time.time():
            body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    b"<Message>Access denied.</Message></Error>")
            self.send_response(403)
            self.send_header("Content-Type", "application/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/jsonl")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in self.server.emulator.bulk_chunks(op):
            self._chunk(chunk)
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _StorageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: ShopifyEmulator) -> None:
        super().__init__(("127.0.0.1", 0), _StorageHandler)
        self.emulator = emulator

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class _Storage:
    def __init__(self, emulator: ShopifyEmulator) -> None:
        self.server = _StorageServer(emulator)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sandbox-shopify-storage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
