"""Per-run profile of the vendor fields a stream delivered: how often each is filled, with what types.

The mapping report ranks unmapped fields by fill rate and shows drift between runs (fields added,
removed or changed type at the vendor) from these profiles. Nested objects are profiled one level
deep (``properties.email``); lists and deeper objects count as one field. One page in four is
profiled (fill rates over those records); types come from the first records of each profiled page.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["FieldProfile"]

_TYPE_SAMPLE = 3


def _type_name(v: Any) -> str:
    t = v.__class__
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    return t.__name__


class FieldProfile:
    """Profiles every ``sample_every``-th page (the first always): counts are exact over the sampled
    records, and ``total`` counts only those, so fill rates are unbiased estimates."""

    def __init__(self, sample_every: int = 4) -> None:
        self.sample_every = sample_every
        self.pages = 0
        self.total = 0
        self.top: Counter[str] = Counter()
        self.nested: dict[str, Counter[str]] = {}
        self.types: dict[str, set[str]] = {}

    def add(self, records: list[dict[str, Any]]) -> None:
        self.pages += 1
        if (self.pages - 1) % self.sample_every:
            return
        self.total += len(records)
        top, nested = self.top, self.nested
        for r in records:
            for k, v in r.items():
                if v is None:
                    continue
                if v.__class__ is dict:
                    sub = nested.get(k)
                    if sub is None:
                        sub = nested[k] = Counter()
                    sub.update([k2 for k2, v2 in v.items() if v2 is not None])
                else:
                    top[k] += 1
        for r in records[:_TYPE_SAMPLE]:
            for k, v in r.items():
                if v.__class__ is dict:
                    for k2, v2 in v.items():
                        if v2 is not None:
                            self.types.setdefault(f"{k}.{k2}", set()).add(_type_name(v2))
                elif v is not None:
                    self.types.setdefault(k, set()).add(_type_name(v))

    def rows(self) -> list[dict[str, Any]]:
        """One row per field path: path, filled, total, fill_rate, types."""
        filled: dict[str, int] = dict(self.top)
        for k, sub in self.nested.items():
            for k2, n in sub.items():
                filled[f"{k}.{k2}"] = n
        for path in self.types:
            filled.setdefault(path, 0)
        return [{"path": p, "filled": n, "total": self.total,
                 "fill_rate": round(n / self.total, 6) if self.total else 0.0,
                 "types": ",".join(sorted(self.types.get(p, ())))} for p, n in sorted(filled.items())]
