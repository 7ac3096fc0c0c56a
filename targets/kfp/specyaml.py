"""KFP target, stage 4 (emit): the YAML writer of the direct path, byte for byte `yaml.dump_all(docs, sort_keys=True)`.

Takes JSON-like documents (dict with str keys, list, str, int, float, bool, None: what protobuf's
`MessageToDict` gives); gives the text kfp's compiler writes for them (PyYAML's default `Dumper`: block
style, keys sorted, width 80, indent 2, no unicode), so the direct path's output equals kfp's compiler
output. PyYAML builds a node graph and runs an event state machine in pure Python, and analyses and
folds every scalar character by character: most of kfp's time writing a 5,000-step pipeline
(`bench/bench_kfp.py`). Here the block structure is written directly, a scalar's style comes from
regular expressions over PyYAML's rules (`yaml/emitter.py` analyze_scalar / choose_scalar_style), plain
and single-quoted scalars are folded word by word, and the rare rest (double-quoted, multi-line) is
written by PyYAML's own emitter for that one scalar. `Unsupported` is raised for data PyYAML would
write in a form not reproduced here (complex keys, tags, a scalar document); the caller then falls
back to kfp's compiler. `tests/targets/test_kfp_direct.py` compares it with PyYAML on generated data.
"""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from yaml.emitter import Emitter
from yaml.events import ScalarEvent
from yaml.nodes import ScalarNode

WIDTH = 80  # PyYAML's best_width
_WS = "\0 \t\r\n\x85\u2028\u2029"
_SPECIAL = re.compile(r"[^\n\x20-\x7e]")  # double quotes only (allow_unicode is off)
_BREAK = re.compile("[\n\x85\u2028\u2029]")
_BLOCK_INDICATOR = re.compile(
    rf"^(?:---|\.\.\.)|^[#,\[\]{{}}&*!|>'\"%@`]|^[?:-](?:[{_WS}]|\Z)|:(?:[{_WS}]|\Z)|[{_WS}]#"
)
_BREAK_SPACE = re.compile("[\n\x85\u2028\u2029] ")
_SPACE_BREAK = re.compile(" [\n\x85\u2028\u2029]")
_SPACES = re.compile("( +)")
_ESCAPED = re.compile('[^\x20-\x7e]|["\\\\]')  # escaped in double quotes (allow_unicode is off)
_CANDIDATE = re.compile('[^\x20-\x7e]|["\\\\ ]')
_STR_TAG = "tag:yaml.org,2002:str"
_FLOAT_TAG = "tag:yaml.org,2002:float"
PLAIN, SINGLE, OTHER = 0, 1, 2


def _escape(ch: str) -> str:
    found = Emitter.ESCAPE_REPLACEMENTS.get(ch)
    if found is not None:
        return "\\" + found
    return f"\\x{ord(ch):02X}" if ch <= "\xff" else f"\\u{ord(ch):04X}" if ch <= "\uffff" else f"\\U{ord(ch):08X}"


def _double(text: str, column: int, indent: int, lead: str, split: bool) -> str:
    """write_double_quoted, visiting only the places where it can escape or fold: escaped characters,
    the character after each, and spaces (a fold needs a space, or the end of an escape, past the width)."""
    out, column, start, n = [lead + '"'], column + len(lead) + 1, 0, len(text)
    places: set[int] = {n}
    for match in _CANDIDATE.finditer(text):
        places.add(match.start())
        if match.group() != " ":
            places.add(match.start() + 1)
    for end in sorted(places):
        ch = text[end] if end < n else None
        if ch is None or (ch != " " and _ESCAPED.match(ch)):
            if start < end:
                out.append(text[start:end])
                column += end - start
            if ch is not None:
                escaped = _escape(ch)
                out.append(escaped)
                column += len(escaped)
            start = end + 1
        if split and 0 < end < n - 1 and (ch == " " or start >= end) and column + (end - start) > WIDTH:
            data = text[start:end] + "\\"
            start = max(start, end)
            out += [data, "\n" + " " * indent]
            column = indent
            if text[start] == " ":
                out.append("\\")
                column += 1
    out.append('"')
    return "".join(out)


class Unsupported(Exception):
    """Data PyYAML would write in a form this writer does not reproduce."""


class _Parts(list):
    write = list.append


class _Writer:
    """One dump: caches of scalar styles and of PyYAML's rendering of the rare scalars."""

    def __init__(self) -> None:
        self.resolver = yaml.Dumper(io.StringIO())  # the resolver kfp's `yaml.dump_all` uses
        self.styles: dict[str, tuple[int, int]] = {}  # text -> (style as a value, style as a key)
        self.emitter = Emitter(_Parts())
        self.rendered: dict[tuple[str, int, int, bool], str] = {}
        self.keys: dict[str, str] = {}  # key -> as written

    # -- scalar styles (PyYAML's analyze_scalar + choose_scalar_style, block context) ---------------
    def style(self, text: str) -> tuple[int, int]:
        found = self.styles.get(text)
        if found is None:
            found = self.styles[text] = self._style(text)
        return found

    def _style(self, text: str) -> tuple[int, int]:
        implicit = self.resolver.resolve(ScalarNode, text, (True, False)) == _STR_TAG
        if not text:
            return (PLAIN if implicit else SINGLE), OTHER  # an empty key is never simple
        multiline = _BREAK.search(text) is not None  # never a plain scalar, nor a simple key
        bad_ends = text[0] in " \n\x85\u2028\u2029" or text[-1] in " \n\x85\u2028\u2029"
        break_space = _BREAK_SPACE.search(text) is not None
        only_double = _SPACE_BREAK.search(text) is not None or _SPECIAL.search(text) is not None
        single = not break_space and not only_double
        plain = single and not bad_ends and not multiline and _BLOCK_INDICATOR.search(text) is None
        value = PLAIN if implicit and plain else SINGLE if single else OTHER
        return value, value

    # -- keys and values ---------------------------------------------------------------------------
    def key(self, key: Any) -> str:
        if not isinstance(key, str) or not key or len(key) + 5 >= 128 or _BREAK.search(key):
            raise Unsupported(f"mapping key {key!r}")  # not a simple key (`? key`), or tagged
        style = self.style(key)[1]
        if style == PLAIN:
            return key
        if style == SINGLE:
            return "'" + key.replace("'", "''") + "'"
        return _double(key, 0, 0, "", False)

    def value(self, value: Any, column: int, indent: int) -> str:
        """A scalar written after `:` or `-` at `column`, continued at `indent` when folded."""
        if isinstance(value, str):
            style = self.style(value)[0]
            if style == PLAIN:
                if column + len(value) < WIDTH or " " not in value:
                    return " " + value
                return self._folded(value, column + 1, indent, " ", "", False)
            if style == SINGLE:
                if _BREAK.search(value) is not None:
                    return self._pyyaml(value, column, indent, False)
                quoted = value.replace("'", "''")
                if column + len(quoted) + 3 <= WIDTH or " " not in value:
                    return " '" + quoted + "'"
                return self._folded(value, column + 2, indent, " '", "'", True)
            return _double(value, column, indent, " ", True)
        if value is True:
            return " true"
        if value is False:
            return " false"
        if value is None:
            return " null"
        if isinstance(value, int):
            return " " + str(value)
        if isinstance(value, float):
            return " " + self._float(value)
        raise Unsupported(f"value of type {type(value).__name__}")

    def _float(self, value: float) -> str:
        if value != value:
            text = ".nan"
        elif value in (float("inf"), float("-inf")):
            text = ".inf" if value > 0 else "-.inf"
        else:
            text = repr(value).lower()
            if "." not in text and "e" in text:
                text = text.replace("e", ".0e", 1)
        if self.resolver.resolve(ScalarNode, text, (True, False)) != _FLOAT_TAG:
            raise Unsupported(f"float {text}")  # PyYAML would tag it
        return text

    def _folded(self, text: str, column: int, indent: int, opening: str, closing: str, quoted: bool) -> str:
        """write_plain / write_single_quoted for text without line breaks: a single space past the
        width becomes a line break (not a leading or trailing one of a quoted scalar)."""
        out, pad = [opening], "\n" + " " * indent
        parts = _SPACES.split(text)
        last = len(parts) - 2 if parts[-1] == "" else -1  # a trailing run of spaces never folds
        for i, part in enumerate(parts):
            if not i % 2:
                if quoted and "'" in part:
                    part = part.replace("'", "''")
                out.append(part)
                column += len(part)
            elif len(part) == 1 and column > WIDTH and i != last and (i != 1 or parts[0] or not quoted):
                out.append(pad)
                column = indent
            else:
                out.append(part)
                column += len(part)
        out.append(closing)
        return "".join(out)

    def _pyyaml(self, text: str, column: int, indent: int, key: bool) -> str:
        """PyYAML's own emitter, for one scalar, in the state its block emitter would be in."""
        cache_key = (text, column, indent, key)
        found = self.rendered.get(cache_key)
        if found is not None:
            return found
        em = self.emitter
        em.stream = _Parts()
        em.column, em.indent, em.flow_level = column, indent, 0
        em.whitespace, em.indention, em.simple_key_context, em.root_context = key, False, key, False
        implicit = self.resolver.resolve(ScalarNode, text, (True, False)) == _STR_TAG
        em.event = ScalarEvent(None, _STR_TAG, (implicit, True), text)
        em.analysis = em.style = None
        em.process_scalar()
        found = self.rendered[cache_key] = "".join(em.stream)
        return found

    # -- block collections ---------------------------------------------------------------------------
    def mapping(self, data: dict, indent: int, out: list[str]) -> None:
        """Keys at column `indent`, sorted; a value's scalars continue at `indent + 2`."""
        pad, keys, styles = " " * indent, self.keys, self.styles
        for key in sorted(data):
            value = data[key]
            rendered = keys.get(key)
            if rendered is None:
                rendered = keys[key] = self.key(key)
            head = pad + rendered + ":"
            kind = type(value)
            if kind is str and styles.get(value, (None,))[0] == PLAIN and len(head) + len(value) < WIDTH:
                out.append(head + " " + value)  # the common case, as `value` writes it
            elif kind is dict:
                if value:
                    out.append(head)
                    self.mapping(value, indent + 2, out)
                else:
                    out.append(head + " {}")
            elif kind is list:
                if value:
                    out.append(head)
                    self.sequence(value, indent, out)  # a sequence in a mapping is not indented
                else:
                    out.append(head + " []")
            else:
                out.append(head + self.value(value, len(head), indent + 2))

    def sequence(self, items: list, indent: int, out: list[str]) -> None:
        """Dashes at column `indent`; a collection item starts on the dash's line."""
        pad = " " * indent
        for item in items:
            if isinstance(item, (dict, list)) and item:
                start = len(out)
                if isinstance(item, dict):
                    self.mapping(item, indent + 2, out)
                else:
                    self.sequence(item, indent + 2, out)
                out[start] = pad + "- " + out[start][indent + 2 :]
            elif isinstance(item, dict):
                out.append(pad + "- {}")
            elif isinstance(item, list):
                out.append(pad + "- []")
            else:
                out.append(pad + "-" + self.value(item, indent + 1, indent + 2))

    def document(self, data: Any) -> str:
        out: list[str] = []
        if isinstance(data, dict) and data:
            self.mapping(data, 0, out)
        elif isinstance(data, list) and data:
            self.sequence(data, 0, out)
        else:
            raise Unsupported("a document that is not a non-empty mapping or sequence")
        return "\n".join(out) + "\n"


def dump_all(documents: list[Any]) -> str:
    """`yaml.dump_all(documents, sort_keys=True)`, for documents without shared (aliased) objects."""
    writer = _Writer()
    return "---\n".join(writer.document(doc) for doc in documents)
