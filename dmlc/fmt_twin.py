"""A parsed document -> the YAML form or the `.dml` form, with its comments (`fmt_comments`) kept.

Written from the document's data, not the IR, so every value is written as it was read (no default
is added or dropped, no unit rewritten). YAML is written here line by line (block mappings, flow
lists of scalars, JSON-style double quotes where a plain scalar would not read back); `.dml` text
is written plainly and then laid out by the CST formatter (`fmt_dml`), so both twins come out in
their canonical layout.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dmlc.fmt_comments import MODELINE, Anchored, to_hash
from dmlc.fmt_dml import Line, _join
from dmlc.parse.document import Path

SCHEMA_LINE = f"{MODELINE}: $schema=../schema/dmlc.schema.json"
REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.\[\]*]*)\}$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNIT = re.compile(r"^\d+(\.\d+)?[A-Za-z]+$")
YAML_UNSAFE = re.compile("[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
GROUPS = {"volumes": "volume", "targets": "target"}
JSON_ESCAPE = re.compile(r"\\(.)")
DML_ESCAPE = {"b": "\\u0008", "f": "\\u000c"}


def _hash(comment: str) -> str:
    """A YAML comment: `//` becomes `#`; what YAML refuses (controls) or reads as a line break as `\\uXXXX`."""
    return YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", to_hash(comment))


def yaml_text(data: dict[str, Any], comments: Anchored) -> str:
    lines: list[Line | None] = []
    head = comments.take_leading(("pipeline",))
    if not any(c.startswith(MODELINE) for c in head):
        head.insert(0, SCHEMA_LINE)
    lines += [Line(0, "", _hash(c)) for c in head]
    _ymap(lines, data, (), 0, comments, top=True)
    lines += [Line(0, "", _hash(c)) for c in comments.rest()]
    return _join(lines)


def _ymap(
    lines: list[Line | None], data: dict[str, Any], path: Path, depth: int, c: Anchored, top: bool = False
) -> None:
    for i, (key, value) in enumerate(data.items()):
        here = path + (key,)
        if here in c.blank and i > 0:
            lines.append(None)
        lines += [Line(depth, "", _hash(t)) for t in c.take_leading(here)]
        name = _yscalar(key, block=True)
        if isinstance(value, dict) and value:
            lines.append(Line(depth, f"{name}:", _hash(c.take_trailing(here))))
            _ymap(lines, value, here, depth + 1, c)
        else:
            lines.append(Line(depth, f"{name}: {_yvalue(value)}", _hash(c.take_trailing(here))))


def _yvalue(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_yvalue(v) if isinstance(v, list | dict) else _yscalar(v, False) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yscalar(k, False)}: {_yvalue(v)}" for k, v in value.items()) + "}"
    return _yscalar(value, block=True)


def _yscalar(value: Any, block: bool) -> str:
    """One scalar on one line that YAML reads back as the same value."""
    import yaml

    if not isinstance(value, str):
        return yaml.safe_dump([value], default_flow_style=True, width=1 << 30).strip()[1:-1]
    if block and REF.match(value):
        return value
    if value and value == value.strip() and not YAML_UNSAFE.search(value) and _reads_as(value, block, yaml):
        return value
    quoted = json.dumps(value, ensure_ascii=False)
    return YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _reads_as(text: str, block: bool, yaml: Any) -> bool:
    """`text` written plain reads back as the same string (in a mapping's value, or inside `[...]`)."""
    try:
        return yaml.safe_load(f"k: {text}" if block else f"[{text}]") in ({"k": text}, [text])
    except yaml.YAMLError:
        return False


def dml_text(data: dict[str, Any], comments: Anchored) -> str:
    """The `.dml` form (before layout): steps as `KIND NAME { }`, volumes and targets as named blocks."""
    out: list[str] = [t for t in comments.take_leading(("pipeline",)) if not t.startswith(MODELINE)]
    data = dict(data)
    out.append(f"pipeline {data.pop('pipeline')} {{{_tail(comments, ('pipeline',))}")
    for key, value in data.items():
        if key == "steps" or key in GROUPS:
            out += _pre(comments, (key,)) + [t.strip() for t in [_tail(comments, (key,))] if t]
            for name, body in value.items():
                body = dict(body)
                word = body.pop("kind") if key == "steps" else GROUPS[key]
                out += ["", *_block(f"{word} {name}", body, (key, name), comments)]
        elif isinstance(value, dict) and value:
            out += ["", *_block(_key(key), value, (key,), comments)]
        else:
            out += _pre(comments, (key,)) + [f"{_key(key)} = {_value(value, key)}{_tail(comments, (key,))}"]
    out += [t for t in comments.rest()]
    out.append("}")
    return "\n".join(out) + "\n"


def _pre(c: Anchored, path: Path) -> list[str]:
    return [t for t in c.take_leading(path)]


def _tail(c: Anchored, path: Path) -> str:
    text = c.take_trailing(path)
    return f"  {text}" if text else ""


def _block(header: str, body: dict[str, Any], path: Path, c: Anchored) -> list[str]:
    lines = [*_pre(c, path), f"{header} {{{_tail(c, path)}"]
    lines += _pre(c, path + ("kind",))  # the YAML form's `kind:` line is the header here
    lines += [t.strip() for t in [_tail(c, path + ("kind",))] if t]
    for key, value in body.items():
        here = path + (key,)
        if isinstance(value, dict) and value and key != "inputs":
            lines += _block(_key(key), value, here, c)
        else:
            lines += [*_pre(c, here), f"{_key(key)} = {_value(value, key)}{_tail(c, here)}"]
    lines.append("}")
    return lines


def _key(key: str) -> str:
    return key if IDENT.match(key) else _quote(key)


def _quote(text: str) -> str:
    """A .dml string literal: JSON's, but `\\b` and `\\f` (no .dml escapes) written as `\\uXXXX`."""
    return JSON_ESCAPE.sub(lambda m: DML_ESCAPE.get(m.group(1), m.group(0)), json.dumps(text, ensure_ascii=False))


def _value(value: Any, key: str = "") -> str:
    if isinstance(value, str):
        ref = REF.match(value)
        if ref:
            return ref.group(1)
        if UNIT.match(value) or (key == "after" and IDENT.match(value)):
            return value
        return _quote(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, key) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + "  ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return repr(value)
