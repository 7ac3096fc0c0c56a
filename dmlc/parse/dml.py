"""The `.dml` front end: text -> lark LALR parse (AST built during the parse) -> `Document`.

The grammar is `grammar/dml.lark` (shipped inside the package as `dmlc/grammar/dml.lark`).
Syntax errors become DML001-DML005 diagnostics with the exact line and column.
"""

from __future__ import annotations

import re
import textwrap
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput

from dmlc.diagnostics.catalogue import DML001, DML005, DML013, DML014, DML022, DML200, Code
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.parse.dml_errors import syntax_error
from dmlc.parse.document import MAX_DEPTH, MAX_ERRORS, Document, Path, first_deep_opener
from dmlc.source import Source, Span

NAMED_GROUPS = {"volume": "volumes", "target": "targets"}
LITERALS = {"true": True, "false": False, "null": None}
FLOAT_RE = re.compile(r"^-?\d+(\.\d+)?[eE][+-]?\d+$|^-?(inf|nan)$")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}
# Each token costs up to ~300 bytes and ~6 us while the document is built: 600,000 keep a parse within
# 0.2 GB and 4 s (10,000 ordinary steps are about 350,000 tokens).
MAX_TOKENS = 600_000
# every terminal but blanks (`,` is counted: a run of commas is one token per comma)
TERMINALS = ("REF", "NAME", "NUMBER", "STRING", "MSTRING", "LBRACE", "RBRACE", "LSQB", "RSQB", "EQUAL", "COMMA")
COUNTED = (*TERMINALS, "COMMENT")


@dataclass
class Node:
    """An AST value: kind is scalar | list | map | ref; depth bounds recursion in later passes."""

    kind: str
    value: Any
    span: Span
    depth: int = 0


@dataclass
class Attr:
    name: str
    name_span: Span
    value: Node

    @property
    def depth(self) -> int:
        return self.value.depth


@dataclass
class Block:
    keyword: str
    keyword_span: Span
    name: str | None
    name_span: Span | None
    items: list[Attr | Block] = field(default_factory=list)
    span: Span | None = None
    depth: int = 0


def _grammar_text() -> str:
    return resources.files("dmlc").joinpath("grammar").joinpath("dml.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=2)
def parser(strict: bool = False) -> Lark:
    """The LALR parser with `_BUILDER` as its inline callbacks; `strict` also proves terminals never collide.

    Transforming the tree afterwards would recurse once per nesting level; running the builder as the
    parser's callbacks is bottom-up and iterative, so 20,000 levels fail cleanly with DML005."""
    try:  # the Cython build of lark's LALR parser: same grammar and trees, about 3x faster
        import lark_cython

        plugins = {} if strict else {"_plugins": lark_cython.plugins}
    except ImportError:
        plugins = {}
    return Lark(
        **plugins,
        grammar=_grammar_text(),
        parser="lalr",
        strict=strict,
        cache=not strict,
        transformer=_BUILDER,
        lexer_callbacks=dict.fromkeys(COUNTED, _BUDGET.spend),
    )


class _TokenBudget(threading.local):
    """Tokens a parse may still read (per thread; `reset` before each parse), DML200 past `MAX_TOKENS`."""

    left = MAX_TOKENS

    def reset(self) -> None:
        self.left = MAX_TOKENS

    def spend(self, tok: Token) -> Token:
        self.left -= 1
        if self.left < 0:
            message = f"the file holds more than {MAX_TOKENS:,} tokens (names, numbers, strings, brackets)"
            help_ = f"a pipeline file holds at most {MAX_TOKENS:,} (10,000 steps take about 350,000)"
            span = Span("", tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1)
            raise DmlError([Diagnostic(DML200, message, Label(span, "this is one too many"), help=help_)])
        return tok


_BUDGET = _TokenBudget()


def unescape(body: str, span: Span) -> str:
    if "\\" not in body:
        return body  # the common case; the loop below costs ~0.3 s per MB
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u":
                digits = body[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _syntax(span, "`\\u` in a string needs four hex digits", "write e.g. \\u00e9")
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            if nxt not in ESCAPES:
                raise _syntax(span, f"unknown escape `\\{nxt}` in string", 'use \\n, \\t, \\", \\\\ or \\uXXXX')
            out.append(ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _syntax(span: Span, message: str, help_: str | None = None, code: Code = DML001) -> DmlError:
    return DmlError([Diagnostic(code, message, Label(span), help=help_)])


class _Builder(Transformer):
    """Runs inside the LALR parse (bottom-up, no recursion), so deep input cannot blow the stack.

    One builder serves every parse (lark binds it when the parser is built), so it keeps no state:
    its spans name no file; the `Document` and `parse_dml` give them the file being parsed.
    """

    def _between(self, first: Token, last: Token) -> Span:
        return Span("", first.line, first.column, last.end_line, last.end_column)

    def _tok(self, tok: Token) -> Span:
        return Span("", tok.line, tok.column, tok.end_line, tok.end_column)

    def _depth(self, span: Span, children: list[Any]) -> int:
        depth = 1 + max([c.depth for c in children], default=0)
        if depth > MAX_DEPTH:
            raise _syntax(span, f"nesting is deeper than {MAX_DEPTH} levels", "flatten the structure", DML005)
        return depth

    def start(self, children: list[Block]) -> Block:
        return children[0]

    def items(self, children: list[Any]) -> list[Any]:
        if not children:
            return []
        children[0].append(children[1])
        return children[0]

    values = items

    def block(self, children: list[Any]) -> Block:
        keyword, rest = children[0], children[1:-1]
        name = rest.pop(0) if rest[0].type == "NAME" else None
        rest = rest[1]
        span = self._between(keyword, children[-1])
        name_span = self._tok(name) if name is not None else None
        depth = self._depth(span, rest)
        return Block(keyword.value, self._tok(keyword), name.value if name else None, name_span, rest, span, depth)

    def attr(self, children: list[Any]) -> Attr:
        name, value = children
        key = unescape(name.value[1:-1], self._tok(name)) if name.type == "STRING" else name.value
        return Attr(key, self._tok(name), value)

    def string(self, children: list[Token]) -> Node:
        tok = children[0]
        span = self._tok(tok)
        return Node("scalar", unescape(tok.value[1:-1], span), span)

    def mstring(self, children: list[Token]) -> Node:
        tok = children[0]
        text = textwrap.dedent(tok.value[3:-3].removeprefix("\n"))
        return Node("scalar", text, self._tok(tok))

    def number(self, children: list[Token]) -> Node:
        tok = children[0]
        text = tok.value
        if text[-1].isalpha() and not _is_float(text):
            return Node("scalar", text, self._tok(tok))
        if len(text) > 40:  # int() refuses 4,300+ digits; no field takes more than 19 (DML022 says so)
            message = f"the number `{text[:20]}...` has {len(text)} digits"
            raise _syntax(self._tok(tok), message, "write a smaller number", DML022)
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        return Node("scalar", value, self._tok(tok))

    def ref(self, children: list[Token]) -> Node:
        tok = children[0]
        text = tok.value
        if text in LITERALS:
            return Node("scalar", LITERALS[text], self._tok(tok))
        kind = "ref" if (tok.type == "REF" or text == "each") else "word"
        return Node(kind, text, self._tok(tok))

    def list(self, children: list[Any]) -> Node:
        span = self._between(children[0], children[-1])
        return Node("list", children[1], span, self._depth(span, children[1]))

    def map(self, children: list[Any]) -> Node:
        span = self._between(children[0], children[-1])
        return Node("map", children[1], span, self._depth(span, children[1]))


_BUILDER = _Builder()


def _is_float(text: str) -> bool:
    return FLOAT_RE.match(text) is not None


def _lex(text: str) -> Any:
    _BUDGET.reset()
    return parser().lex(text, dont_ignore=False)


MAX_SYNTAX_ERRORS = 5  # more are reported one parse at a time (each recovery parses the file again)
RECOVER_BELOW = 512 << 10  # bytes: on a bigger file only the first syntax error is reported


def parse_dml(source: Source) -> Document:
    _BUDGET.reset()
    try:
        return _DocBuilder(source).build(parser().parse(source.text))
    except UnexpectedInput as exc:
        first = syntax_error(exc, source, _lex)
        raise DmlError([first, *_more_syntax_errors(source, first)]) from None
    except DmlError as exc:
        raise _relocate_depth(_in_file(exc, source.path), source) from None


def _more_syntax_errors(source: Source, first: Diagnostic) -> list[Diagnostic]:
    """The next syntax errors of the file, found by parsing it again with each bad line blanked (its
    length kept, so every position stays true). Stops at an error on a line that opens or closes a
    block (blanking it would unbalance the braces and report a phantom error), past MAX_SYNTAX_ERRORS,
    and on big files."""
    found: list[Diagnostic] = []
    lines = source.text.split("\n")
    last = first
    while len(found) < MAX_SYNTAX_ERRORS - 1 and len(source.text) < RECOVER_BELOW:
        line = last.span.line if last.span is not None else 0
        if not 0 < line <= len(lines) or any(c in lines[line - 1] for c in "{}[]") or last.code == "DML003":
            break
        lines[line - 1] = " " * len(lines[line - 1])
        again = Source(source.path, "\n".join(lines))
        _BUDGET.reset()
        try:
            parser().parse(again.text)
            break
        except UnexpectedInput as exc:
            last = syntax_error(exc, again, _lex)
        except (DmlError, RecursionError):
            break
        if last.span is None or last.span.line <= line:
            break
        found.append(last)
    return found


def _in_file(exc: DmlError, path: str) -> DmlError:
    """The builder's spans name no file: name `path` in the diagnostics raised while building."""

    def label(lab: Label) -> Label:
        span = lab.span
        return Label(replace(span, file=path), lab.note) if span is not None and not span.file else lab

    diags = [replace(d, primary=label(d.primary), secondary=tuple(map(label, d.secondary))) for d in exc.diagnostics]
    return DmlError(diags)


def _relocate_depth(exc: DmlError, source: Source) -> DmlError:
    """The bottom-up builder notices deep nesting from the inside; point at the outside instead."""
    offset = first_deep_opener(source.text) if exc.diagnostics[0].code == DML005 else None
    if offset is None:
        return exc
    diag = exc.diagnostics[0]
    label = Label(source.span(offset), f"level {MAX_DEPTH + 1} starts here")
    return DmlError([Diagnostic(diag.code, diag.message, label, help=diag.help)])


class _DocBuilder:
    """AST -> Document: named blocks go under plural keys, duplicates are reported with both places."""

    def __init__(self, source: Source) -> None:
        self.doc = Document({}, source)
        self.errors: list[Diagnostic] = []

    def build(self, root: Block) -> Document:
        if root.keyword != "pipeline" or root.name is None:
            help_ = "a .dml file holds one `pipeline NAME { ... }` block"
            raise _syntax(root.keyword_span, f"expected `pipeline NAME {{`, found `{root.keyword}`", help_)
        self.doc.data["pipeline"] = root.name
        self.doc.spans[("pipeline",)] = root.name_span or root.keyword_span
        self.doc.key_spans[("pipeline",)] = root.keyword_span
        self.doc.spans[()] = root.span or root.keyword_span
        self._fill(self.doc.data, root.items, (), top=True)
        if self.errors:
            raise DmlError(self.errors[:MAX_ERRORS])
        return self.doc

    def _fill(self, target: dict[str, Any], items: list[Attr | Block], path: Path, top: bool = False) -> None:
        for item in items:
            if isinstance(item, Attr):
                self._put(target, item.name, item.name_span, self._convert(item.value, path + (item.name,)), path)
                self.doc.spans[path + (item.name,)] = item.value.span
            elif item.name is not None:
                self._named(target, item, path, top)
            elif self._put(target, item.keyword, item.keyword_span, {}, path):
                self.doc.spans[path + (item.keyword,)] = item.span or item.keyword_span
                self._fill(target[item.keyword], item.items, path + (item.keyword,))

    def _named(self, target: dict[str, Any], block: Block, path: Path, top: bool) -> None:
        if not top:
            note = f"`{block.keyword} {block.name} {{ }}` can only appear at pipeline level"
            self.errors.append(Diagnostic(DML001, "named block inside a block", Label(block.keyword_span, note)))
            return
        group = NAMED_GROUPS.get(block.keyword, "steps")
        assert block.name is not None and block.name_span is not None
        members = target.setdefault(group, {})
        self.doc.spans.setdefault((group,), block.span or block.keyword_span)
        here = (group, block.name)
        if block.name in members:
            what = "step" if group == "steps" else block.keyword
            code = DML013 if group == "steps" else DML014
            self._duplicate(code, f"duplicate {what} `{block.name}`", block.name_span, here)
            return
        members[block.name] = {"kind": block.keyword} if group == "steps" else {}
        self.doc.spans[here] = block.span or block.name_span
        self.doc.key_spans[here] = block.name_span
        if group == "steps":
            self.doc.spans[here + ("kind",)] = block.keyword_span
        self._fill(members[block.name], block.items, here)

    def _put(self, target: dict[str, Any], key: str, span: Span, value: Any, path: Path) -> bool:
        """Store `key`; a duplicate is reported (both places) and not stored."""
        here = path + (key,)
        if key in target:
            self._duplicate(DML014, f"duplicate attribute `{key}`", span, here)
            return False
        target[key] = value
        self.doc.key_spans[here] = span
        return True

    def _duplicate(self, code: str, message: str, span: Span, path: Path) -> None:
        first = self.doc.key_spans.get(path)
        secondary = (Label(first, "first defined here"),) if first else ()
        help_ = "remove one of them or rename it"
        self.errors.append(Diagnostic(code, message, Label(span, "defined again here"), secondary, help_))

    def _convert(self, node: Node, path: Path) -> Any:
        self.doc.spans[path] = node.span
        if node.kind == "scalar":
            return node.value
        if node.kind == "ref":
            return "${" + node.value + "}"
        if node.kind == "word":
            return node.value
        if node.kind == "list":
            return [self._convert(item, path + (i,)) for i, item in enumerate(node.value)]
        out: dict[str, Any] = {}
        self._fill(out, node.value, path)
        return out
