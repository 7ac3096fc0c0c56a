"""The environment Argo evaluates expressions in (argo-workflows v4.1.2).

- `func_map` = `util/expr/env/env.go` GetFuncMap: the flat replace map expanded into nested maps
  (`util/expand/expand.go`: `removeConflicts` drops a key when the next key in sorted order is its
  child, then `bellows.Expand` nests on dots), plus `asInt`/`asFloat` (expr's builtin.Int/Float),
  `jsonpath` (github.com/evilmonkeyinc/jsonpath v0.8.1, subset `$`, `.key`, `['key']`, `[n]`, `[*]`),
  `toJson` (json.Marshal) and `sprig` (Masterminds/sprig v3.3.0 GenericFuncMap, subset: trunc,
  sha256sum, sha1sum, b64enc, b64dec, lower, upper, toString, trim, replace, contains, hasPrefix,
  hasSuffix, quote, squote, default, fromJson, regexReplaceAll).
- `has_var` = `hasVarInEnv` of `util/template/expression_template.go`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.expr import ExprError
from tests.argo_replay.exprrun import go_float, go_int, go_sprint, go_type


def expand(flat: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(flat)
    kept = [k for i, k in enumerate(keys) if not (i + 1 < len(keys) and keys[i + 1].startswith(k + "."))]
    out: dict[str, Any] = {}
    for key in kept:
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            if not isinstance(node.get(parts[-1]), dict):
                node[parts[-1]] = flat[key]
    return out


def has_var(env: dict[str, Any], name: str) -> bool:
    if name in env:
        return True
    parts = name.split(".")
    current: Any = env
    rest = parts
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in env:
            current, rest = env[".".join(parts[:i])], parts[i:]
            break
    for part in rest:
        if not isinstance(current, dict) or part not in current:
            return False
        current = current[part]
    return True


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ExprError(f"reflect: Call using {go_type(value)} as type string (sprig.{name})")
    return value


def _trunc(c: Any, s: Any) -> str:
    if isinstance(c, bool) or not isinstance(c, int):
        raise ExprError(f"reflect: Call using {go_type(c)} as type int (sprig.trunc)")
    raw = _str("trunc", s).encode()
    if c < 0 and len(raw) + c > 0:
        return raw[len(raw) + c :].decode(errors="replace")
    if c >= 0 and len(raw) > c:
        return raw[:c].decode(errors="replace")
    return s


def _b64dec(s: Any) -> str:
    try:
        return base64.b64decode(_str("b64dec", s).encode(), validate=True).decode(errors="replace")
    except ValueError as err:
        return f"illegal base64 data: {err}"


def _from_json(s: Any) -> Any:
    """sprig v3.3.0 fromJson: mustFromJson's output, nil when the text is not JSON (numbers float64)."""
    try:
        return json.loads(_str("fromJson", s), parse_int=float)
    except ValueError:
        return None


def _regex_replace_all(regex: Any, s: Any, repl: Any) -> str:
    """sprig regexReplaceAll (Go regexp, RE2): the subset where Python's `re` agrees, `$` being the end
    of the text (Go's default) rather than also before a final newline (Python's)."""
    pattern = re.sub(r"\$$", r"\\Z", _str("regexReplaceAll", regex))
    return re.sub(pattern, _str("regexReplaceAll", repl), _str("regexReplaceAll", s))


def _to_string(v: Any) -> str:
    return v if isinstance(v, str) else go_sprint(v)


def _default(d: Any, *given: Any) -> Any:
    value = given[0] if given else None
    empty = value is None or value in ("", 0, False) or (isinstance(value, (list, dict)) and not value)
    return d if empty else value


SPRIG = {
    "trunc": _trunc,
    "sha256sum": lambda s: hashlib.sha256(_str("sha256sum", s).encode()).hexdigest(),
    "sha1sum": lambda s: hashlib.sha1(_str("sha1sum", s).encode()).hexdigest(),
    "b64enc": lambda s: base64.b64encode(_str("b64enc", s).encode()).decode(),
    "b64dec": _b64dec,
    "lower": lambda s: _str("lower", s).lower(),
    "upper": lambda s: _str("upper", s).upper(),
    "toString": _to_string,
    "trim": lambda s: _str("trim", s).strip(),
    "replace": lambda old, new, src: _str("replace", src).replace(old, new),
    "contains": lambda sub, s: _str("contains", sub) in _str("contains", s),
    "hasPrefix": lambda p, s: _str("hasPrefix", s).startswith(p),
    "hasSuffix": lambda p, s: _str("hasSuffix", s).endswith(p),
    "quote": lambda *xs: " ".join('"' + gojson.quote(_to_string(x)) + '"' for x in xs if x is not None),
    "squote": lambda *xs: " ".join("'" + _to_string(x) + "'" for x in xs if x is not None),
    "default": _default,
    "fromJson": _from_json,
    "regexReplaceAll": _regex_replace_all,
}

_STEP = re.compile(
    r"\.([A-Za-z0-9_\-$@]+)|\[\s*'((?:[^'\\]|\\.)*)'\s*\]|\[\s*\"((?:[^\"\\]|\\.)*)\"\s*\]|\[\s*(-?\d+)\s*\]|(\[\s*\*\s*\]|\.\*)"
)


def _query(value: Any, steps: list[tuple[str | None, str | None, bool]]) -> Any:
    if not steps:
        return value
    (key, index, wild), rest = steps[0], steps[1:]
    if wild:
        items = (
            value if isinstance(value, list) else [value[k] for k in sorted(value)] if isinstance(value, dict) else None
        )
        if items is None:
            raise ExprError("jsonpath: wildcard on a value that is neither an array nor an object")
        out = []
        for item in items:
            found = _query(item, rest)
            out.extend(found if isinstance(found, list) and any(s[2] for s in rest) else [found])
        return out
    if index is not None:
        i = int(index)
        if not isinstance(value, list) or not -len(value) <= i < len(value):
            raise ExprError(f"jsonpath: index [{index}] out of range")
        return _query(value[i], rest)
    if not isinstance(value, dict) or key not in value:
        raise ExprError(f"jsonpath: key '{key}' not found")
    return _query(value[key], rest)


def jsonpath(text: Any, path: Any) -> Any:
    """evilmonkeyinc/jsonpath Query on JSON text (numbers as float64, as Go's json.Unmarshal reads them)."""
    try:
        value = json.loads(_str("jsonpath", text), parse_int=float)
    except json.JSONDecodeError as err:
        raise ExprError(f"jsonpath: invalid JSON: {err}") from None
    path = _str("jsonpath", path).strip()
    if not path.startswith("$"):
        raise ExprError(f"jsonpath: invalid path {path!r}: must start with '$'")
    steps, pos = [], 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if not m:
            raise ExprError(
                f"jsonpath: unsupported path {path!r} at {pos} (the replay knows $, .key, ['key'], [n], [*])"
            )
        steps.append((m.group(1) or m.group(2) or m.group(3), m.group(4), m.group(5) is not None))
        pos = m.end()
    return _query(value, steps)


def func_map(replace_map: dict[str, Any]) -> dict[str, Any]:
    env = expand(replace_map)
    env.update(asInt=go_int, asFloat=go_float, jsonpath=jsonpath, toJson=gojson.marshal, sprig=dict(SPRIG))
    return env
