"""A vendor emulator's route table: which handler a request goes to, and how stats name it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.protocol import Request

__all__ = ["Routes"]


class Routes:
    """``(method, path regex, handler name, stats template)`` rows, tried in order.

    ``match`` gives the handler name and the path's named groups; ``route`` gives the template
    ``/_sandbox/stats`` counts requests under (``"METHOD (unknown)"`` for no match).
    """

    def __init__(self, *rows: tuple[str, str, str, str]) -> None:
        # a template may say "{method}" where one path serves several methods
        self._rows = [(method, re.compile(pattern), name, template.replace("{method}", method))
                      for method, pattern, name, template in rows]

    def _find(self, request: Request) -> tuple[str, str, dict[str, str]] | None:
        for method, pattern, name, template in self._rows:
            if method == request.method:
                m = pattern.match(request.path)
                if m:
                    return name, template, m.groupdict()
        return None

    def match(self, request: Request) -> tuple[str, dict[str, str]] | None:
        found = self._find(request)
        return (found[0], found[2]) if found else None

    def route(self, request: Request) -> str:
        found = self._find(request)
        return found[1] if found else f"{request.method} (unknown)"
