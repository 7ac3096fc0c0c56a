"""Where the cursor is in the YAML form while it is being typed: the block path from indentation.

The YAML twin's blocks are indented maps, so the enclosing path is the chain of `key:` lines above the
cursor with less indentation (`steps:` / `model:` / `resources:` -> ("steps", "model", "resources")),
and the line under the cursor says whether a key or a value (after `key: `) is being written. Flow
maps (`{max_age: 1h}`) are left to the schema; this only serves completion.
"""

from __future__ import annotations

import re

from dmlc.lsp.context import Context, _ref_context

KEY_LINE = re.compile(
    r"""^(?P<indent> *)(?:- +)?(?P<key>[A-Za-z_][\w.-]*|"[^"\n]*"|'[^'\n]*') *:(?: +(?P<value>.*))?$"""
)
OPENER = re.compile(r"^ *(?:#.*)?$")  # nothing after `key:` but maybe a comment: a block opens below


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key(match: re.Match[str]) -> str:
    key = match.group("key")
    return key[1:-1] if key[:1] in "\"'" else key


def _parents(lines: list[str], indent: int) -> tuple[str, ...]:
    """The keys of the blocks that hold a line indented by `indent`, outermost first."""
    path: list[str] = []
    for line in reversed(lines):
        if indent == 0:
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = KEY_LINE.match(line)
        if _indent(line) < indent:
            if match and OPENER.match(match.group("value") or ""):
                path.append(_key(match))
            indent = _indent(line)
    return tuple(reversed(path))


def yaml_steps(text: str) -> dict[str, str]:
    """step name -> kind from the `steps:` block (a step without `kind:` maps to "")."""
    steps: dict[str, str] = {}
    inside, step_indent, current = False, None, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = KEY_LINE.match(line)
        if _indent(line) == 0:
            inside = bool(match and _key(match) == "steps")
            continue
        if not inside or match is None:
            continue
        step_indent = _indent(line) if step_indent is None else step_indent
        if _indent(line) == step_indent:
            current = _key(match)
            steps[current] = ""
        elif current is not None and _key(match) == "kind" and match.group("value"):
            steps[current] = steps[current] or match.group("value").split("#")[0].strip().strip("\"'")
    return steps


def yaml_context(text: str, offset: int) -> Context:
    """The context at `offset` in the YAML form."""
    start = text.rfind("\n", 0, offset) + 1
    line = text[start:offset]
    steps = yaml_steps(text)
    indent = _indent(line)
    path = _parents(text[:start].split("\n"), indent)
    if _in_comment(line):
        return Context("none", path, steps=steps)
    match = KEY_LINE.match(line)
    if match and match.group("value") is not None:
        return _value(match.group("value"), path, _key(match), steps)
    item = re.match(r"^ *- +(?P<value>.*)$", line)
    if item and path:
        return _value(item.group("value"), path[:-1], path[-1], steps)
    return Context("key", path, prefix=line.strip(), steps=steps)


def _value(value: str, path: tuple[str, ...], attr: str, steps: dict[str, str]) -> Context:
    opened = value.rfind("${")
    if opened >= 0 and "}" not in value[opened:]:
        return _ref_context(value[opened + 2 :], path, steps, attr)
    last = re.split(r"[\[,]", value)[-1].strip()
    quoted = last[:1] in ("'", '"')
    return Context("value", path, attr, last.lstrip("'\""), steps=steps, quoted=quoted)


def _in_comment(line: str) -> bool:
    """A `#` that starts a comment: at the line's start or after a space, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return True
    return False
