"""The canonical layout of a `.dml` file, printed from its concrete syntax tree (`dmlc.cst`).

Layout only, never a value: every token is written as it was read (strings, numbers, units,
references, `\"\"\"` strings verbatim), so the formatted file parses to the same document. The rules:
two spaces per level; one item per line in a block written over several lines; `{ a = 1  b = 2 }`
kept on one line when written on one line without comments; lists likewise, a list over several
lines keeps the elements that shared a line; `=` aligned in a run of attributes (a blank line or a
block ends the run); at most one blank line, none after `{` or before `}`; comments kept where
they were, a trailing comment two spaces after the code, aligned with its neighbours' (gofmt).
"""

from __future__ import annotations

from dataclasses import dataclass

from dmlc.cst import Atom, Attr, Block, Comment, Container, File, ListValue, Node

INDENT = "  "


@dataclass
class Line:
    depth: int
    code: str
    comment: str = ""


def render(tree: File) -> str:
    lines: list[Line | None] = []  # None: a blank line
    _items(lines, tree.items, 0)
    _dangling(lines, tree.dangling, 0)
    while lines and lines[0] is None:
        lines.pop(0)
    return _join(lines)


def _join(lines: list[Line | None]) -> str:
    out: list[str] = []
    width = _comment_columns(lines)
    for i, line in enumerate(lines):
        if line is None:
            out.append("")
            continue
        code = INDENT * line.depth + line.code if line.code else ""
        if line.comment and code:
            code = code.ljust(width[i]) + "  " + line.comment
        elif line.comment:
            code = INDENT * line.depth + line.comment
        out.append(code.rstrip() if "\n" not in code else code)
    return "\n".join(out) + "\n"


def _comment_columns(lines: list[Line | None]) -> dict[int, int]:
    """Trailing comments on consecutive lines start in one column (the longest code decides)."""
    width: dict[int, int] = {}
    run: list[int] = []

    def close() -> None:
        if run:
            col = max(len(INDENT * lines[j].depth + lines[j].code) for j in run)  # type: ignore[union-attr]
            width.update(dict.fromkeys(run, col))
            run.clear()

    for i, line in enumerate(lines):
        if line is not None and line.code and line.comment and "\n" not in line.code:
            run.append(i)
        else:
            close()
    close()
    return width


def _leading(lines: list[Line | None], node: Node, depth: int) -> None:
    if node.blank_before and lines:
        lines.append(None)
    for com in node.leading:
        lines.append(None if not com.text else Line(depth, "", com.text))


def _dangling(lines: list[Line | None], comments: list[Comment], depth: int) -> None:
    for com in comments:
        if com.blank_before and lines and lines[-1] is not None:
            lines.append(None)
        lines.append(Line(depth, "", com.text))


def _items(lines: list[Line | None], items: list[Node], depth: int) -> None:
    widths = _key_widths(items)
    for i, item in enumerate(items):
        _leading(lines, item, depth)
        if isinstance(item, Attr):
            key = item.key.value.ljust(widths[i]) if item.key is not None else ""
            _emit(lines, depth, f"{key} = ", item.value, item.trailing)  # type: ignore[arg-type]
        else:
            assert isinstance(item, Block)
            head = " ".join(t.value for t in item.header)
            _emit(lines, depth, head + " ", item, item.trailing)


def _key_widths(items: list[Node]) -> list[int]:
    """The key width of each attribute: the longest key of its run (a blank line or a block ends a run)."""
    widths = [0] * len(items)
    run: list[int] = []

    def close() -> None:
        longest = max((len(items[j].key.value) for j in run), default=0)  # type: ignore[attr-defined]
        for j in run:
            widths[j] = longest
        run.clear()

    for i, item in enumerate(items):
        if not isinstance(item, Attr) or item.blank_before:
            close()
        if isinstance(item, Attr):
            run.append(i)
    close()
    return widths


def _emit(lines: list[Line | None], depth: int, prefix: str, value: Node, trailing: Comment | None) -> None:
    """`prefix` then `value`, the value's first line on the prefix's line; the trailing comment on its last."""
    if isinstance(value, Atom):
        lines.append(Line(depth, prefix + value.first.value))
    else:
        body = value.body  # type: ignore[attr-defined]
        assert body is not None
        if not body.multiline:
            lines.append(Line(depth, prefix + inline(value)))
        else:
            lines.append(Line(depth, prefix + body.open.value, body.opening.text if body.opening else ""))
            _body(lines, value, body, depth + 1)
            _dangling(lines, body.dangling, depth + 1)
            lines.append(Line(depth, body.close.value))
    if trailing is not None:
        last = lines[-1]
        assert last is not None
        last.comment = trailing.text


def _body(lines: list[Line | None], value: Node, body: Container, depth: int) -> None:
    if isinstance(value, ListValue):
        _elements(lines, body.items, depth)
    else:
        if body.items:
            body.items[0].blank_before = False
        _items(lines, body.items, depth)


def _elements(lines: list[Line | None], items: list[Node], depth: int) -> None:
    """List elements over several lines: those that shared a source line share one, each ends with `,`."""
    group: list[Node] = []
    for k, item in enumerate(items):
        if group and (item.leading or item.first.line != group[-1].last.end_line or group[-1].trailing):
            _flush(lines, group, depth)
            group = []
        if k == 0:
            item.blank_before = False
        if not group:
            _leading(lines, item, depth)
        if isinstance(item, Atom) or not item.body.multiline:  # type: ignore[attr-defined]
            group.append(item)
        else:
            _emit(lines, depth, "", item, item.trailing)
            lines[-1].code += ","  # type: ignore[union-attr]
    _flush(lines, group, depth)


def _flush(lines: list[Line | None], group: list[Node], depth: int) -> None:
    if group:
        text = ", ".join(inline(n) for n in group) + ","
        lines.append(Line(depth, text, group[-1].trailing.text if group[-1].trailing else ""))


def inline(node: Node) -> str:
    """A value or block body on one line: `[a, b]`, `{ a = 1  b = 2 }`, `{}`."""
    if isinstance(node, Atom):
        return node.first.value
    body = node.body  # type: ignore[attr-defined]
    if isinstance(node, ListValue):
        return "[" + ", ".join(inline(n) for n in body.items) + "]"
    if not body.items:
        return "{}"
    parts = []
    for item in body.items:
        if isinstance(item, Attr):
            parts.append(f"{item.key.value} = {inline(item.value)}")  # type: ignore[union-attr,arg-type]
        else:
            parts.append(" ".join(t.value for t in item.header) + " " + inline(item))
    return "{ " + "  ".join(parts) + " }"
