"""SOQL: a tokenizer and a recursive-descent parser for the subset a sync needs (FACTS §6).

Values never become SQL text: the parser turns every literal into a typed Python value and the compiler
(``soql_sql``) passes it as a bound parameter, so a quote inside a properly escaped string is data and a
stray quote is a syntax error at a reported row and column, exactly as Salesforce reports it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from crm_pipelines.sandbox.salesforce.errors import SalesforceError

KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
            "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT", "INCLUDES",
            "EXCLUDES", "GROUP", "HAVING", "WITH", "FOR", "USING", "TYPEOF", "ALL", "ROWS"}
COMPARISONS = ("=", "!=", "<>", "<", "<=", ">", ">=")
# Backslash escapes allowed in string literals; \% and \_ only matter (and are kept) inside LIKE patterns.
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2}))?(?![\w:.-])")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?(?![\w.])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RELATIVE_DATES = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "THIS_MONTH"}


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT, STRING, NUMBER, DATE, DATETIME, OP, PUNCT, EOF
    text: str
    value: Any
    pos: int  # offset in the query text


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class DateLiteral:
    value: str  # YYYY-MM-DD


@dataclass(frozen=True)
class RelativeDate:
    name: str
    n: int


@dataclass
class Condition:
    op: str  # comparison op, IN, NOT IN, LIKE, AND, OR, NOT
    field: FieldPath | None = None
    value: Any = None
    items: list[Condition] = dataclasses.field(default_factory=list)


@dataclass
class Query:
    text: str
    sobject: str
    sobject_pos: int
    fields: list[FieldPath]
    count: bool = False
    where: Condition | None = None
    order: list[tuple[FieldPath, bool, bool | None]] = dataclasses.field(default_factory=list)  # desc, nulls 1st
    limit: int | None = None
    offset: int | None = None


def position(text: str, pos: int) -> tuple[int, int]:
    row = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return row, col


def query_error(code: str, text: str, pos: int, detail: str) -> SalesforceError:
    """Salesforce's message: the query line, a caret under the column, ``ERROR at Row:R:Column:C``, detail."""
    row, col = position(text, pos)
    line = text.splitlines()[row - 1] if text.strip() else text
    return SalesforceError(400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{detail}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            value, end = _string(text, i)
            tokens.append(Token("STRING", text[i:end], value, i))
            i = end
        elif m := _DATE.match(text, i):
            kind = "DATETIME" if m.group(1) else "DATE"
            tokens.append(Token(kind, m.group(0), _date_value(m.group(0), kind), i))
            i = m.end()
        elif (m := _NUMBER.match(text, i)) and (ch.isdigit() or not tokens or tokens[-1].kind == "OP"):
            num = float(m.group(0)) if m.group(1) else int(m.group(0))
            tokens.append(Token("NUMBER", m.group(0), num, i))
            i = m.end()
        elif m := _IDENT.match(text, i):
            tokens.append(Token("IDENT", m.group(0), m.group(0).upper(), i))
            i = m.end()
        elif text.startswith(("!=", "<>", "<=", ">="), i):
            tokens.append(Token("OP", text[i : i + 2], text[i : i + 2], i))
            i += 2
        elif ch in "=<>":
            tokens.append(Token("OP", ch, ch, i))
            i += 1
        elif ch in "(),.:":
            tokens.append(Token("PUNCT", ch, ch, i))
            i += 1
        else:
            end = i + 1
            while end < n and not text[end].isspace() and text[end] not in "(),'":
                end += 1
            raise query_error("MALFORMED_QUERY", text, i, f"unexpected token: {text[i:end]}")
    tokens.append(Token("EOF", "", None, n))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """A quoted literal from ``start``; returns its value and the offset after the closing quote.

    Backslash, ``\\%`` and ``\\_`` stay escaped in the value (LIKE-pattern form) so a pattern can tell them
    from wildcards; outside LIKE the compiler unescapes them with ``unescape_like``.
    """
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            return "".join(out), i + 1
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt == "\\":
                out.append("\\\\")  # kept escaped, like \\% and \\_, until the compiler knows if it is LIKE
            elif nxt.lower() in ESCAPES and nxt not in ('"', "'"):
                out.append(ESCAPES[nxt.lower()])
            elif nxt in ESCAPES:
                out.append(ESCAPES[nxt])
            elif nxt in ("%", "_"):
                out.append("\\" + nxt)
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            else:
                raise query_error("MALFORMED_QUERY", text, i,
                                  "Invalid string literal '" + text[start + 1 : i + 2] + "'. Illegal character "
                                  "sequence '\\" + nxt + "' in string literal.")
            i += 2
            continue
        out.append(ch)
        i += 1
    raise query_error("MALFORMED_QUERY", text, start, f"unexpected token: {text[start:]}")


def _date_value(text: str, kind: str) -> Any:
    if kind == "DATE":
        return DateLiteral(text)
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp.astimezone(dt.UTC)


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers ------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind == "IDENT" and self.tok.value in words

    def accept_keyword(self, word: str) -> bool:
        if self.at_keyword(word):
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.accept_keyword(word):
            self.unexpected()

    def expect_punct(self, ch: str) -> None:
        if self.tok.kind == "PUNCT" and self.tok.text == ch:
            self.i += 1
            return
        self.unexpected()

    def unexpected(self, tok: Token | None = None) -> None:
        tok = tok or self.tok
        if tok.kind == "EOF":
            raise query_error("MALFORMED_QUERY", self.text, max(tok.pos - 1, 0), "unexpected token: <EOF>")
        raise query_error("MALFORMED_QUERY", self.text, tok.pos, f"unexpected token: {tok.text}")

    # -- grammar ------------------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[FieldPath] = []
        count = False
        if self.at_keyword("COUNT") and self.tokens[self.i + 1].text == "(":
            self.i += 2
            self.expect_punct(")")
            count = True
        else:
            fields.append(self.field_path())
            while self.tok.text == ",":
                self.i += 1
                fields.append(self.field_path())
        self.expect_keyword("FROM")
        name_tok = self.next()
        if name_tok.kind != "IDENT" or name_tok.value in KEYWORDS:
            self.unexpected(name_tok)
        query = Query(self.text, name_tok.text, name_tok.pos, fields, count)
        if self.accept_keyword("WHERE"):
            query.where = self.or_expr()
        if self.accept_keyword("ORDER"):
            self.expect_keyword("BY")
            query.order.append(self.order_item())
            while self.tok.text == ",":
                self.i += 1
                query.order.append(self.order_item())
        if self.accept_keyword("LIMIT"):
            query.limit = self.integer()
        if self.accept_keyword("OFFSET"):
            query.offset = self.integer()
        if self.tok.kind != "EOF":
            self.unexpected()
        return query

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "NUMBER" or not isinstance(tok.value, int) or tok.value < 0:
            self.unexpected(tok)
        return int(tok.value)

    def field_path(self) -> FieldPath:
        tok = self.next()
        if tok.kind != "IDENT" or tok.value in KEYWORDS:
            self.unexpected(tok)
        parts = [tok.text]
        while self.tok.text == "." and self.tok.kind == "PUNCT":
            self.i += 1
            part = self.next()
            if part.kind != "IDENT":
                self.unexpected(part)
            parts.append(part.text)
        return FieldPath(tuple(parts), tok.pos)

    def order_item(self) -> tuple[FieldPath, bool, bool | None]:
        path = self.field_path()
        desc = False
        if self.accept_keyword("DESC"):
            desc = True
        else:
            self.accept_keyword("ASC")
        nulls: bool | None = None
        if self.accept_keyword("NULLS"):
            if self.accept_keyword("FIRST"):
                nulls = True
            else:
                self.expect_keyword("LAST")
                nulls = False
        return path, desc, nulls

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.accept_keyword("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Condition("OR", items=items)

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.accept_keyword("AND"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else Condition("AND", items=items)

    def not_expr(self) -> Condition:
        if self.accept_keyword("NOT"):
            return Condition("NOT", items=[self.not_expr()])
        if self.tok.text == "(" and self.tok.kind == "PUNCT":
            self.i += 1
            inner = self.or_expr()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Condition:
        path = self.field_path()
        tok = self.tok
        if tok.kind == "OP":
            self.i += 1
            return Condition(tok.text, path, self.value())
        if self.accept_keyword("LIKE"):
            value_tok = self.next()
            if value_tok.kind != "STRING":
                self.unexpected(value_tok)
            return Condition("LIKE", path, value_tok.value)
        negate = self.accept_keyword("NOT")
        if self.accept_keyword("IN"):
            self.expect_punct("(")
            values = [self.value()]
            while self.tok.text == ",":
                self.i += 1
                values.append(self.value())
            self.expect_punct(")")
            return Condition("NOT IN" if negate else "IN", path, values)
        self.unexpected()
        raise AssertionError  # unreachable: unexpected() raises

    def value(self) -> Any:
        tok = self.next()
        if tok.kind in ("STRING", "NUMBER", "DATE", "DATETIME"):
            return tok.value
        if tok.kind == "IDENT":
            if tok.value == "NULL":
                return None
            if tok.value in ("TRUE", "FALSE"):
                return tok.value == "TRUE"
            if tok.value in RELATIVE_DATES:
                n = 0
                if tok.value.endswith("_N_DAYS") or tok.value == "N_DAYS_AGO":
                    self.expect_punct(":")
                    n = self.integer()
                return RelativeDate(tok.value, n)
        self.unexpected(tok)
        raise AssertionError  # unreachable


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
    return Parser(text).parse()


_LIKE_ESCAPE = re.compile(r"\\(.)", re.S)


def unescape_like(value: str) -> str:
    """The plain text of a string literal (its LIKE-pattern form without the escaping backslashes)."""
    return _LIKE_ESCAPE.sub(r"\1", value)
