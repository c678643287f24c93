"""core/http.py against a real local HTTP server: retries, Retry-After, masking, rate budget.

The server is stdlib ``http.server`` on 127.0.0.1 in a thread; each test scripts the responses it
serves and counts the requests it received. Waits are observed through the injectable ``sleep``
and ``clock`` of RetryPolicy / RateBudget; nothing in core/http.py is patched.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import urllib3

from core.errors import QuotaExhaustedError, RateLimitedError, TerminalVendorError, TransientVendorError
from core.http import (
    Masker,
    RateBudget,
    RetryPolicy,
    VendorHTTP,
    classify_response,
    parse_retry_after,
    translate_transport_error,
)

TOKEN = "pat-na1-5ecret-t0ken-0123456789abcdef"


@dataclass
class Script:
    """Responses to serve in order (the last one repeats) and the requests seen."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[Any, ...]:
        with self.lock:
            return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.script.seen.append((self.command, self.path, dict(self.headers)))
        step = self.script.next()
        kind = step[0]
        if kind == "drop":  # close without any response
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "truncate":  # promise 1000 bytes, send 10, close
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"results"')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        _, status, headers, body = step
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("H", (_Handler,), {"script": script})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


OK: tuple[Any, ...] = ("resp", 200, {}, '{"ok": true}')


def _http(base: str, waits: list[float], **policy: Any) -> VendorHTTP:
    return VendorHTTP("hubspot", base, headers={"Authorization": f"Bearer {TOKEN}"}, secrets=[TOKEN],
                      policy=RetryPolicy(sleep=waits.append, rng=random.Random(7), **policy), timeout=5.0)


def test_429_retry_after_seconds_is_honoured(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("resp", 429, {"Retry-After": "2"}, '{"status":"error","message":"slow down"}'), OK]
    waits: list[float] = []
    with _http(base, waits) as http:
        assert http.json("GET", "/crm/v3/objects/contacts") == {"ok": True}
    assert len(script.seen) == 2
    assert waits == [2.0]


def test_429_retry_after_http_date_and_cap(server: tuple[str, Script]) -> None:
    base, script = server
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    script.steps = [("resp", 429, {"Retry-After": when}, "{}"), ("resp", 429, {"Retry-After": "9999"}, "{}"), OK]
    waits: list[float] = []
    with _http(base, waits, retry_after_cap=45.0) as http:
        http.json("GET", "/x")
    assert len(script.seen) == 3
    assert 27.0 <= waits[0] <= 31.0  # HTTP-date has one-second resolution
    assert waits[1] == 45.0  # capped


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(email.utils.formatdate(now + 12, usegmt=True), now=now) == 12.0
    assert parse_retry_after(email.utils.formatdate(now - 12, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_503_is_retried_with_jittered_backoff(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("resp", 503, {}, "{}"), ("resp", 502, {}, "{}"), OK]
    waits: list[float] = []
    with _http(base, waits, backoff_base=1.0) as http:
        assert http.json("GET", "/x") == {"ok": True}
    assert len(script.seen) == 3
    assert len(waits) == 2
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0  # full jitter below 1*2**(n-1)


def test_dropped_connection_is_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("drop",), OK]
    waits: list[float] = []
    with _http(base, waits) as http:
        assert http.json("GET", "/x") == {"ok": True}
    assert len(script.seen) == 2 and len(waits) == 1


def test_truncated_body_is_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("truncate",), OK]
    waits: list[float] = []
    with _http(base, waits) as http:
        assert http.json("GET", "/x") == {"ok": True}
    assert len(script.seen) == 2


def test_gives_up_after_max_attempts(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("resp", 500, {}, '{"message":"boom"}')]
    waits: list[float] = []
    with _http(base, waits, max_attempts=4) as http, pytest.raises(TransientVendorError) as ei:
        http.json("GET", "/x")
    assert len(script.seen) == 4 and len(waits) == 3
    assert ei.value.status == 500


def test_gives_up_when_total_time_would_be_exceeded(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("resp", 429, {"Retry-After": "20"}, "{}")]
    now = [0.0]

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    waits: list[float] = []
    policy = RetryPolicy(sleep=sleep, clock=lambda: now[0], max_elapsed=50.0, max_attempts=10)
    with VendorHTTP("hubspot", base, policy=policy) as http, pytest.raises(RateLimitedError):
        http.json("GET", "/x")
    assert waits == [20.0, 20.0]  # a third wait would end at 60 s > 50 s
    assert len(script.seen) == 3


def test_401_is_terminal_not_retried_and_token_masked(server: tuple[str, Script],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    base, script = server
    echo = (f'{{"status":"error","message":"Authentication credentials not found. Token {TOKEN} '
            f'(Authorization: Bearer {TOKEN}) is invalid","category":"INVALID_AUTHENTICATION"}}')
    script.steps = [("resp", 401, {}, echo)]
    waits: list[float] = []
    caplog.set_level(logging.DEBUG, logger="factoryline")
    with _http(base, waits) as http, pytest.raises(TerminalVendorError) as ei:
        http.json("GET", f"/crm/v3/objects/contacts?access_token={TOKEN}")
    assert len(script.seen) == 1 and waits == []
    assert script.seen[0][2]["Authorization"] == f"Bearer {TOKEN}"  # the token was really sent
    text = f"{ei.value} {ei.value.args!r} {ei.value.context!r}"
    assert TOKEN not in text and "***" in text
    assert "access_token" in str(ei.value)  # says what to do next
    assert caplog.records, "the request is logged at DEBUG"
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_retry_log_lines_are_masked(server: tuple[str, Script], caplog: pytest.LogCaptureFixture) -> None:
    base, script = server
    script.steps = [("resp", 503, {}, f'{{"message":"upstream said access_token={TOKEN}"}}'), OK]
    caplog.set_level(logging.DEBUG, logger="factoryline")
    with _http(base, []) as http:
        http.json("GET", f"/x?hapikey={TOKEN}")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "retrying" in warnings[0].getMessage()
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_policy_wraps_sdk_style_calls_urllib3(server: tuple[str, Script]) -> None:
    """Vendor SDKs (hubspot-api-client) use urllib3: their transport errors are translated too."""
    base, script = server
    script.steps = [("drop",), OK]
    pool = urllib3.PoolManager(retries=False)
    waits: list[float] = []
    policy = RetryPolicy(sleep=waits.append)

    def sdk_call() -> bytes:
        return pool.request("GET", base + "/sdk").data

    out = policy.call(sdk_call, translate=lambda e: translate_transport_error(e, vendor="hubspot"))
    assert out == b'{"ok": true}' and len(script.seen) == 2 and len(waits) == 1


def test_a_refused_connection_is_told_apart_from_a_timeout() -> None:
    """urllib3 (the SDKs' transport) raises NewConnectionError, a ConnectTimeoutError subclass, for a
    refused connection: it is retried, and the message says the connection failed, not a timeout."""
    with socket.socket() as s:  # a port that was just free: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = urllib3.PoolManager(retries=False)
    with pytest.raises(urllib3.exceptions.NewConnectionError) as ei:
        pool.request("GET", f"http://127.0.0.1:{port}/x", timeout=2)
    err = translate_transport_error(ei.value, vendor="hubspot")
    assert isinstance(err, TransientVendorError)
    assert str(err).startswith("hubspot: connection failed (NewConnectionError"), str(err)
    with pytest.raises(httpx.ConnectError) as hx:
        httpx.get(f"http://127.0.0.1:{port}/x", timeout=2)
    assert "connection failed" in str(translate_transport_error(hx.value, vendor="x"))


def test_untranslated_errors_propagate_unretried() -> None:
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        RetryPolicy(sleep=lambda s: None).call(bad, translate=lambda e: None)
    assert calls == [1]


def test_translated_error_keeps_cause() -> None:
    def bad() -> None:
        raise httpx.ConnectError("refused")

    with pytest.raises(TransientVendorError) as ei:
        RetryPolicy(sleep=lambda s: None, max_attempts=2).call(
            bad, translate=lambda e: translate_transport_error(e, vendor="x"))
    assert isinstance(ei.value.__cause__, httpx.ConnectError)


def test_classifier_per_vendor() -> None:
    daily = classify_response("hubspot", 429, {}, b'{"status":"error","policyName":"DAILY","message":"daily"}')
    assert isinstance(daily, QuotaExhaustedError)
    rolling = classify_response("hubspot", 429, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
                                b'{"policyName":"TEN_SECONDLY_ROLLING","message":"ten"}')
    assert isinstance(rolling, RateLimitedError) and rolling.retry_after == 10.0
    sf = classify_response("salesforce", 403, {}, b'[{"message":"TotalRequests Limit exceeded.",'
                                                   b'"errorCode":"REQUEST_LIMIT_EXCEEDED"}]')
    assert isinstance(sf, QuotaExhaustedError)
    mk = classify_response("marketo", 200, {}, {"success": False, "errors": [{"code": "606", "message": "x"}]})
    assert isinstance(mk, RateLimitedError)
    assert isinstance(classify_response("other", 404, {}, b"nope"), TerminalVendorError)
    assert type(classify_response("other", 504, {}, b"")) is TransientVendorError


def test_masker_patterns() -> None:
    m = Masker([TOKEN, "ab"])  # too-short values are not masked verbatim
    s = m.mask(f"url?access_token={TOKEN}&x=1 Authorization: Bearer zzz.yyy "
               f'{{"refresh_token": "rrr"}} {TOKEN.replace("-", "%2D")} lab')
    assert TOKEN not in s and "zzz" not in s and "rrr" not in s
    assert "x=1" in s and "lab" in s
    assert m.mask(f"{{'Authorization': 'Bearer {TOKEN}'}}").count("***") >= 1


class _Clock:
    """A fake clock whose ``sleep`` moves it on and records the waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _hubspot_headers(limit: int, remaining: int, interval_ms: int = 10_000) -> dict[str, str]:
    return {"X-HubSpot-RateLimit-Max": str(limit), "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms)}


def test_rate_budget_token_bucket_until_the_vendor_names_its_window() -> None:
    clock = _Clock()
    assert RateBudget(clock=clock, sleep=clock.sleep).acquire() == 0.0  # unlimited until the vendor speaks
    b = RateBudget(rate=4.0, capacity=4.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        assert b.acquire() == 0.0  # a full bucket allows a burst
    for _ in range(8):
        b.acquire()
    assert clock.now == pytest.approx(2.0)  # then 4 per second


def test_rate_budget_mirrors_the_vendor_window() -> None:
    clock = _Clock()
    b = RateBudget.window(100, 10.0, clock=clock, sleep=clock.sleep)  # HubSpot's lowest tier, before any answer
    b.acquire()
    # the first answer names the portal's window: 190 per 10 s, this request counted
    b.feed_hubspot(_hubspot_headers(190, 189))
    assert (b.limit, b.interval) == (190, 10.0)
    clock.now = 1.0
    for _ in range(187):
        b.acquire()
    assert clock.slept == [] and clock.now == 1.0  # the window's limit less a reserve of 2, at once
    # the next one waits until the first request leaves the window (plus the slack for latency)
    assert b.acquire() == pytest.approx(10.0 + b.slack - 1.0)
    # requests the vendor counted and the budget did not send (another integration) are waited for
    clock.now = 30.0
    b.acquire()
    b.feed_hubspot(_hubspot_headers(190, 10))  # 180 in the window, 179 of them unseen
    for _ in range(8):
        b.acquire()
    assert clock.now == 30.0
    assert b.acquire() == pytest.approx(10.0 + b.slack)


@pytest.mark.parametrize("others", [0, 60])
def test_rate_budget_uses_a_rolling_window_fully_without_429(others: int) -> None:
    """A sequential client against a simulated rolling window of 190 per 10 s for a simulated
    minute: no request refused, and at least 95 % of what the window allows. ``others``
    requests of another integration arrive at the start, unseen by the budget."""
    clock = _Clock()
    limit, interval, latency = 190, 10.0, 0.02  # the vendor stamps a request half a latency after it left
    window: list[float] = [0.0] * others
    b = RateBudget.window(100, interval, clock=clock, sleep=clock.sleep)
    sent = refused = 0
    while clock.now < 60.0:
        b.acquire()
        arrival = clock.now + latency / 2
        window = [t for t in window if arrival - t < interval]
        if len(window) >= limit:
            refused += 1
        else:
            window.append(arrival)
            sent += 1
        clock.now += latency
        b.feed_hubspot(_hubspot_headers(limit, max(0, limit - len(window))))
    assert refused == 0
    assert sent >= 0.95 * (limit * 6 - others)  # 6 windows in a minute


def test_rate_budget_is_thread_safe() -> None:
    b = RateBudget(rate=1000.0, capacity=50.0)
    threads = [threading.Thread(target=lambda: [b.acquire() for _ in range(50)]) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 tokens at 1000/s with 50 in the bucket: at least 0.15 s, however the threads interleave
    assert time.monotonic() - start >= 0.14
    assert b.waited >= 0.14


def test_vendor_http_feeds_budget_from_headers(server: tuple[str, Script]) -> None:
    base, script = server
    script.steps = [("resp", 200, {"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "1",
                                   "X-HubSpot-RateLimit-Interval-Milliseconds": "1000"}, "{}")]
    clock = _Clock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    with VendorHTTP("hubspot", base, budget=budget, on_response=lambda r: budget.feed_hubspot(r.headers)) as http:
        http.json("GET", "/a")
        http.json("GET", "/b")
    # 9 of 10 used, 1 kept in reserve: /b waits for the window to pass (plus the slack)
    assert clock.slept == [pytest.approx(1.0 + budget.slack)]
