"""`--param K=V` on the command line (every command that loads a pipeline): text -> typed values.

`parse_params` takes the `K=V` strings and gives their texts (a pair without `=` or a name is DML027).
`typed` takes those and the pipeline's own `params { }`, and gives each value in the type of the
param's default: an `int` param takes a whole number, a `float` any finite number, a `bool` true or
false, a `str` the text exactly as given (`--param label=2` is the text "2"), a list or map a JSON /
YAML flow value of that shape. A name the pipeline does not declare, a value of the wrong type or out
of range, YAML tags, anchors, dates and binary all give DML027 naming the param. Values given
programmatically (not text) are checked the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from dmlc.diagnostics.catalogue import DML027
from dmlc.diagnostics.model import Diagnostic, DmlError, Label, did_you_mean

INT_LIMIT = 2**63  # what every engine (Argo's Go int64, KFP's protobuf numbers, JSON readers) can hold
_INT = re.compile(r"^[-+]?[0-9]+$")
_TYPES = {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list", dict: "a map"}


def parse_params(pairs: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DmlError([_bad(pair, "must be KEY=VALUE")])
        out[key] = value
    return out


def typed(given: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
    """`given` (texts from the command line, or values) in the types of the `declared` defaults."""
    problems: list[Diagnostic] = []
    out: dict[str, Any] = {}
    for name, value in given.items():
        pair = f"{name}={value if isinstance(value, str) and len(value) <= 40 else '...'}"
        if name not in declared:
            help_ = did_you_mean(name, list(declared), "param") or "declare it in `params { }` first"
            problems.append(_bad(pair, f"names no param of this pipeline (`{name}`)", help_))
            continue
        try:
            out[name] = _convert(value, declared[name])
        except ValueError as exc:
            problems.append(_bad(pair, f"does not fit `{name}`: {exc}", f"`{name}` takes {_kind(declared[name])}"))
    if problems:
        raise DmlError(problems)
    return out


def _kind(default: Any) -> str:
    return _TYPES.get(type(default), "any JSON value")


def _convert(value: Any, default: Any) -> Any:
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        value = _read(value, kind)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if default is not None and (type(value) is not kind):
        raise ValueError(f"expected {_kind(default)}, got {_show(value)}")
    _check_value(value)
    return value


def _read(text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if kind is int:
        if not _INT.match(text.strip()):
            raise ValueError(f"expected a whole number, got {text!r}")
        return int(text)
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    return _flow(text)


def _flow(text: str) -> Any:
    """A JSON or YAML flow value, without tags, anchors, aliases, dates or binary."""
    import yaml

    if re.search(r"(^|[\s\[{,:])[!&*]", text):
        raise ValueError("YAML tags, anchors and aliases are not values")
    loader = type("ParamLoader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {  # no timestamps: a date is text here, as in JSON
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader with fewer resolvers
    except yaml.YAMLError as exc:
        raise ValueError(str(getattr(exc, "problem", None) or "not a YAML value")) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _check_value(value: Any, depth: int = 0) -> None:
    """JSON-compatible, finite, within the engines' integer range, not absurdly deep."""
    if depth > 100:
        raise ValueError("nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= INT_LIMIT:
            raise ValueError(f"{_show(value)} is out of range (at most {INT_LIMIT - 1} either way)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"map keys must be text, got {_show(key)}")
            _check_value(item, depth + 1)
    else:
        raise ValueError(f"{type(value).__name__} is not a param value")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(pair: str, why: str, help_: str | None = None) -> Diagnostic:
    help_ = help_ or "write --param name=value, e.g. --param epochs=3 or --param 'sizes=[1, 2]'"
    return Diagnostic(DML027, f"`--param {pair}` {why}", Label(None), help=help_)
