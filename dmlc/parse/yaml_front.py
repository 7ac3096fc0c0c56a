"""The YAML/JSON front end: text -> PyYAML node graph (safe, no object construction) -> `Document`.

Tokens are scanned first, so aliases (the "billion laughs" bomb), absurd nesting and more than
`MAX_SCALARS` keys and values are refused before anything is built; keys are checked for duplicates
with both places reported.

Plain scalars are read by YAML 1.2's core schema, as editors (yaml-language-server) and the JSON Schema
read them, not by PyYAML's YAML 1.1 rules: `on`, `yes`, `off` are strings (a `retry: {on: [75]}` key
stays `on`), `0123` is 123, `1_000` and `1:30` are strings.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml

from dmlc.diagnostics.catalogue import DML005, DML007, DML008, DML009, DML200
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.parse.document import MAX_DEPTH, MAX_ERRORS, Document, Path, first_deep_opener
from dmlc.source import Source, Span

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
IMPLICIT_11 = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null", "timestamp", "str")}
CORE_12 = (  # YAML 1.2.2 section 10.3.2, the core schema's tag resolution of plain scalars
    (re.compile(r"(?:null|Null|NULL|~)?"), lambda s: None),
    (re.compile(r"true|True|TRUE|false|False|FALSE"), lambda s: s.lower() == "true"),
    (re.compile(r"[-+]?[0-9]+"), int),
    (re.compile(r"0o[0-7]+"), lambda s: int(s[2:], 8)),
    (re.compile(r"0x[0-9a-fA-F]+"), lambda s: int(s[2:], 16)),
    (re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"), float),
    (re.compile(r"[-+]?\.(?:inf|Inf|INF)"), lambda s: float(s.replace(".", "", 1))),
    (re.compile(r"\.(?:nan|NaN|NAN)"), lambda s: float("nan")),
)
OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken)
OPEN_FLOW = (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
# Building costs up to ~800 bytes and ~7 us per key or value: 400,000 keep a parse within 0.35 GB and 3 s.
MAX_SCALARS = 400_000


def _span(source: Source, node: Any) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(source.path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _error(source: Source, code: str, message: str, at: Any, note: str = "", help_: str | None = None) -> DmlError:
    return DmlError([Diagnostic(code, message, Label(_span(source, at), note), help=help_)])


def _prescan(source: Source) -> None:
    depth, scalars = 0, 0
    try:
        for tok in yaml.scan(source.text, Loader=Loader):
            if isinstance(tok, yaml.ScalarToken):
                scalars += 1
                if scalars > MAX_SCALARS:
                    raise _too_many(source, tok)
            elif isinstance(tok, (yaml.AliasToken, yaml.AnchorToken)):
                help_ = "write the value out in full; anchors, aliases and merge keys are not supported"
                raise _error(source, DML009, "YAML anchors and aliases are not allowed", tok, help_=help_)
            if isinstance(tok, OPEN + OPEN_FLOW):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _error(source, DML005, f"nesting is deeper than {MAX_DEPTH} levels", tok)
            elif isinstance(tok, CLOSE):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from None
    except yaml.reader.ReaderError as exc:  # not a MarkedYAMLError: control characters such as NUL
        raise _reader_error(source, exc) from None


def _too_many(source: Source, tok: Any) -> DmlError:
    message = f"the file holds more than {MAX_SCALARS:,} keys and values"
    help_ = f"a pipeline file holds at most {MAX_SCALARS:,} (10,000 steps take about 190,000)"
    return _error(source, DML200, message, tok, "this is one too many", help_)


def _reader_error(source: Source, exc: yaml.reader.ReaderError) -> DmlError:
    span = source.span(min(exc.position, max(0, len(source.text) - 1)))
    char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
    message = f"invalid YAML: the control character U+{char:04X} is not allowed"
    return DmlError(
        [Diagnostic(DML007, message, Label(span), help="remove it, or write it as an escape in a quoted string")]
    )


def _yaml_error(source: Source, exc: yaml.MarkedYAMLError) -> DmlError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    help_ = None
    if "\\t" in problem or "tab" in problem.lower() or source.line_text(line)[col - 1 : col] == "\t":
        problem = "a tab character is used for indentation"
        help_ = "YAML indents with spaces only; replace the tabs with spaces"
    span = Span(source.path, line, col, line, col + 1)
    if "nesting depth" in problem:
        offset = first_deep_opener(source.text)
        span = source.span(offset) if offset is not None else span
        return DmlError([Diagnostic(DML005, f"nesting is deeper than {MAX_DEPTH} levels", Label(span))])
    return DmlError([Diagnostic(DML007, f"invalid YAML: {problem}", Label(span), help=help_)])


def parse_yaml(source: Source) -> Document:
    _prescan(source)
    try:
        docs = list(yaml.compose_all(source.text, Loader=Loader))
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], yaml.MappingNode):
        at = docs[1] if len(docs) > 1 else (docs[0] if docs else None)
        span = _span(source, at) if at is not None else Span(source.path, 1, 1)
        message = "a pipeline file holds exactly one YAML mapping (`pipeline: NAME`, `steps: ...`)"
        raise DmlError([Diagnostic(DML007, message, Label(span))])
    builder = _Builder(source)
    data = builder.convert(docs[0], ())
    if builder.errors:
        raise DmlError(builder.errors[:MAX_ERRORS])
    return builder.doc_with(data)


class _Builder:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.doc = Document({}, source)
        self.errors: list[Diagnostic] = []
        self.scalars = yaml.SafeLoader("")

    def doc_with(self, data: dict[str, Any]) -> Document:
        self.doc.data = data
        return self.doc

    def convert(self, node: Any, path: Path) -> Any:
        self.doc.spans[path] = _span(self.source, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node)
            here = path + (str(key),)
            key_span = _span(self.source, key_node)
            if not isinstance(key, str) or key == "<<":
                note = "keys must be plain names" if key != "<<" else "merge keys are not supported"
                self.errors.append(Diagnostic(DML007, f"invalid key `{key}`", Label(key_span, note)))
                continue
            if key in out:
                first = self.doc.key_spans[here]
                labels = (Label(first, "first defined here"),)
                diag = Diagnostic(DML008, f"duplicate key `{key}`", Label(key_span, "defined again here"), labels)
                self.errors.append(diag)
                continue
            self.doc.key_spans[here] = key_span
            out[key] = self.convert(value_node, here)
        return out

    def _tagged(self, node: Any) -> bool:
        return self.source.text.startswith("!", node.start_mark.index)

    def _scalar(self, node: Any) -> Any:
        plain = isinstance(node, yaml.ScalarNode) and not node.style and node.tag in IMPLICIT_11
        try:
            if plain and not self._tagged(node):  # style None or "", no explicit tag: YAML 1.2's core schema
                return core_scalar(node.value)
            value = self.scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # tags like !foo or `!!int x`
            tag = getattr(node, "tag", "?")
            help_ = "remove the tag; dmlc reads plain YAML values (strings, numbers, booleans, lists, maps)"
            note = type(exc).__name__ if not isinstance(exc, yaml.YAMLError) else "unknown tag"
            raise _error(self.source, DML007, f"invalid YAML value with tag `{tag}`", node, note, help_) from None
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value


def core_scalar(text: str) -> Any:
    """A plain scalar's value by YAML 1.2's core schema: null, bool, int, float, else the text itself."""
    for pattern, value in CORE_12:
        if pattern.fullmatch(text):
            return value(text)
    return text
