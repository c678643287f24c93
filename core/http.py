"""The shared HTTP layer: client factory, retry policy, error classification, rate budget, masking.

Every connector talks to its vendor through these pieces, whether it uses httpx directly
(:class:`VendorHTTP`) or a vendor SDK as transport (wrap the SDK call in
:meth:`RetryPolicy.call` with a ``translate`` function)::

    Masker            replaces secrets (known values, bearer tokens, access_token=...) with ***
    classify_response (vendor, status, headers, body) -> VendorError subclass, per-vendor rules
    RetryPolicy       tenacity: retries TransientVendorError only, honours Retry-After (capped),
                      exponential backoff with full jitter, bounded attempts and total time;
                      ``sleep`` and ``clock`` are injectable, so tests record waits instead of sleeping
    RateBudget        thread-safe: a token bucket, or a mirror of the vendor's rolling window once
                      its rate-limit headers name it (limit, interval, remaining)
    make_client       httpx.Client with an HTTP/1.1 keep-alive pool and sensible timeouts
    VendorHTTP        all of the above around one httpx client

Every error and log line built here passes through a :class:`Masker` first, so a secret the
vendor echoes back (dlt#1474) never reaches a message.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import httpx
import orjson
import tenacity

from core.errors import (
    FactorylineError,
    QuotaExhaustedError,
    RateLimitedError,
    TerminalVendorError,
    TransientVendorError,
    VendorError,
)

__all__ = [
    "Classifier",
    "Masker",
    "MaskingFilter",
    "RateBudget",
    "RetryPolicy",
    "VendorHTTP",
    "classify_response",
    "make_client",
    "parse_retry_after",
    "register_classifier",
    "translate_transport_error",
]

log = logging.getLogger("factoryline.http")

T = TypeVar("T")

MASK = "***"


# ---------------------------------------------------------------------------------------------
# Secret masking
# ---------------------------------------------------------------------------------------------

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xxx / Basic xxx (header dumps, repr of header dicts)
    (re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?)(?:bearer\s+|basic\s+)?[^'\"\s,}\])]+"), r"\1" + MASK),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + MASK),
    # query strings and form bodies: access_token=..., hapikey=..., client_secret=...
    (re.compile(r"(?i)((?:access_token|refresh_token|client_secret|api_key|apikey|hapikey|password|token)=)"
                r"[^&\s'\"]+"), r"\1" + MASK),
    # JSON bodies: "access_token": "..."
    (re.compile(r"(?i)(['\"](?:access_token|refresh_token|client_secret|api_key|password|token)['\"]\s*:\s*['\"])"
                r"[^'\"]*"), r"\1" + MASK),
)


class Masker:
    """Replaces every known secret, and anything that looks like one, with ``***``.

    Known secrets are matched verbatim and URL-encoded; bearer tokens, ``Authorization`` values
    and ``access_token=``-style parameters are matched by pattern whatever their value.
    """

    #: shorter values are not masked verbatim (masking "1" would garble every message)
    MIN_SECRET_LENGTH = 4

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for s in secrets:
            if s and len(s) >= self.MIN_SECRET_LENGTH:
                self._secrets.update({s, quote(s, safe=""), quote_plus(s)})
        if self._secrets:
            alternatives = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._regex = re.compile("|".join(re.escape(s) for s in alternatives))

    def __call__(self, text: object) -> str:
        return self.mask(text)

    def mask(self, text: object) -> str:
        s = text if isinstance(text, str) else (
            text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else str(text))
        if self._regex is not None:
            s = self._regex.sub(MASK, s)
        for pattern, repl in _PATTERNS:
            s = pattern.sub(repl, s)
        return s


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees (attach to handlers or loggers)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker.mask(record.getMessage())
        record.args = None
        return True


# ---------------------------------------------------------------------------------------------
# Classification: (vendor, status, headers, body) -> error
# ---------------------------------------------------------------------------------------------

#: a vendor classifier returns None to fall back to the generic rules
Classifier = Callable[[int, Mapping[str, str], Any, float | None], VendorError | None]

_CLASSIFIERS: dict[str, Classifier] = {}

#: Retry-After values above this are capped (a vendor asking for an hour gets the policy's cap later)
_RETRY_AFTER_MAX = 3600.0


def register_classifier(vendor: str, classifier: Classifier) -> None:
    """Install the error rules of one vendor (``classifier(status, headers, body, retry_after)``)."""
    _CLASSIFIERS[vendor] = classifier


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, _RETRY_AFTER_MAX))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if isinstance(headers, httpx.Headers):
        return headers.get(name)
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return None


def _parse_body(body: Any) -> Any:
    if isinstance(body, bytes | bytearray | str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    return body


def _message_from(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("message", "detail", "title", "error_description", "error"):
            v = body.get(key)
            if isinstance(v, str) and v:
                return v
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return _message_from(errors[0])
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return _message_from(body[0])
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return None


def classify_response(vendor: str, status: int, headers: Mapping[str, str] | None, body: Any, *,
                      masker: Masker | None = None, now: float | None = None) -> VendorError:
    """The :mod:`core.errors` exception for one failed vendor response, message masked.

    ``body`` may be bytes, text or parsed JSON. Vendor rules (see :func:`register_classifier`)
    run first; the generic rules: 429 -> RateLimitedError (with Retry-After), 408/5xx ->
    TransientVendorError, 401/403 -> TerminalVendorError naming the credentials to check,
    other statuses -> TerminalVendorError.
    """
    headers = headers or {}
    masker = masker or Masker()
    parsed = _parse_body(body)
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now)
    err: VendorError | None = None
    rule = _CLASSIFIERS.get(vendor)
    if rule is not None:
        err = rule(status, headers, parsed, retry_after)
    if err is None:
        err = _generic(vendor, status, parsed, retry_after)
    return _masked(err, masker)


def _masked(err: VendorError, masker: Masker) -> VendorError:
    """Rebuild the error's args with a masked message (context values too)."""
    err.args = tuple(masker.mask(a) for a in err.args)
    err.context = {k: masker.mask(v) if isinstance(v, str | bytes) else v for k, v in err.context.items()}
    return err


def _generic(vendor: str, status: int, body: Any, retry_after: float | None) -> VendorError:
    detail = _message_from(body)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return RateLimitedError(f"rate limited by the vendor{suffix}; retrying after a pause",
                                vendor=vendor, status=status, retry_after=retry_after)
    if status == 408 or status >= 500:
        return TransientVendorError(f"the vendor had a temporary problem{suffix}; try again later",
                                    vendor=vendor, status=status, retry_after=retry_after)
    if status == 401:
        return TerminalVendorError(f"authentication failed{suffix}; check the credentials configured "
                                   f"for this connector (sources.{vendor}.*)", vendor=vendor, status=status)
    if status == 403:
        return TerminalVendorError(f"permission denied{suffix}; check the scopes granted to these "
                                   "credentials", vendor=vendor, status=status)
    return TerminalVendorError(f"request refused{suffix}", vendor=vendor, status=status)


def _hubspot(status: int, headers: Mapping[str, str], body: Any, retry_after: float | None) -> VendorError | None:
    detail = _message_from(body)
    category = body.get("category") or body.get("errorType") if isinstance(body, dict) else None
    policy = body.get("policyName") if isinstance(body, dict) else None
    ctx = {"correlation_id": body.get("correlationId")} if isinstance(body, dict) else {}
    if status == 429:
        if policy == "DAILY":
            return QuotaExhaustedError(f"the daily API quota of this HubSpot account is used up ({detail}); "
                                       "the run stops and keeps what was loaded, try again tomorrow",
                                       vendor="hubspot", status=status, code=policy, **ctx)
        if retry_after is None:
            interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
            try:
                retry_after = float(interval) / 1000.0 if interval else None
            except ValueError:
                retry_after = None
        return RateLimitedError(f"rate limited ({detail or 'too many requests'})", vendor="hubspot",
                                status=status, code=policy or category, retry_after=retry_after, **ctx)
    if status == 401:
        return TerminalVendorError(f"the access token was refused ({detail or 'unauthorized'}); set a valid "
                                   "private-app token in sources.hubspot.access_token or "
                                   "SOURCES__HUBSPOT__ACCESS_TOKEN", vendor="hubspot", status=status,
                                   code=category, **ctx)
    if status == 403:
        return TerminalVendorError(f"missing permission ({detail or 'forbidden'}); grant the private app the "
                                   "crm.objects.*.read and crm.schemas.*.read scopes", vendor="hubspot",
                                   status=status, code=category, **ctx)
    if status == 414:
        return TerminalVendorError("request URL too long; lower sources.hubspot.properties_url_budget",
                                   vendor="hubspot", status=status, **ctx)
    return None


def _salesforce(status: int, headers: Mapping[str, str], body: Any, retry_after: float | None) -> VendorError | None:
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    code = first.get("errorCode") or (body.get("error") if isinstance(body, dict) else None)
    detail = _message_from(body)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return QuotaExhaustedError(f"the org's API request limit is used up ({detail}); try again later",
                                   vendor="salesforce", status=status, code=code)
    if code in ("INVALID_SESSION_ID", "invalid_grant", "invalid_client"):
        return TerminalVendorError(f"authentication failed ({detail}); check sources.salesforce credentials",
                                   vendor="salesforce", status=status, code=code)
    return None


def _marketo(status: int, headers: Mapping[str, str], body: Any, retry_after: float | None) -> VendorError | None:
    if not isinstance(body, dict) or body.get("success", True):
        return None
    errors = body.get("errors") or [{}]
    code = str(errors[0].get("code", ""))
    detail = errors[0].get("message", "")
    if code == "606":
        return RateLimitedError(f"rate limited ({detail})", vendor="marketo", status=status, code=code,
                                retry_after=retry_after or 20.0)
    if code == "615":
        return TransientVendorError(f"concurrency limit ({detail})", vendor="marketo", status=status, code=code)
    if code == "607":
        return QuotaExhaustedError(f"daily quota used up ({detail}); try again tomorrow", vendor="marketo",
                                   status=status, code=code)
    if code in ("601", "602"):
        return TerminalVendorError(f"access token invalid or expired ({detail})", vendor="marketo",
                                   status=status, code=code)
    return TerminalVendorError(detail or "request failed", vendor="marketo", status=status, code=code)


register_classifier("hubspot", _hubspot)
register_classifier("salesforce", _salesforce)
register_classifier("marketo", _marketo)


def translate_transport_error(exc: BaseException, *, vendor: str, masker: Masker | None = None) -> VendorError | None:
    """A TransientVendorError for timeouts, refused/dropped connections and truncated bodies.

    Understands httpx, urllib3 (used by hubspot-api-client and requests) and plain OSError;
    returns None for anything else.
    """
    masker = masker or Masker()
    kind: str | None = None
    if isinstance(exc, httpx.TimeoutException):
        kind = "timed out"
    elif isinstance(exc, httpx.RemoteProtocolError):
        kind = "connection dropped or response truncated"
    elif isinstance(exc, httpx.TransportError):
        kind = "connection failed"
    else:
        try:
            import urllib3.exceptions as u3
        except ImportError:  # pragma: no cover - urllib3 ships with every SDK we use
            u3 = None  # type: ignore[assignment]
        if u3 is not None:
            # urllib3's NewConnectionError (refused, unreachable) subclasses its ConnectTimeoutError
            if isinstance(exc, u3.NewConnectionError):
                kind = "connection failed"
            elif isinstance(exc, u3.TimeoutError):
                kind = "timed out"
            elif isinstance(exc, u3.ProtocolError | u3.IncompleteRead | u3.DecodeError):
                kind = "connection dropped or response truncated"
            elif isinstance(exc, u3.HTTPError):
                kind = "connection failed"
        if kind is None and isinstance(exc, TimeoutError):
            kind = "timed out"
        elif kind is None and isinstance(exc, ConnectionError | OSError):
            kind = "connection failed"
    if kind is None:
        return None
    err = TransientVendorError(f"{kind} ({type(exc).__name__}: {exc}); will retry", vendor=vendor)
    return _masked(err, masker)


# ---------------------------------------------------------------------------------------------
# Retry policy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry. Only :class:`TransientVendorError` is retried.

    The wait before attempt *n+1* is the vendor's Retry-After (capped at ``retry_after_cap``)
    when it gave one, else full-jitter exponential backoff ``uniform(0, min(backoff_max,
    backoff_base * 2**(n-1)))``. Gives up after ``max_attempts`` attempts or when the next wait
    would end past ``max_elapsed`` seconds, re-raising the last error. ``sleep`` and ``clock``
    are injectable: tests pass ``sleep=waits.append`` and see every wait without waiting.
    """

    max_attempts: int = 6
    max_elapsed: float = 300.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) raised ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return float(min(retry_after, self.retry_after_cap))
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    def retrying(self, *, describe: str = "request") -> tenacity.Retrying:
        """A fresh tenacity controller (its time budget starts now)."""
        start = self.clock()

        def wait(rs: tenacity.RetryCallState) -> float:
            exc = rs.outcome.exception() if rs.outcome else None
            return self.wait_for(rs.attempt_number, exc)

        def stop(rs: tenacity.RetryCallState) -> bool:
            if rs.attempt_number >= self.max_attempts:
                return True
            return (self.clock() - start) + (rs.upcoming_sleep or 0.0) > self.max_elapsed

        def before_sleep(rs: tenacity.RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            # the exception text is already masked (built by classify/translate)
            log.warning("%s failed (attempt %d/%d): %s; retrying in %.2fs", describe, rs.attempt_number,
                        self.max_attempts, exc, rs.upcoming_sleep)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientVendorError),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, fn: Callable[..., T], *args: Any,
             translate: Callable[[BaseException], FactorylineError | None] | None = None,
             describe: str = "request", **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under this policy.

        ``translate`` turns a lower-level exception (an SDK's ApiException, a urllib3 error) into
        a :mod:`core.errors` exception, or returns None to let it propagate unchanged; the
        translated error is raised ``from`` the original.
        """

        def attempt() -> T:
            try:
                return fn(*args, **kwargs)
            except FactorylineError:
                raise
            except Exception as exc:
                mapped = translate(exc) if translate is not None else None
                if mapped is None:
                    raise
                raise mapped from exc

        return self.retrying(describe=describe)(attempt)


# ---------------------------------------------------------------------------------------------
# Rate budget
# ---------------------------------------------------------------------------------------------


class RateBudget:
    """Keeps a connector below the vendor's rate limit; thread-safe.

    Two modes. Built with a known ``rate`` it is a token bucket (``RateBudget(rate=4, capacity=4)``):
    ``capacity`` requests at once, then ``rate`` per second. Once the vendor reports its window
    (:meth:`update`, :meth:`feed_hubspot`: ``limit`` requests per ``interval`` seconds) it mirrors
    that rolling window instead: it remembers when each of its own requests was sent and lets the
    next one go while fewer than ``limit - reserve`` were sent in the last ``interval`` seconds
    (plus ``slack``, because the vendor stamps a request when it arrives, after we sent it). A token
    bucket cannot follow a rolling window: after a burst the window frees only when the burst ages
    out, so a bucket refilling at the average rate runs into 429s, and one slow enough never to
    do so leaves a tenth of the allowed rate unused. The vendor's ``remaining`` is the truth about
    requests the budget did not see (another integration on the same account, an earlier run):
    when it is lower than the budget's own count says, the difference is counted as requests sent
    now. ``reserve`` requests of each window are left unused for that.

    :meth:`acquire` blocks (through the injectable ``sleep``) and returns the seconds it waited.
    """

    def __init__(self, rate: float | None = None, capacity: float | None = None, *, reserve: float = 2.0,
                 slack: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate  # tokens per second; None = unlimited until the vendor tells us
        self.capacity = capacity if capacity is not None else (rate or 1.0)
        #: requests of each vendor window left unused (at most a tenth of the window, at least one)
        self.reserve = reserve
        self.slack = slack
        #: the vendor's window once known: ``limit`` requests per ``interval`` seconds
        self.limit: float | None = None
        self.interval: float | None = None
        self._sent: deque[float] = deque()  # send times inside the window (window mode)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    @classmethod
    def window(cls, limit: float, interval: float, **kwargs: Any) -> RateBudget:
        """A budget that mirrors the vendor's rolling window of ``limit`` requests per ``interval`` s."""
        budget = cls(**kwargs)
        budget.update(limit=limit, interval=interval)
        return budget

    def _refill(self, now: float) -> None:
        if self.rate:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def _allowed(self) -> int:
        """Requests the budget lets go in one window (window mode)."""
        assert self.limit is not None
        reserve = max(1.0, min(self.reserve, 0.1 * self.limit)) if self.limit > 1 else 0.0
        return max(1, int(self.limit - reserve))

    def _expire(self, now: float) -> None:
        assert self.interval is not None
        horizon = now - self.interval - self.slack + 1e-9  # a sleep of exactly the wait lands on it
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` requests' worth, sleeping until they are allowed; returns seconds waited."""
        waited = 0.0
        while True:
            reserved = False
            with self._lock:
                now = self._clock()
                if self.limit is not None and self.interval is not None:
                    self._expire(now)
                    count = max(1, round(n))
                    over = len(self._sent) + count - self._allowed()
                    if over <= 0:
                        self._sent.extend([now] * count)
                        return waited
                    # until enough of the oldest requests have left the window (then look again:
                    # another thread may have taken the slot)
                    wait = max(self._sent[min(over, len(self._sent)) - 1] + self.interval + self.slack - now, 1e-3)
                else:
                    if not self.rate:
                        return waited
                    self._refill(now)
                    self._tokens -= n  # reserve now (may go negative): concurrent callers queue up
                    if self._tokens >= 0:
                        return waited
                    wait, reserved = -self._tokens / self.rate, True
            self.waited += wait
            waited += wait
            self._sleep(wait)
            if reserved:
                return waited

    def update(self, *, limit: float | None = None, interval: float | None = None,
               remaining: float | None = None) -> None:
        """Feed the vendor's view: ``limit`` requests per ``interval`` seconds, ``remaining`` left."""
        with self._lock:
            now = self._clock()
            if limit and interval and limit > 0 and interval > 0:
                self.limit, self.interval = float(limit), float(interval)
            if self.limit is not None and self.interval is not None:
                if remaining is not None:
                    # requests the vendor counted and this budget did not: count them as sent now.
                    # Not expired first: the vendor counted before this answer came back, so a send
                    # that left the window meanwhile must still be in the comparison.
                    unseen = int(self.limit - remaining) - len(self._sent)
                    if unseen > 0:
                        self._sent.extend([now] * unseen)
            elif remaining is not None and limit:
                # a window without its length: drain the bucket to what the vendor says is left
                self._refill(now)
                self._tokens = min(self.capacity, remaining - max(1.0, min(self.reserve, 0.1 * limit)))

    def feed_hubspot(self, headers: Mapping[str, str]) -> None:
        """Read ``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`` (absent: no change)."""
        try:
            mx = _header(headers, "X-HubSpot-RateLimit-Max")
            rem = _header(headers, "X-HubSpot-RateLimit-Remaining")
            ivl = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
            if mx is None and rem is None:
                return
            self.update(limit=float(mx) if mx else None, interval=float(ivl) / 1000.0 if ivl else None,
                        remaining=float(rem) if rem else None)
        except ValueError:
            return


# ---------------------------------------------------------------------------------------------
# httpx
# ---------------------------------------------------------------------------------------------

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0, pool=30.0)


def make_client(base_url: str, *, headers: Mapping[str, str] | None = None,
                timeout: float | httpx.Timeout | None = None, secrets: Iterable[str | None] = (),
                max_connections: int = 8, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx.Client: HTTP/1.1 keep-alive pool, connect 10 s / read 60 s, no redirects followed.

    Requests are logged at DEBUG with secrets masked.
    """
    masker = Masker(secrets)

    def log_request(request: httpx.Request) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", request.method, masker.mask(str(request.url)))

    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                            keepalive_expiry=30.0),
        http2=False,
        follow_redirects=False,
        transport=transport,
        event_hooks={"request": [log_request]},
    )


class VendorHTTP:
    """One vendor's httpx client with retries, classification, a rate budget and masking."""

    def __init__(self, vendor: str, base_url: str, *, headers: Mapping[str, str] | None = None,
                 secrets: Iterable[str | None] = (), policy: RetryPolicy | None = None,
                 budget: RateBudget | None = None, timeout: float | httpx.Timeout | None = None,
                 on_response: Callable[[httpx.Response], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        secrets = list(secrets)
        self.vendor = vendor
        self.masker = Masker(secrets)
        for v in (headers or {}).values():  # e.g. an Authorization header built by the caller
            self.masker.add(v.split(" ", 1)[-1])
        self.policy = policy or RetryPolicy()
        self.budget = budget
        self.on_response = on_response
        self.requests = 0
        self.client = make_client(base_url, headers=headers, timeout=timeout, secrets=secrets,
                                  transport=transport)

    def _once(self, method: str, url: str, kwargs: dict[str, Any], parse: bool) -> Any:
        if self.budget is not None:
            self.budget.acquire()
        self.requests += 1
        resp = self.client.request(method, url, **kwargs)  # reads the whole body
        if self.on_response is not None:
            self.on_response(resp)
        if resp.status_code >= 400:
            raise classify_response(self.vendor, resp.status_code, resp.headers, resp.content, masker=self.masker)
        if not parse:
            return resp
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:  # a 2xx with a cut-off body: retry
            raise TransientVendorError("response is not valid JSON (truncated?); will retry", vendor=self.vendor,
                                       status=resp.status_code) from exc

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; returns a 2xx/3xx response or raises a :class:`VendorError`."""
        resp: httpx.Response = self._call(method, url, kwargs, False)
        return resp

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send with retries and parse the JSON body (an unparseable 2xx body is retried)."""
        return self._call(method, url, kwargs, True)

    def _call(self, method: str, url: str, kwargs: dict[str, Any], parse: bool) -> Any:
        return self.policy.call(
            self._once, method, url, kwargs, parse,
            translate=lambda e: translate_transport_error(e, vendor=self.vendor, masker=self.masker),
            describe=f"{self.vendor} {method} {self.masker.mask(url)}")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> VendorHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
