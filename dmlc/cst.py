"""A concrete syntax tree of a `.dml` file: the parse tree plus every comment and blank line.

Built over the grammar's own lexer (`dont_ignore=True`, so comments arrive as tokens with their
positions) by a small recursive descent; it is only built for text `parse_dml` has accepted, so
it needs no error handling of its own (nesting is bounded by MAX_DEPTH there).

Every comment is owned by exactly one node: the comments before an item are its `leading`; one
on the line where an item ends is its `trailing`; one right after a `{` or `[` on the same line
is the container's `opening`; the comments before a closing bracket are its `dangling`; a comment
inside an item's own tokens (`a = # x` newline `1`) is hoisted to the item's `leading`.
`fmt_dml` prints the tree; `comments()` lists every comment so tests can prove none is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lark import Token

SKIP = ("COMMA",)


@dataclass
class Comment:
    text: str
    line: int
    blank_before: bool = False  # a blank line separates it from what comes before


@dataclass
class Node:
    """An item (attribute, block, list element) with the comments it owns."""

    first: Token
    last: Token
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None
    blank_before: bool = False


@dataclass
class Container:
    """`{ items }` or `[ values ]`: `multiline` when its brackets sit on different lines (kept as written)."""

    open: Token
    close: Token
    items: list[Node]
    opening: Comment | None = None
    dangling: list[Comment] = field(default_factory=list)

    @property
    def multiline(self) -> bool:
        return self.open.line != self.close.line or self.opening is not None or bool(self.dangling)


@dataclass
class Atom(Node):
    pass


@dataclass
class ListValue(Node):
    body: Container | None = None


@dataclass
class Attr(Node):
    key: Token | None = None
    value: Node | None = None


@dataclass
class Block(Node):
    header: list[Token] = field(default_factory=list)
    body: Container | None = None


@dataclass
class File:
    items: list[Node]
    dangling: list[Comment]


class _Reader:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = [t for t in tokens if t.type != "COMMENT" and t.type not in SKIP and not t.type.startswith("__")]
        self.comments = [t for t in tokens if t.type == "COMMENT"]
        self.i = 0
        self.ci = 0
        self.prev_end = 0  # last line used by code or a comment already placed

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def take_before(self, pos: int) -> list[Comment]:
        out = []
        while self.ci < len(self.comments) and self.comments[self.ci].start_pos < pos:
            tok = self.comments[self.ci]
            out.append(Comment(tok.value.rstrip(), tok.line, tok.line - self.prev_end > 1 and self.prev_end > 0))
            self.prev_end = tok.line
            self.ci += 1
        return out

    def take_same_line(self, tok: Token) -> Comment | None:
        """The comment on the line where `tok` ends, right after it (before any other code)."""
        nxt = self.peek()
        if self.ci < len(self.comments):
            com = self.comments[self.ci]
            code_first = nxt is not None and nxt.start_pos < com.start_pos
            if com.line == tok.end_line and com.start_pos > tok.start_pos and not code_first:
                self.ci += 1
                return Comment(com.value.rstrip(), com.line)
        return None


def build(tokens: list[Token]) -> File:
    """The CST of a file `parse_dml` accepted, from its full token stream (comments included)."""
    r = _Reader(tokens)
    items = []
    while r.peek() is not None:
        items.append(_item(r))
    return File(items, r.take_before(1 << 62))


def _start(r: _Reader, node_first: Token) -> tuple[list[Comment], bool]:
    blank = r.prev_end > 0 and node_first.line - r.prev_end > 1
    leading = r.take_before(node_first.start_pos)
    if leading:
        blank = leading[0].blank_before
        leading[0].blank_before = False
        blank = blank or False
    after_comments = bool(leading) and node_first.line - leading[-1].line > 1
    if after_comments:  # a blank line between the comments and the item: keep it as a comment's gap
        leading.append(Comment("", 0))
    return leading, blank


def _finish(r: _Reader, node: Node) -> Node:
    node.leading += r.take_before(node.last.end_pos)  # comments inside the item's own tokens
    node.trailing = r.take_same_line(node.last)
    r.prev_end = node.last.end_line
    return node


def _item(r: _Reader) -> Node:
    first = r.peek()
    assert first is not None
    leading, blank = _start(r, first)
    second = r.peek(1)
    if second is not None and second.type == "EQUAL":
        key = r.next()
        r.next()
        value = _value(r)
        node: Node = Attr(first, value.last, leading, None, blank, key=key, value=value)
        return _finish(r, node)
    header = []
    while r.peek() is not None and r.peek().type != "LBRACE":  # type: ignore[union-attr]
        header.append(r.next())
    body = _container(r, "RBRACE", _item)
    return _finish(r, Block(first, body.close, leading, None, blank, header=header, body=body))


def _value(r: _Reader) -> Node:
    tok = r.peek()
    assert tok is not None
    if tok.type == "LSQB":
        body = _container(r, "RSQB", _element)
        return ListValue(tok, body.close, body=body)
    if tok.type == "LBRACE":
        body = _container(r, "RBRACE", _item)
        return Block(tok, body.close, body=body)  # a map value: a block without a header
    r.next()
    return Atom(tok, tok)


def _element(r: _Reader) -> Node:
    first = r.peek()
    assert first is not None
    leading, blank = _start(r, first)
    value = _value(r)
    value.leading, value.blank_before = leading, blank
    return _finish(r, value)


def _container(r: _Reader, closer: str, parse_one: object) -> Container:
    open_ = r.next()
    r.prev_end = open_.line
    opening = r.take_same_line(open_)
    items = []
    while r.peek() is not None and r.peek().type != closer:  # type: ignore[union-attr]
        items.append(parse_one(r))  # type: ignore[operator]
    close = r.peek()
    assert close is not None
    dangling = r.take_before(close.start_pos)
    r.next()
    return Container(open_, close, items, opening, dangling)


def comments(tree: File) -> Iterator[str]:
    """Every comment in the tree (each once), in no particular order."""
    yield from (c.text for c in tree.dangling)
    for item in tree.items:
        yield from _node_comments(item)


def _node_comments(node: Node) -> Iterator[str]:
    yield from (c.text for c in node.leading if c.text)
    if node.trailing is not None:
        yield node.trailing.text
    body = getattr(node, "body", None)
    if body is not None:
        if body.opening is not None:
            yield body.opening.text
        yield from (c.text for c in body.dangling)
        for item in body.items:
            yield from _node_comments(item)
    if isinstance(node, Attr) and node.value is not None:
        yield from _node_comments(node.value)
