"""A SOQL subset for the Salesforce emulator.

``SELECT COUNT() | field, ... FROM Object [WHERE cond (AND cond)* | cond (OR cond)*]
[ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`` where ``cond`` is
``field op literal`` (``= != <> < <= > >=``), ``field [NOT] IN (literal, ...)`` or ``field LIKE
'pattern'``. Literals: ``'strings'``, numbers, ``true``/``false``/``null``, dates ``2024-01-01``
and datetimes ``2024-01-01T00:00:00Z`` / ``2024-01-01T00:00:00.000+0000`` (unquoted, as in SOQL).
Keywords are case-insensitive. Anything else is Salesforce's ``MALFORMED_QUERY``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Cond", "Literal", "Query", "SoqlError", "parse", "parse_datetime"]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<id>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[,()])
""", re.VERBOSE)

_KEYWORDS = {"select", "from", "where", "and", "or", "order", "by", "asc", "desc", "nulls", "first", "last",
             "limit", "offset", "in", "not", "like", "true", "false", "null", "count"}


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | bool | null | date | datetime
    value: Any
    text: str


@dataclass(frozen=True)
class Cond:
    field: str
    op: str  # = != < <= > >= IN NOT IN LIKE
    values: tuple[Literal, ...]


@dataclass
class Query:
    sobject: str
    fields: list[str]
    count: bool = False
    where: list[Cond] = field(default_factory=list)
    where_or: bool = False
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # (field, descending, nulls last)
    limit: int | None = None
    offset: int = 0
    text: str = ""


def parse_datetime(text: str) -> int:
    """Epoch ms of a SOQL datetime literal (``2024-01-01T00:00:00Z``, ``...00.000+0000``, ``...+00:00``)."""
    t = text.replace("Z", "+00:00")
    m = re.search(r"([+-])(\d{2})(\d{2})$", t)
    if m:
        t = t[: m.start()] + f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    d = datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp() * 1000)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _malformed(text, pos, text[pos:].split()[0] if text[pos:].split() else text[pos])
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


def _malformed(text: str, pos: int, token: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", f"\n{text}\n{' ' * pos}^\nERROR at Row:1:Column:{pos + 1}\n"
                                        f"unexpected token: {token}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def kw(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "id" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def fail(self) -> SoqlError:
        tok = self.peek()
        if tok is None:
            return SoqlError("MALFORMED_QUERY", f"\n{self.text}\n^\nERROR at Row:1:Column:{len(self.text)}\n"
                                                "unexpected token: <EOF>")
        return _malformed(self.text, tok[2], tok[1])

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            raise self.fail()

    def punct(self, p: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "punct" and tok[1] == p:
            self.i += 1
            return True
        return False

    def ident(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] != "id" or tok[1].lower() in _KEYWORDS - {"first", "last"}:
            raise self.fail()
        self.i += 1
        return tok[1]

    def literal(self) -> Literal:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        kind, text, _ = tok
        self.i += 1
        if kind == "str":
            inner = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
                           text[1:-1])
            return Literal("string", inner, text)
        if kind == "dt":
            return Literal("datetime", parse_datetime(text), text)
        if kind == "date":
            return Literal("date", text, text)
        if kind == "num":
            return Literal("number", float(text) if "." in text else int(text), text)
        if kind == "id" and text.lower() in ("true", "false"):
            return Literal("bool", text.lower() == "true", text)
        if kind == "id" and text.lower() == "null":
            return Literal("null", None, text)
        self.i -= 1
        raise self.fail()

    def cond(self) -> Cond:
        name = self.ident()
        tok = self.peek()
        if tok is not None and tok[0] == "op":
            self.i += 1
            op = "!=" if tok[1] == "<>" else tok[1]
            return Cond(name, op, (self.literal(),))
        negate = self.kw("not")
        if self.kw("in"):
            if not self.punct("("):
                raise self.fail()
            values = [self.literal()]
            while self.punct(","):
                values.append(self.literal())
            if not self.punct(")"):
                raise self.fail()
            return Cond(name, "NOT IN" if negate else "IN", tuple(values))
        if not negate and self.kw("like"):
            return Cond(name, "LIKE", (self.literal(),))
        raise self.fail()

    def parse(self) -> Query:
        self.expect_kw("select")
        fields: list[str] = []
        count = False
        tok = self.peek()
        if tok is not None and tok[0] == "id" and tok[1].lower() == "count":
            self.i += 1
            if not (self.punct("(") and self.punct(")")):
                raise self.fail()
            count = True
        else:
            fields.append(self.ident())
            while self.punct(","):
                fields.append(self.ident())
        self.expect_kw("from")
        query = Query(self.ident(), fields, count, text=self.text)
        if self.kw("where"):
            query.where.append(self.cond())
            joiner: str | None = None
            while True:
                tok = self.peek()
                if tok is None or tok[0] != "id" or tok[1].lower() not in ("and", "or"):
                    break
                word = tok[1].lower()
                if joiner is not None and word != joiner:  # SOQL needs parentheses to mix AND and OR
                    raise self.fail()
                joiner = word
                self.i += 1
                query.where.append(self.cond())
            query.where_or = joiner == "or"
        if self.kw("order"):
            self.expect_kw("by")
            while True:
                name = self.ident()
                desc = False
                if self.kw("desc"):
                    desc = True
                else:
                    self.kw("asc")
                nulls_last = desc
                if self.kw("nulls"):
                    if self.kw("last"):
                        nulls_last = True
                    else:
                        self.expect_kw("first")
                        nulls_last = False
                query.order.append((name, desc, nulls_last))
                if not self.punct(","):
                    break
        if self.kw("limit"):
            query.limit = self._int()
        if self.kw("offset"):
            query.offset = self._int()
        if self.peek() is not None:
            raise self.fail()
        return query

    def _int(self) -> int:
        tok = self.peek()
        if tok is None or tok[0] != "num" or not tok[1].isdigit():
            raise self.fail()
        self.i += 1
        return int(tok[1])


def parse(text: str) -> Query:
    """Parse a SOQL query of the supported subset (``SoqlError`` with ``MALFORMED_QUERY`` otherwise)."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "unexpected token: <EOF>")
    return _Parser(text.strip()).parse()
