"""A small, fast HTTP/1.1 server for emulators: threaded, keep-alive, 127.0.0.1 only.

One listening socket per emulator (so a vendor SDK takes the emulator's base URL as its host),
one thread per connection, ``TCP_NODELAY`` on every accepted socket (without it each request on
a kept-alive connection stalls ~40 ms on delayed ACKs), orjson for bodies. The server owns what
every vendor shares: the ``/_sandbox/`` admin endpoints, request statistics and fault injection.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import orjson

from sandbox.faults import RECORD_KINDS, REPLACING_KINDS, FaultInjector, FaultRule
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.world import World

__all__ = ["EmulatorServer", "ServerGroup"]

HOST = "127.0.0.1"
#: longest request line read; longer ones get a plain 414 (vendors set their own, lower limits)
MAX_LINE = 128 * 1024
_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _parse_qs(qs: str) -> dict[str, list[str]]:
    """``parse_qs(qs, keep_blank_values=True)``, unquoting only the pairs that need it (a HubSpot
    list request repeats ``properties=`` dozens of times; parse_qs took ~80 us of each)."""
    out: dict[str, list[str]] = {}
    for pair in qs.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            name, value = unquote(name.replace("+", " ")), unquote(value.replace("+", " "))
        if name in out:
            out[name].append(value)
        else:
            out[name] = [value]
    return out


class EmulatorServer:
    """One emulator on its own port."""

    def __init__(self, name: str, emulator: Emulator, world: World, injector: FaultInjector,
                 port: int = 0) -> None:
        self.name = name
        self.emulator = emulator
        self.world = world
        self.faults = injector
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, port))
        self._sock.listen(256)
        self._sock.settimeout(0.25)
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://{HOST}:{self.port}"
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._routes: dict[str, dict[str, Any]] = {}
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name=f"sandbox-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sock.close()
        close = getattr(self.emulator, "close", None)  # optional: release worker threads, caches
        if callable(close):
            close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    # -- statistics ------------------------------------------------------------------------------

    def _count(self, template: str, status: int, records: int) -> None:
        with self._lock:
            entry = self._routes.get(template)
            if entry is None:
                entry = self._routes[template] = {"requests": 0, "records": 0, "statuses": {}}
            entry["requests"] += 1
            entry["records"] += records
            entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            routes = {k: {**v, "statuses": dict(v["statuses"])} for k, v in self._routes.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"vendor": self.name, "tick": self.world.tick,
                "requests": sum(v["requests"] for v in routes.values()),
                "records_served": sum(v["records"] for v in routes.values()), "routes": routes,
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),  # the whole serving process
                "faults": self.faults.rules()}

    def reset_stats(self) -> None:
        with self._lock:
            self._routes.clear()

    # -- HTTP ------------------------------------------------------------------------------------

    def _serve_conn(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb", buffering=65536)
        try:
            while not self._stop.is_set():
                line = rfile.readline(MAX_LINE)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                if not line.endswith(b"\n"):
                    self._send(conn, Response(414, {"message": "request line too long"}), False)
                    return
                parts = line.decode("latin-1").rstrip("\r\n").split(" ")
                if len(parts) != 3:
                    self._send(conn, Response(400, {"message": "malformed request line"}), False)
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                while True:
                    h = rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = self._read_chunked(rfile)
                else:
                    n = int(headers.get("content-length") or 0)
                    body = rfile.read(n) if n else b""
                conn_hdr = headers.get("connection", "").lower()
                keep = conn_hdr != "close" if version == "HTTP/1.1" else conn_hdr == "keep-alive"
                if not self._dispatch(conn, method.upper(), target, headers, body, keep):
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                rfile.close()
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_chunked(rfile: Any) -> bytes:
        out = bytearray()
        while True:
            size = int(rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += rfile.read(size)
            rfile.readline(8)

    def _encode(self, resp: Response) -> bytes:
        if resp.body is None:
            return b""
        if isinstance(resp.body, bytes | bytearray):
            return bytes(resp.body)
        return _json(resp.body)

    def _head(self, resp: Response, length: int, keep: bool) -> bytes:
        lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
                 f"Content-Type: {resp.content_type}", f"Content-Length: {length}"]
        lines.extend(f"{k}: {v}" for k, v in resp.headers.items())
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, conn: socket.socket, resp: Response, keep: bool, body: bytes | None = None) -> None:
        data = self._encode(resp) if body is None else body
        conn.sendall(self._head(resp, len(data), keep) + data)

    def _dispatch(self, conn: socket.socket, method: str, target: str, headers: dict[str, str],
                  body: bytes, keep: bool) -> bool:
        raw_path, _, qs = target.partition("?")
        req = Request(method, unquote(raw_path), target, _parse_qs(qs), headers, body,
                      self.base_url)
        if req.path.startswith("/_sandbox/"):
            self._send(conn, self._admin(req), keep)
            return keep
        try:
            template = self.emulator.route(req)
            picked = self.faults.pick(method, req.path, template)
            rule = picked[0] if picked else None
            if rule is not None and rule.kind == "timeout":
                self._count(template, 0, 0)
                self._stop.wait(rule.delay)
                return False
            if rule is not None and rule.kind in REPLACING_KINDS:
                resp = self.emulator.fault_response(rule, req)
            else:
                resp = self.emulator.handle(req)
                if picked is not None and picked[0].kind in RECORD_KINDS:
                    resp = self.emulator.corrupt(resp, picked[0].kind, picked[1])
        except Exception as exc:  # an emulator bug must show, not hang the client
            traceback.print_exc(file=sys.stderr)
            template = "?"
            rule = None
            resp = Response(500, {"status": "error", "message": f"sandbox emulator error: {exc!r}"})
        self._count(template, resp.status, resp.records)
        data = self._encode(resp)
        if rule is not None and rule.kind == "truncate":
            self._send(conn, resp, keep, data[: max(1, len(data) // 2)])
            return keep
        if rule is not None and rule.kind == "drop":
            conn.sendall(self._head(resp, len(data), True) + data[: len(data) // 2])
            conn.shutdown(socket.SHUT_RDWR)
            return False
        self._send(conn, resp, keep, data)
        return keep

    def _admin(self, req: Request) -> Response:
        route = (req.method, req.path.rstrip("/"))
        try:
            payload = req.json() or {}
            if route == ("GET", "/_sandbox/health"):
                return Response(200, {"ok": True, "vendor": self.name, "tick": self.world.tick})
            if route == ("GET", "/_sandbox/world"):
                return Response(200, {**self.world.clock_json(), "tick": self.world.tick})
            if route == ("POST", "/_sandbox/advance"):
                if "at" in payload:
                    self.world.advance(at=payload["at"])
                else:
                    self.world.advance(int(payload.get("ticks", 1)))
                return Response(200, {**self.world.clock_json(), "tick": self.world.tick})
            if route == ("GET", "/_sandbox/stats"):
                return Response(200, self.stats())
            if route == ("POST", "/_sandbox/stats/reset"):
                self.reset_stats()
                return Response(200, {"ok": True})
            if route == ("GET", "/_sandbox/faults"):
                return Response(200, {"rules": self.faults.rules()})
            if route == ("POST", "/_sandbox/faults"):
                rules = [FaultRule.from_json(r) for r in payload.get("rules", [])]
                self.faults.set_rules(rules)
                return Response(200, {"rules": self.faults.rules()})
        except (ValueError, TypeError, KeyError) as exc:
            return Response(400, {"error": str(exc)})
        return Response(404, {"error": f"no admin route {req.method} {req.path}",
                              "routes": ["GET /_sandbox/health", "GET /_sandbox/world", "POST /_sandbox/advance",
                                         "GET /_sandbox/stats", "POST /_sandbox/stats/reset",
                                         "GET /_sandbox/faults", "POST /_sandbox/faults"]})


class ServerGroup:
    """Every requested emulator over one shared world, each on its own port."""

    def __init__(self, specs: Sequence[EmulatorSpec], world: World, *, rate_limits: bool = False,
                 faults: Sequence[FaultRule] = (), ports: dict[str, int] | None = None) -> None:
        self.world = world
        self.servers: dict[str, EmulatorServer] = {}
        options = EmulatorOptions(rate_limits=rate_limits)
        for spec in specs:
            emulator = spec.factory(world, options)
            self.servers[spec.name] = EmulatorServer(spec.name, emulator, world,
                                                     FaultInjector(spec.name, faults),
                                                     (ports or {}).get(spec.name, 0))

    def start(self) -> None:
        # Serving allocates many short-lived dicts, and each full collection walks every object the
        # process holds (modules, plugins, the world): frozen, they are left out of collections
        # until stop (~10% of a HubSpot contacts read's CPU otherwise)
        gc.freeze()
        for server in self.servers.values():
            server.start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        gc.unfreeze()

    def describe(self) -> dict[str, dict[str, Any]]:
        return {name: {"base_url": s.base_url, "settings": s.emulator.settings(s.base_url)}
                for name, s in self.servers.items()}
