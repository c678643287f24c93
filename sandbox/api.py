"""Public API of the sandbox: start local vendor emulators over one seeded world.

>>> with start_sandbox(["hubspot"], size=500) as sb:          # doctest: +SKIP
...     hs = sb.emulators["hubspot"]
...     HubSpot(access_token=hs.settings["access_token"], host=hs.base_url)

By default the emulators run in a child process (the server on one core, the caller on the
other); the child exits when the parent closes the pipe it watches, so a crashed test leaves no
orphan server behind. ``in_process=True`` runs them on threads of the calling process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TextIO

import httpx

from sandbox.faults import FaultRule
from sandbox.protocol import EmulatorSpec
from sandbox.server import ServerGroup
from sandbox.world import World

__all__ = [
    "EmulatorSpec",
    "FaultRule",
    "RunningEmulator",
    "Sandbox",
    "SandboxError",
    "load_emulators",
    "serve_forever",
    "start_sandbox",
]

#: Emulators that ship with factoryline, used when the plugin registry cannot provide them (e.g. a
#: connector package that fails to import). Plugins normally register through ``register_emulators``.
BUILTIN_EMULATORS: dict[str, str] = {
    "hubspot": "connectors.hubspot.emulator:emulator_spec",
    "salesforce": "connectors.salesforce.emulator:emulator_spec",
    "marketo": "connectors.marketo.emulator:emulator_spec",
    "mailchimp": "connectors.mailchimp.emulator:emulator_spec",
    "x": "connectors.x.emulator:emulator_spec",
    "shopify": "connectors.shopify.emulator:emulator_spec",
}
_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 30.0


class SandboxError(RuntimeError):
    """The sandbox could not start or answer."""


@dataclass(frozen=True)
class RunningEmulator:
    name: str
    base_url: str
    #: what the vendor's connector needs: ``base_url`` plus credentials
    settings: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The settings as dlt environment variables (``SOURCES__HUBSPOT__BASE_URL=...``)."""
        return {f"SOURCES__{self.name.upper()}__{k.upper()}": v for k, v in self.settings.items()}


def _load_ref(ref: str) -> EmulatorSpec:
    module, _, func = ref.partition(":")
    spec = getattr(importlib.import_module(module), func or "emulator_spec")()
    if not isinstance(spec, EmulatorSpec):
        raise SandboxError(f"{ref} returned {spec!r}, expected an EmulatorSpec")
    return spec


def load_emulators() -> dict[str, EmulatorSpec]:
    """Every emulator the loaded plugins registered (plus built-ins their plugin failed to provide)."""
    specs: dict[str, EmulatorSpec] = {}
    try:
        from core.plugins import get_registry

        specs.update({k: v for k, v in get_registry().emulators.items() if isinstance(v, EmulatorSpec)})
    except Exception as exc:  # a broken plugin setup must not stop the sandbox from serving built-ins
        warnings.warn(f"sandbox: plugin registry unavailable ({type(exc).__name__}: {exc}); "
                      "using built-in emulators", stacklevel=2)
    for name, ref in BUILTIN_EMULATORS.items():
        if name not in specs:
            specs[name] = _load_ref(ref)
    return specs


def _resolve(vendors: Sequence[str] | None) -> list[EmulatorSpec]:
    available = load_emulators()
    if vendors is None:
        return [available[k] for k in sorted(available)]
    out = []
    for v in vendors:
        if ":" in v:  # "package.module:function" names an emulator outside the registry
            out.append(_load_ref(v))
        elif v in available:
            out.append(available[v])
        else:
            raise SandboxError(f"no sandbox emulator named {v!r} (available: {', '.join(sorted(available)) or 'none'})")
    return out


class Sandbox:
    """Running emulators. A context manager; admin calls go over each emulator's ``/_sandbox/`` API."""

    def __init__(self, emulators: dict[str, RunningEmulator], *, stop: Callable[[], None]) -> None:
        self.emulators = emulators
        self._stop = stop
        self._client = httpx.Client(timeout=30.0)
        self._stopped = False

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _admin(self, vendor: str, method: str, path: str, body: Any = None) -> Any:
        if vendor not in self.emulators:
            raise SandboxError(f"no running emulator {vendor!r} (running: {', '.join(self.emulators)})")
        resp = self._client.request(method, f"{self.emulators[vendor].base_url}/_sandbox/{path}", json=body)
        if resp.status_code != 200:
            raise SandboxError(f"{vendor} /_sandbox/{path} answered {resp.status_code}: {resp.text}")
        return resp.json()

    def advance(self, ticks: int = 1, *, at: str | None = None) -> dict[str, Any]:
        """Advance the shared world (every emulator sees it). Returns the clock."""
        vendor = next(iter(self.emulators))
        return dict(self._admin(vendor, "POST", "advance", {"at": at} if at is not None else {"ticks": ticks}))

    def clock(self) -> dict[str, Any]:
        return dict(self._admin(next(iter(self.emulators)), "GET", "world"))

    def stats(self, vendor: str) -> dict[str, Any]:
        return dict(self._admin(vendor, "GET", "stats"))

    def reset_stats(self, vendor: str) -> None:
        self._admin(vendor, "POST", "stats/reset")

    def set_faults(self, vendor: str, rules: Sequence[FaultRule]) -> None:
        """Replace the fault rules of one emulator (an empty list clears them)."""
        self._admin(vendor, "POST", "faults", {"rules": [r.to_json() for r in rules]})

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._client.close()
            self._stop()


def start_sandbox(vendors: Sequence[str] | None = None, *, size: int = 2000, seed: int = 7,
                  state_dir: Path | None = None, rate_limits: bool = False, faults: Sequence[FaultRule] = (),
                  in_process: bool = False, grow: bool = False) -> Sandbox:
    """Start emulators for ``vendors`` (default: every registered one) and wait until they answer.

    ``state_dir`` keeps the world's clock between runs; ``grow`` makes each tick also create 0.5%
    new records. The world is at its latest tick; call :meth:`Sandbox.advance` to move it on.
    """
    if in_process:
        specs = _resolve(vendors)
        world = World.open(seed=seed, size=size, grow=grow, state_dir=state_dir)
        group = ServerGroup(specs, world, rate_limits=rate_limits, faults=faults)
        group.start()
        running = {n: RunningEmulator(n, d["base_url"], d["settings"]) for n, d in group.describe().items()}
        return Sandbox(running, stop=group.stop)
    cmd = [sys.executable, "-m", "sandbox", "serve", "--size", str(size), "--seed", str(seed)]
    for v in vendors or ():
        cmd += ["--vendor", v]
    if state_dir is not None:
        cmd += ["--state-dir", str(Path(state_dir).resolve())]
    if rate_limits:
        cmd.append("--rate-limits")
    if grow:
        cmd.append("--grow")
    if faults:
        cmd += ["--faults", json.dumps([f.to_json() for f in faults])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([*cmd, "--ready-json", "--watch-stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = _read_ready_line(proc.stdout, _START_TIMEOUT)
    if not line:
        _terminate(proc)
        raise SandboxError(f"the sandbox process did not start (exit code {proc.returncode}); "
                           f"run `{' '.join(cmd)}` to see why")
    described = json.loads(line)
    running = {n: RunningEmulator(n, d["base_url"], d["settings"]) for n, d in described.items()}
    return Sandbox(running, stop=lambda: _terminate(proc))


def _read_ready_line(stream: IO[str], timeout: float) -> str:
    """The first line that looks like JSON (skipping anything a plugin printed), or "" on timeout/EOF."""
    found: list[str] = []

    def read() -> None:
        with contextlib.suppress(ValueError, OSError):  # the stream closes if the child is stopped
            for line in stream:
                if line.startswith("{"):
                    found.append(line)
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else ""


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the child watches stdin and exits on EOF
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def serve_forever(vendors: Sequence[str] | None = None, *, size: int = 2000, seed: int = 7,
                  state_dir: Path | None = None, rate_limits: bool = False, faults: Sequence[FaultRule] = (),
                  ports: dict[str, int] | None = None, port_base: int = 0, ready_json: bool = False,
                  watch_stdin: bool = False, grow: bool = False, out: TextIO | None = None) -> None:
    """Serve emulators in the foreground until interrupted (what ``factoryline sandbox`` runs).

    Prints each emulator's base URL and settings (as JSON on one line with ``ready_json``).
    ``port_base`` gives emulators consecutive ports in name order (0: any free port). With
    ``watch_stdin`` the server exits when its standard input closes (the parent went away).
    """
    out = out or sys.stdout
    # connection threads and read-ahead workers share the GIL: hand it over quickly (default 5 ms)
    sys.setswitchinterval(0.0002)
    specs = _resolve(vendors)
    ports = dict(ports or {})
    if port_base:
        for n, spec in enumerate(sorted(specs, key=lambda s: s.name)):
            ports.setdefault(spec.name, port_base + n)
    world = World.open(seed=seed, size=size, grow=grow, state_dir=state_dir)
    group = ServerGroup(specs, world, rate_limits=rate_limits, faults=faults, ports=ports)
    group.start()
    described = group.describe()
    if ready_json:
        out.write(json.dumps(described) + "\n")
    else:
        out.write(f"factoryline sandbox: seed {seed}, {size} people, tick {world.tick} "
                  f"({len(world.ticks)} tick(s)), state {state_dir or '(not persisted)'}\n")
        for name, d in described.items():
            out.write(f"  {name:<12} {d['base_url']}\n")
            for k, v in d["settings"].items():
                out.write(f"      SOURCES__{name.upper()}__{k.upper()}={v}\n")
        out.write("  admin: POST <base_url>/_sandbox/advance, GET <base_url>/_sandbox/stats. Ctrl-C stops.\n")
    out.flush()
    done = threading.Event()
    if watch_stdin:
        def watch() -> None:
            with contextlib.suppress(Exception):
                while sys.stdin.read(4096):
                    pass
            done.set()
        threading.Thread(target=watch, daemon=True).start()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set()) \
        if threading.current_thread() is threading.main_thread() else None
    parent = os.getppid()
    try:
        while not done.wait(0.5):
            if watch_stdin and os.getppid() != parent:  # reparented: the parent died
                break
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
