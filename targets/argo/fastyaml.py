"""Argo target, stage 4 (emit): a small block-style YAML emitter for plain JSON-like data.

Takes dict / list / str / int / float / bool / None (what `model_dump(mode="json")` gives); gives YAML
text that `yaml.safe_load` reads back to the same data. PyYAML's representer is pure Python and was the
bottleneck on large workflows (about 3/4 of the time at 5,000 steps), so this writes the common shapes
directly: plain scalars only when they cannot be read as anything else, JSON-style double quotes
otherwise, literal blocks (`|`) for multi-line text such as embedded manifests. A mapping's `name`
key comes first, as Kubernetes manifests are usually written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./()-]*$")
_RESERVED = frozenset(
    ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]  # YAML 1.1 booleans and null, in any case
)
_INDENT = "  "


def _quoted(text: str) -> str:
    if text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"  # PyYAML (YAML 1.1) needs a dot to read 1e-05 as a float
    return text


def scalar(value: Any) -> str:
    if type(value) is str:
        found = _TEXTS.get(value)
        if found is None:
            found = _plain_or_quoted(value)
            if len(_TEXTS) < _TEXTS_KEPT:
                _TEXTS[value] = found
        return found
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    return _plain_or_quoted(str(value))


def _plain_or_quoted(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _quoted(text)


_TEXTS: dict[str, str] = {}  # text -> as written: keys and most values repeat from step to step
_TEXTS_KEPT = 50_000  # a bound on that memo (a few MB): the repeated texts come early


def _block(text: str) -> str | None:
    """A literal block header for multi-line text, or None when a literal block cannot hold it exactly."""
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    lines = body.split("\n")
    if trailing > 1 or not lines[0] or lines[0][0] == " ":
        return None  # the first line sets the indentation of the block
    if any(not line.isprintable() or (line and not line.strip()) for line in lines):
        return None
    return "|" if trailing == 1 else "|-"


def _lines(value: Any, indent: str, out: list[str]) -> None:
    """Append the block lines of a non-empty mapping or sequence at `indent`."""
    if isinstance(value, dict):
        if "name" in value:  # Kubernetes style: `name` first in every mapping that has one
            _entry(f"{indent}name:", value["name"], indent, out)
        texts = _TEXTS
        for key, item in value.items():
            if key != "name":
                head = indent + (texts.get(key) or scalar(key)) + ":"
                if type(item) is str and "\n" not in item:  # the common case of `_entry`, without a call
                    out.append(head + " " + (texts.get(item) or scalar(item)))
                else:
                    _entry(head, item, indent, out)
    else:
        for item in value:
            _item(item, indent, out)


def _entry(head: str, item: Any, indent: str, out: list[str]) -> None:
    kind = type(item)
    if kind is str and "\n" not in item:
        out.append(head + " " + scalar(item))
    elif kind is dict or kind is list or isinstance(item, (dict, list)):
        if not item:
            out.append(head + (" {}" if isinstance(item, dict) else " []"))
        else:
            out.append(head)
            # PyYAML's style: a sequence under a key is not indented
            _lines(item, indent + _INDENT if isinstance(item, dict) else indent, out)
    else:
        out.append(f"{head} {_inline(item, indent)}")


def _item(item: Any, indent: str, out: list[str]) -> None:
    if isinstance(item, (dict, list)) and item:
        start = len(out)
        _lines(item, indent + _INDENT, out)
        out[start] = f"{indent}- {out[start][len(indent) + len(_INDENT) :]}"
    elif type(item) is str and "\n" not in item:
        out.append(indent + "- " + scalar(item))
    else:
        out.append(f"{indent}- {_inline(item, indent)}")


def _inline(item: Any, indent: str) -> str:
    if isinstance(item, dict):
        return "{}"
    if isinstance(item, list):
        return "[]"
    if isinstance(item, str) and "\n" in item:
        header = _block(item)
        if header is not None:
            pad = indent + _INDENT
            return header + "".join(f"\n{pad}{line}" if line else "\n" for line in item.rstrip("\n").split("\n"))
    return scalar(item)


def dump(value: Any) -> str:
    """One YAML document (no `---`), ending with a newline."""
    if isinstance(value, (dict, list)) and value:
        out: list[str] = []
        _lines(value, "", out)
        return "\n".join(out) + "\n"
    return _inline(value, "") + "\n"


def dump_all(values: list[Any]) -> str:
    return "---\n".join(dump(v) for v in values)


def dump_item(value: Any, indent: int) -> str:
    """`value` as one item of a block sequence whose dashes sit at column `indent` (ends with a newline)."""
    out: list[str] = []
    _item(value, " " * indent, out)
    return "\n".join(out) + "\n"
