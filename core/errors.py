"""Errors raised by factoryline.

One base class; every lower-level exception is translated (``raise X(...) from exc``) so callers
and retry policies only need to know this tree::

    FactorylineError
    ├── ConfigurationError          settings or credentials missing/invalid (terminal)
    ├── RegistrationError           a plugin registered something core refuses (terminal)
    ├── MappingError                a mapping file is invalid: names file, line, valid choices
    ├── VendorError                 the vendor answered with an error
    │   ├── TransientVendorError    429, 5xx, timeouts, dropped connections: retry later
    │   │   └── RateLimitedError    429 / vendor throttle signal, carries retry_after seconds
    │   └── TerminalVendorError     4xx other than 429, bad auth: retrying will not help
    │       └── QuotaExhaustedError daily quota used up: stop, keep what was loaded, run is partial
    └── RunIncompleteError          a run ended without finishing every stream
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "FactorylineError",
    "MappingError",
    "QuotaExhaustedError",
    "RateLimitedError",
    "RegistrationError",
    "RunIncompleteError",
    "TerminalVendorError",
    "TransientVendorError",
    "VendorError",
]


class FactorylineError(Exception):
    """Base class of every error factoryline raises on purpose."""


class ConfigurationError(FactorylineError):
    """Settings or credentials are missing or invalid. The message says where to set them."""


class RegistrationError(FactorylineError):
    """A plugin registered a connector, stream, transform or emulator that core refuses."""


class MappingError(FactorylineError):
    """A mapping file is invalid. ``str()`` names the file, the line and the valid choices."""

    def __init__(self, message: str, *, file: str, line: int | None = None,
                 choices: list[str] | None = None) -> None:
        self.file = file
        self.line = line
        self.choices = sorted(choices) if choices else []
        where = f"{file}:{line}" if line is not None else file
        text = f"{where}: {message}"
        if self.choices:
            text += f" (valid choices: {', '.join(self.choices)})"
        super().__init__(text)


class VendorError(FactorylineError):
    """The vendor API answered with an error (or did not answer)."""

    def __init__(self, message: str, *, vendor: str, status: int | None = None,
                 code: str | None = None, **context: Any) -> None:
        self.vendor = vendor
        self.status = status
        self.code = code
        self.context = context
        parts = [f"{vendor}: {message}"]
        if status is not None:
            parts.append(f"(HTTP {status}{', ' + code if code else ''})")
        super().__init__(" ".join(parts))


class TransientVendorError(VendorError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections."""


class RateLimitedError(TransientVendorError):
    """The vendor asked us to slow down. ``retry_after`` is in seconds when the vendor said."""

    def __init__(self, message: str, *, vendor: str, retry_after: float | None = None,
                 **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, vendor=vendor, **kwargs)


class TerminalVendorError(VendorError):
    """Retrying will not help: bad credentials, bad request, missing permission."""


class QuotaExhaustedError(TerminalVendorError):
    """The daily quota is used up. The run stops, keeps what was loaded and ends as partial."""


class RunIncompleteError(FactorylineError):
    """Raised by ``factoryline run`` when at least one stream did not finish."""
