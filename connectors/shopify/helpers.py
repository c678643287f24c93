"""Shopify GraphQL Admin API over httpx: queries, cost-based pacing, connections and bulk operations.

:class:`ShopifyApi` sends every query through :class:`core.http.VendorHTTP`'s client under its
:class:`core.http.RetryPolicy`. Shopify answers most errors with HTTP 200 and an ``errors`` list, so
each answer's ``errors`` go through the ``shopify`` classifier registered here (THROTTLED ->
:class:`RateLimitedError` with the wait the cost extension implies; 401/403 terminal; 5xx and
INTERNAL_SERVER_ERROR transient). ``extensions.cost.throttleStatus`` (currentlyAvailable,
restoreRate) of every answer feeds a local model of Shopify's leaky bucket: before a query whose
requested cost (learnt from the previous answer to the same query) exceeds what is available, the
connector waits for the bucket to refill instead of being throttled.

:class:`ShopifyConnector` yields Shopify's own nodes. Orders carry ``lineItems.nodes`` (all of
them: inline, completed by ``order(id:)`` when an order has more than one inline page, or
re-attached from the bulk JSONL's ``__parentId`` rows), so both paths give the same record shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from connectors.shopify import settings as S
from core.connector import ConnectorConfig, Page, RunContext, StreamSpec
from core.errors import (
    ConfigurationError,
    FactorylineError,
    RateLimitedError,
    TerminalVendorError,
    TransientVendorError,
    VendorError,
)
from core.http import (
    Masker,
    RetryPolicy,
    VendorHTTP,
    classify_response,
    make_client,
    register_classifier,
    translate_transport_error,
)

__all__ = ["ShopifyApi", "ShopifyConnector", "Throttle", "shopify_classifier"]

log = logging.getLogger("factoryline.shopify")

VENDOR = "shopify"


# ---------------------------------------------------------------------------------------------
# error classification
# ---------------------------------------------------------------------------------------------


def _error_codes(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str((e.get("extensions") or {}).get("code") or "") for e in errors if isinstance(e, dict)]


def _first_message(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or "")
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return ""


def _throttle_wait(body: Any) -> float | None:
    """Seconds until the bucket holds the requested cost again, from ``extensions.cost``."""
    cost = (body.get("extensions") or {}).get("cost") if isinstance(body, dict) else None
    if not isinstance(cost, dict):
        return None
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return max(0.05, (requested - available) / rate)


def shopify_classifier(status: int, headers: Mapping[str, str], body: Any,
                       retry_after: float | None) -> VendorError | None:
    """Shopify's error shapes: THROTTLED (HTTP 200 or 429), 401/403, 5xx and GraphQL ``errors``."""
    codes = _error_codes(body)
    detail = _first_message(body)
    if "THROTTLED" in codes or status == 429:
        wait = retry_after if retry_after is not None else _throttle_wait(body)
        return RateLimitedError(f"throttled: the query cost exceeds the points left in the bucket ({detail})",
                                vendor=VENDOR, status=status, code="THROTTLED",
                                retry_after=wait if wait is not None else 1.0)
    if status == 401:
        return TerminalVendorError(f"the access token was refused ({detail or 'unauthorized'}); set a valid Admin "
                                   "API access token in sources.shopify.access_token or "
                                   "SOURCES__SHOPIFY__ACCESS_TOKEN", vendor=VENDOR, status=status)
    if status == 403:
        return TerminalVendorError(f"missing access scope ({detail or 'forbidden'}); grant the app read_orders "
                                   "and read_customers", vendor=VENDOR, status=status)
    if status >= 500 or "INTERNAL_SERVER_ERROR" in codes:
        return TransientVendorError(f"Shopify had a temporary problem ({detail}); will retry", vendor=VENDOR,
                                    status=status, code="INTERNAL_SERVER_ERROR" if codes else None,
                                    retry_after=retry_after)
    if codes or detail:
        code = next((c for c in codes if c), None)
        return TerminalVendorError(f"query refused: {detail}", vendor=VENDOR, status=status, code=code)
    return None


register_classifier(VENDOR, shopify_classifier)


# ---------------------------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------------------------


class Throttle:
    """A local model of Shopify's leaky bucket of query cost points, fed by every answer."""

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sleep = sleep
        self.clock = clock
        self.available: float | None = None
        self.maximum: float | None = None
        self.restore_rate: float | None = None
        self._at = 0.0
        self.waited = 0.0
        self.waits = 0

    def feed(self, body: Any) -> None:
        cost = (body.get("extensions") or {}).get("cost") if isinstance(body, dict) else None
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(status, dict):
            return
        try:
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = float(status["restoreRate"])
            self.maximum = float(status.get("maximumAvailable") or self.available)
        except (KeyError, TypeError, ValueError):
            return
        self._at = self.clock()

    def before(self, cost: float | None) -> float:
        """Wait until ``cost`` points are available; returns the seconds waited."""
        if cost is None or self.available is None or not self.restore_rate:
            return 0.0
        now = self.clock()
        available = self.available + (now - self._at) * self.restore_rate
        if self.maximum is not None:
            available = min(self.maximum, available)
        wait = (cost - available) / self.restore_rate if cost > available else 0.0
        if wait > 0:
            self.waited += wait
            self.waits += 1
            self.sleep(wait)
        # the bucket takes the requested cost up front; the next answer tells the refund
        self.available = available + wait * self.restore_rate - cost
        self._at = self.clock()
        return wait


class ShopifyApi:
    """One shop's GraphQL Admin API endpoint."""

    def __init__(self, *, base_url: str, access_token: str, api_version: str = S.API_VERSION,
                 policy: RetryPolicy | None = None, masker: Masker | None = None,
                 throttle: Throttle | None = None, pace: bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.masker = masker or Masker([access_token])
        self.http = VendorHTTP(VENDOR, base_url.rstrip("/"), secrets=[access_token], policy=policy,
                               headers={"X-Shopify-Access-Token": access_token}, transport=transport)
        self.policy = self.http.policy
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.throttle = throttle or Throttle(sleep=self.policy.sleep)
        self.pace = pace
        #: requested cost of each (query, page size): estimated, then as Shopify last computed it
        self._costs: dict[tuple[str, int | None], float | None] = {}
        self.requests = 0
        self.throttled = 0
        #: the storage host of bulk results gets no Shopify credentials
        self._files = make_client("", transport=transport)

    def close(self) -> None:
        self.http.close()
        self._files.close()

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation; returns ``data``. Errors are raised as :mod:`core.errors`."""
        if self.pace and self.throttle.available is None and query != S.PROBE_QUERY:
            # learn the bucket first (1 point), so even the first real query is paced
            self.query(S.PROBE_QUERY)
        variables = dict(variables or {})
        payload = {"query": query, "variables": variables}
        key = (query, (variables or {}).get("first"))

        def attempt() -> dict[str, Any]:
            if self.pace:
                if key not in self._costs:
                    self._costs[key] = _estimate_cost(query, variables)
                self.throttle.before(self._costs[key])
            self.requests += 1
            resp = self.http.client.post(self.path, content=orjson.dumps(payload),
                                         headers={"Content-Type": "application/json"})
            try:
                body = orjson.loads(resp.content)
            except orjson.JSONDecodeError as exc:
                if resp.status_code >= 400:
                    raise classify_response(VENDOR, resp.status_code, resp.headers, resp.content,
                                            masker=self.masker) from None
                raise TransientVendorError("response is not valid JSON (truncated?); will retry", vendor=VENDOR,
                                           status=resp.status_code) from exc
            self.throttle.feed(body)
            cost = ((body.get("extensions") or {}).get("cost") or {}) if isinstance(body, dict) else {}
            if isinstance(cost, dict) and cost.get("requestedQueryCost"):
                self._costs[key] = float(cost["requestedQueryCost"])
            if resp.status_code >= 400 or (isinstance(body, dict) and body.get("errors")):
                err = classify_response(VENDOR, resp.status_code, resp.headers, body, masker=self.masker)
                if err.code == "THROTTLED":
                    self.throttled += 1
                if err.code == "MAX_COST_EXCEEDED":
                    err.context["cost"] = _max_cost(body)
                raise err
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise TransientVendorError("answer without data; will retry", vendor=VENDOR, status=resp.status_code)
            return data

        return self.policy.call(attempt, translate=self._translate, describe=f"shopify POST {self.path}")

    def _translate(self, exc: BaseException) -> FactorylineError | None:
        return translate_transport_error(exc, vendor=VENDOR, masker=self.masker)

    def lines(self, url: str, skip: int = 0) -> Iterator[bytes]:
        """The lines of a bulk result file, streamed (never held whole), from line ``skip`` on.

        A connection dropped mid-file is re-opened and the lines already read are skipped.
        """
        done = skip
        attempts = 0
        while True:
            seen = 0
            try:
                with self._files.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise classify_response(VENDOR, resp.status_code, resp.headers, resp.content,
                                                masker=self.masker)
                    for line in resp.iter_lines():
                        if not line:
                            continue
                        seen += 1
                        if seen <= done:
                            continue
                        done += 1
                        yield line.encode()
                return
            except httpx.TransportError as exc:
                attempts += 1
                err = translate_transport_error(exc, vendor=VENDOR, masker=self.masker)
                if err is None or attempts >= self.policy.max_attempts:
                    raise (err or exc) from exc
                wait = self.policy.wait_for(attempts, err)
                log.warning("shopify bulk file: %s; re-reading from line %d in %.2fs", err, done, wait)
                self.policy.sleep(wait)


def _estimate_cost(query: str, variables: Mapping[str, Any]) -> float | None:
    """Shopify's documented requested cost of a query not sent before (1 per object, 2 + first x node
    per connection, 10 per mutation), so even the first query of a kind is paced; None if unknown."""
    try:
        from graphql import GraphQLError, parse

        from connectors.shopify.graphql import query_cost
    except ImportError:  # graphql-core is optional: the answers' cost extension still teaches us
        return None
    try:
        return float(query_cost(parse(query), None, dict(variables)))
    except GraphQLError:
        return None


def _max_cost(body: Any) -> tuple[int, int] | None:
    for e in body.get("errors") or () if isinstance(body, dict) else ():
        ext = e.get("extensions") if isinstance(e, dict) else None
        if isinstance(ext, dict) and ext.get("code") == "MAX_COST_EXCEEDED":
            try:
                return int(ext["cost"]), int(ext["maxCost"])
            except (KeyError, TypeError, ValueError):
                return None
    return None


# ---------------------------------------------------------------------------------------------
# the connector
# ---------------------------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() not in ("false", "0", "no", "off", "")


@dataclass
class _Window:
    """``updated_at`` in [lower, upper): lower None = from the beginning."""

    lower: str | None
    upper: str

    def search(self) -> str:
        terms = [f"updated_at:<'{self.upper}'"]
        if self.lower:
            terms.insert(0, f"updated_at:>='{self.lower}'")
        return " AND ".join(terms)


class ShopifyConnector:
    """:class:`core.connector.Connector` for Shopify orders (with line items) and customers.

    Every run reads ``updated_at`` in ``[cursor, upper)``, ``upper`` = the run's start truncated to
    the second (Shopify keeps whole seconds, so a record changed in that second is left for the
    next run: windows never overlap and never miss). The first run (or a full refresh, or a
    window longer than ``bulk_window_days``) uses a bulk operation when ``bulk`` is on; otherwise
    the ``orders``/``customers`` connection sorted by ``UPDATED_AT``.

    State committed with each page: ``cursor`` (lower bound done), ``window_upper``, and either
    ``after`` (the connection's endCursor) with ``last_updated_at``/``last_id``, or ``bulk_id``
    with ``bulk_line`` (JSONL lines fully loaded). A restarted run continues that window from
    there, then reads ``[window_upper, upper)``. The last page carries ``{"cursor": upper}``.
    """

    def __init__(self, config: ConnectorConfig, *, policy: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        token = config.get("access_token")
        if not token:
            raise ConfigurationError(
                "Shopify needs an Admin API access token: set sources.shopify.access_token in "
                ".dlt/secrets.toml or the environment variable SOURCES__SHOPIFY__ACCESS_TOKEN")
        base_url = config.get("base_url")
        shop = config.get("shop")
        if not base_url and shop:
            base_url = f"https://{shop}" if "." in str(shop) else f"https://{shop}.myshopify.com"
        if not base_url:
            raise ConfigurationError("Shopify needs the shop: set sources.shopify.shop (name.myshopify.com) "
                                     "or sources.shopify.base_url")
        self.config = config
        self.masker = Masker(config.secrets() or [str(token)])
        self.page_size = max(1, min(int(config.get("page_size") or S.DEFAULT_PAGE_SIZE), S.MAX_PAGE_SIZE))
        self.bulk = _flag(config.get("bulk"), True)
        self.line_items = max(1, min(int(config.get("line_items_page") or S.LINE_ITEMS_PAGE), S.MAX_PAGE_SIZE))
        self.bulk_window = timedelta(days=float(config.get("bulk_window_days") or S.DEFAULT_BULK_WINDOW_DAYS))
        self.bulk_page = max(1, int(config.get("bulk_page_records") or S.DEFAULT_BULK_PAGE_RECORDS))
        self.poll = float(config.get("bulk_poll_seconds") or S.DEFAULT_BULK_POLL_SECONDS)
        self.poll_max = float(config.get("bulk_poll_max_seconds") or S.DEFAULT_BULK_POLL_MAX_SECONDS)
        self.bulk_timeout = float(config.get("bulk_timeout_seconds") or S.DEFAULT_BULK_TIMEOUT_SECONDS)
        self.api = ShopifyApi(base_url=str(base_url), access_token=str(token),
                              api_version=str(config.get("api_version") or S.API_VERSION), policy=policy,
                              masker=self.masker, pace=_flag(config.get("pace"), True), transport=transport)
        #: per stream: orders per connection page after the 1,000-point cap was met
        self._first: dict[str, int] = {}

    def close(self) -> None:
        self.api.close()

    # -- Connector protocol -------------------------------------------------------------------

    def extract(self, stream: StreamSpec, state: Mapping[str, Any], ctx: RunContext) -> Iterator[Page]:
        name = stream.name
        if name not in S.STREAMS:
            raise ConfigurationError(f"shopify has no stream {name!r} (valid: {', '.join(S.STREAMS)})")
        before = self.api.requests
        started = ctx.started_at if ctx.started_at.tzinfo else ctx.started_at.replace(tzinfo=UTC)
        upper = _iso(started.replace(microsecond=0))
        st = {} if ctx.full_refresh else dict(state or {})
        cursor: str | None = st.get("cursor")
        billed = self.api.requests

        def bill(page: Page) -> Page:
            nonlocal billed
            page.requests = self.api.requests - billed
            billed = self.api.requests
            return page

        pending = st.get("window_upper")
        if pending and (st.get("bulk_id") or st.get("after") is not None):
            # a run stopped inside this window: finish it from where its last committed page ended
            window = _Window(cursor, str(pending))
            if st.get("bulk_id"):
                pages = self._bulk(name, window, str(st["bulk_id"]), int(st.get("bulk_line") or 0))
            else:
                pages = self._connection(name, window, st.get("after"))
            for page in pages:
                yield bill(page)
            cursor = str(pending)
        if cursor is None or cursor < upper:
            window = _Window(cursor, upper)
            lower = _parse(cursor)
            if self.bulk and (lower is None or started - lower > self.bulk_window):
                pages = self._bulk(name, window, None, 0)
            else:
                pages = self._connection(name, window, None)
            for page in pages:
                yield bill(page)
            cursor = upper
        ctx.count(f"{name}.requests", self.api.requests - before)
        yield bill(Page(records=[], state={"cursor": cursor}))

    # -- connections --------------------------------------------------------------------------

    def _connection(self, name: str, window: _Window, after: str | None) -> Iterator[Page]:
        query = S.CONNECTION_QUERY.format(name=name, fields=S.node_fields(name, self.line_items))
        search = window.search()
        while True:
            first = self._first.get(name, self.page_size)
            try:
                data = self.api.query(query, {"first": first, "after": after, "query": search})
            except TerminalVendorError as exc:
                cost = exc.context.get("cost") if exc.code == "MAX_COST_EXCEEDED" else None
                if not cost or first <= 1:
                    raise
                # a page of this size costs more than one query may: shrink it to fit
                per_node = max(1.0, (cost[0] - 2) / first)
                self._first[name] = max(1, min(first - 1, int((cost[1] - 2) / per_node)))
                log.debug("shopify %s: %d per page costs %d > %d; using %d", name, first, cost[0], cost[1],
                          self._first[name])
                continue
            conn = data.get(name) or {}
            records: list[dict[str, Any]] = [n for n in conn.get("nodes") or [] if isinstance(n, dict)]
            if name == "orders":
                for r in records:
                    self._complete_lines(r)
            info = conn.get("pageInfo") or {}
            end = info.get("endCursor") or after
            last = records[-1] if records else {}
            yield Page(records=records, state={
                "cursor": window.lower, "window_upper": window.upper, "after": end,
                "last_updated_at": last.get("updatedAt"), "last_id": last.get("id")})
            if not info.get("hasNextPage") or not records:
                return
            after = end

    def _complete_lines(self, order: dict[str, Any]) -> None:
        """Read the rest of an order's line items when they did not fit the inline page."""
        conn = order.get("lineItems")
        if not isinstance(conn, dict):
            return
        info = conn.pop("pageInfo", None) or {}
        nodes = conn.setdefault("nodes", [])
        after = info.get("endCursor")
        while info.get("hasNextPage") and order.get("id"):
            data = self.api.query(S.ORDER_LINES_QUERY, {"id": order["id"], "after": after})
            more = ((data.get("order") or {}).get("lineItems")) or {}
            nodes.extend(more.get("nodes") or [])
            info = more.get("pageInfo") or {}
            after = info.get("endCursor")

    # -- bulk operations ----------------------------------------------------------------------

    def _bulk(self, name: str, window: _Window, op_id: str | None, skip: int) -> Iterator[Page]:
        op = self._bulk_status(op_id) if op_id else None
        if op is None or op.get("status") in ("FAILED", "CANCELED", "EXPIRED"):
            op, skip = self._bulk_start(name, window), 0  # unknown, failed or expired: run it again
        op = self._bulk_wait(op)
        state = {"cursor": window.lower, "window_upper": window.upper, "bulk_id": op["id"]}
        url = op.get("url")
        if not url:  # an empty result has no file
            return
        yield from self._bulk_pages(name, str(url), skip, state)

    def _bulk_query(self, name: str, window: _Window) -> str:
        search = window.search().replace('"', '\\"')
        return (f'{{ {name}(query: "{search}") {{ edges {{ node {{ {S.BULK_STREAM_FIELDS[name]} }} }} }} }}')

    def _bulk_start(self, name: str, window: _Window) -> dict[str, Any]:
        query = self._bulk_query(name, window)
        deadline = time.monotonic() + self.bulk_timeout
        while True:
            data = self.api.query(S.BULK_RUN_MUTATION, {"query": query})
            payload = data.get("bulkOperationRunQuery") or {}
            errors = payload.get("userErrors") or []
            if payload.get("bulkOperation") and not errors:
                op: dict[str, Any] = payload["bulkOperation"]
                log.info("shopify %s: bulk operation %s started", name, op["id"])
                return op
            if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors) and time.monotonic() < deadline:
                # one bulk query at a time per shop: wait for the other one (another stream's, or a
                # run that died) to finish, then start ours
                current = self.api.query(S.CURRENT_BULK_QUERY).get("currentBulkOperation")
                if current and current.get("status") in ("CREATED", "RUNNING"):
                    if current.get("query") == query:
                        return dict(current)  # ours, from a run that stopped before committing its id
                    self._bulk_wait(dict(current))
                continue
            raise TerminalVendorError(f"bulk operation refused: {'; '.join(str(e.get('message')) for e in errors)}",
                                      vendor=VENDOR, code=str(errors[0].get("code")) if errors else None)

    def _bulk_status(self, op_id: str) -> dict[str, Any] | None:
        op = self.api.query(S.BULK_STATUS_QUERY, {"id": op_id}).get("bulkOperation")
        return dict(op) if op else None

    def _bulk_wait(self, op: dict[str, Any]) -> dict[str, Any]:
        delay = self.poll
        deadline = time.monotonic() + self.bulk_timeout
        while op.get("status") in ("CREATED", "RUNNING", "CANCELING"):
            if time.monotonic() > deadline:
                raise TransientVendorError(f"bulk operation {op.get('id')} still {op.get('status')} after "
                                           f"{self.bulk_timeout:.0f}s; the next run resumes it", vendor=VENDOR)
            self.api.policy.sleep(delay)
            delay = min(self.poll_max, delay * 1.5)
            found = self._bulk_status(str(op["id"]))
            if found is None:
                raise TerminalVendorError(f"bulk operation {op.get('id')} disappeared", vendor=VENDOR)
            op = found
        if op.get("status") != "COMPLETED":
            raise TransientVendorError(f"bulk operation {op.get('id')} ended {op.get('status')} "
                                       f"({op.get('errorCode')}); the next run starts a new one", vendor=VENDOR)
        return op

    def _bulk_pages(self, name: str, url: str, skip: int, base: dict[str, Any]) -> Iterator[Page]:
        """Pages of root records with their ``__parentId`` children re-attached.

        Shopify writes each child right after its parent, so a root is complete when the next
        root starts; ``bulk_line`` in a page's state is the line of the first root not in it.
        """
        records: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        line_no = skip  # lines read so far (absolute)
        for raw in self.api.lines(url, skip):
            line_no += 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = raw.decode("utf-8", "replace")  # the mapping rejects it with its payload
            parent = obj.get("__parentId") if isinstance(obj, dict) else None
            if parent is not None and current is not None and parent == current.get("id"):
                child = {k: v for k, v in obj.items() if k != "__parentId"}
                current.setdefault("lineItems", {"nodes": []})["nodes"].append(child)
                continue
            if current is not None:
                records.append(current)
            if len(records) >= self.bulk_page:
                yield Page(records=records, state={**base, "bulk_line": line_no - 1})
                records = []
            current = obj if isinstance(obj, dict) else {"__raw": obj}
            if name == "orders" and parent is None:
                current.setdefault("lineItems", {"nodes": []})
        if current is not None:
            records.append(current)
        if records:
            yield Page(records=records, state={**base, "bulk_line": line_no})
