"""Resource template conditions and outputs, as argoexec evaluates them (argo-workflows v4.1.2).

- `successCondition` / `failureCondition` (`workflow/executor/resource.go` WaitResource and
  matchConditions; `docs/resource-template.md`): parsed with Kubernetes' label selector parser
  (k8s.io/apimachinery `labels.Parse`: `key`, `!key`, `=`, `==`, `!=`, `in (..)`, `notin (..)`,
  `>`/`<` with integers, comma-separated; keys must be qualified names, values label values), each
  key read from the object's JSON as a gjson path (dots, `\\.` escapes, array indexes). Failure
  requirements are checked first, any one matching fails the node ("failure condition 'k>0' evaluated
  true"); success needs every requirement. Without conditions the wait returns at once.
- Output parameters: `valueFrom.jsonPath` is `kubectl get -o jsonpath=...` (k8s.io/client-go
  `util/jsonpath`, subset: `{.a.b}`, `\\.` in names, `['k']`, `[n]`, text around the braces).
"""

from __future__ import annotations

import re
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.exprrun import go_sprint

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LEX = re.compile(r"\s*(!=|==|=|!|,|\(|\)|>|<|[^\s!=,()<>]+)")


class SelectorError(Exception):
    pass


def _key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _NAME.match(name) or (prefix and (len(prefix) > 253 or not _DNS.match(prefix))):
        raise SelectorError(
            f"key: Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return key


def _value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f"values[0]: Invalid value: {value!r}: a valid label must be an empty string or consist of "
            "alphanumeric characters, '-', '_' or '.'"
        )
    return value


def parse_selector(text: str) -> list[tuple[str, str, list[str]]]:
    """labels.Parse: requirements (key, operator, values), sorted by key."""
    toks, pos = [], 0
    while pos < len(text.rstrip()):
        m = _LEX.match(text, pos)
        toks.append(m.group(1))
        pos = m.end()
    reqs, i = [], 0

    def take() -> str | None:
        nonlocal i
        i += 1
        return toks[i - 1] if i - 1 < len(toks) else None

    while i < len(toks):
        tok = take()
        if tok == "!":
            reqs.append((_key(take() or ""), "!", []))
        else:
            key, op = _key(tok or ""), take()
            if op in (None, ","):
                reqs.append((key, "exists", []))
                continue
            if op in ("in", "notin"):
                if take() != "(":
                    raise SelectorError(f"found '{toks[i - 1] if i - 1 < len(toks) else ''}', expected: '('")
                values = []
                while (v := take()) != ")":
                    if v is None:
                        raise SelectorError("found '', expected: ')'")
                    if v != ",":
                        values.append(_value(v))
                reqs.append((key, op, values))
            elif op in ("=", "==", "!=", ">", "<"):
                value = "" if i >= len(toks) or toks[i] == "," else take()
                if op in (">", "<") and not re.fullmatch(r"[+-]?\d+", value or ""):
                    raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: {value}")
                reqs.append((key, op, [_value(value)]))
            else:
                raise SelectorError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks) and take() != ",":
            raise SelectorError(f"found '{toks[i - 1]}', expected: ',' or 'end of string'")
    return sorted(reqs, key=lambda r: r[0])


def show(req: tuple[str, str, list[str]]) -> str:
    key, op, values = req
    if op == "!":
        return "!" + key
    if op == "exists":
        return key
    if op in ("in", "notin"):
        return f"{key} {op} ({','.join(sorted(values))})"
    return f"{key}{op}{values[0]}"


def gjson_get(obj: Any, path: str) -> tuple[bool, str]:
    """gjson.Get(json, path): (exists, String())."""
    parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", path)]
    for part in parts:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part == "#":
            obj = len(obj)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return False, ""
    if obj is None:
        return True, ""
    if isinstance(obj, (dict, list)):
        return True, gojson.marshal(obj)
    return True, gojson.any_string(obj) if not isinstance(obj, str) else obj


def matches(req: tuple[str, str, list[str]], obj: Any) -> bool:
    key, op, values = req
    has, value = gjson_get(obj, key)
    if op == "exists":
        return has
    if op == "!":
        return not has
    if op in ("=", "==", "in"):
        return has and value in values
    if op in ("!=", "notin"):
        return not has or value not in values
    if not has or not re.fullmatch(r"[+-]?\d+", value):
        return False
    return int(value) > int(values[0]) if op == ">" else int(value) < int(values[0])


def check(obj: Any, success: list, failure: list) -> tuple[str | None, str]:
    """matchConditions: ("failure", message), ("success", ""), or (None, "") to keep waiting."""
    for req in failure:
        if matches(req, obj):
            return "failure", f"failure condition '{show(req)}' evaluated true"
    if all(matches(req, obj) for req in success):
        return "success", ""
    return None, ""


_JP = re.compile(r"\.((?:[^.\[\]\\]|\\.)+)|\['([^']*)'\]|\[(-?\d+)\]")


def kubectl_jsonpath(obj: Any, template: str) -> str:
    """kubectl get -o jsonpath=TEMPLATE; ValueError like kubectl's when a field is missing."""
    out, pos = [], 0
    for m in re.finditer(r"\{([^{}]*)\}", template):
        out.append(template[pos : m.start()])
        pos, value, expr = m.end(), obj, m.group(1).strip()
        at = 0
        while at < len(expr):
            step = _JP.match(expr, at)
            if not step:
                raise ValueError(f"error parsing jsonpath {template}: unrecognized character in action: {expr[at:]!r}")
            name = (step.group(1) or "").replace("\\.", ".") or step.group(2)
            if step.group(3) is not None:
                index = int(step.group(3))
                if not isinstance(value, list) or not -len(value) <= index < len(value):
                    raise ValueError(f"error executing jsonpath {template!r}: array index out of bounds: index {index}")
                value = value[index]
            elif isinstance(value, dict) and name in value:
                value = value[name]
            else:
                raise ValueError(
                    f"error executing jsonpath {template!r}: Error executing template: {name} is not found"
                )
            at = step.end()
        out.append(
            value
            if isinstance(value, str)
            else gojson.any_string(value)
            if not isinstance(value, (dict, list))
            else go_sprint(value)
        )
    out.append(template[pos:])
    return "".join(out)
