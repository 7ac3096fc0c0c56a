"""Evaluating an expr-lang tree (`expr.py`) as expr v1.17.8's VM does (`vm/runtime/runtime.go`,
`builtin/lib.go`): a missing map key reads nil, fetching from nil fails ("cannot fetch x from <nil>"),
`a?.b` cuts the chain short on nil, `==` compares numbers across int and float (never bool with int),
`+` adds numbers or joins strings, `/` is always float, `%` needs ints (Go's truncated remainder),
`< > <= >=` need two numbers or two strings, `&& || and or !` need booleans, `in` looks in a list
or a map's keys, `??` takes the right side when the left is nil. `int()`/`float()` (Argo's
`asInt`/`asFloat`) parse text with strconv's rules; `string()` is `fmt.Sprintf("%v")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.expr import ExprError


def go_type(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return "func" if callable(v) else type(v).__name__


def go_sprint(v: Any) -> str:
    """fmt.Sprintf("%v", v)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return gojson.format_g(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    return str(v)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def equal(a: Any, b: Any) -> bool:
    if is_num(a) and is_num(b):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return a == b


def _less(op: str, a: Any, b: Any) -> bool:
    if not ((is_num(a) and is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ExprError(f"invalid operation: {go_type(a)} {op} {go_type(b)}")
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (is_num(a) and is_num(b)):
        raise ExprError(f"invalid operation: {go_type(a)} {op} {go_type(b)}")
    if op == "/":
        return a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a) * math.copysign(1, b))
    if op == "%":
        if not (isinstance(a, int) and isinstance(b, int)):
            raise ExprError(f"invalid operation: {go_type(a)} % {go_type(b)}")
        if b == 0:
            raise ExprError("integer divide by zero")
        return int(math.copysign(abs(a) % abs(b), a))
    if op in ("**", "^"):
        return math.pow(a, b)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def fetch(obj: Any, key: Any) -> Any:
    if obj is None:
        raise ExprError(f"cannot fetch {go_sprint(key)} from <nil>")
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise ExprError(f"cannot fetch {go_sprint(key)} from {go_type(obj)}")
        return obj.get(key)
    if isinstance(obj, (list, str)) and is_num(key):
        index = int(key)
        index = index + len(obj) if index < 0 else index
        if not 0 <= index < len(obj):
            raise ExprError(f"index out of range: {index} (array length is {len(obj)})")
        return obj[index]
    raise ExprError(f"cannot fetch {go_sprint(key)} from {go_type(obj)}")


class _Nil:
    """An optional chain (`a?.b.c`) cut short by nil."""


def evaluate(node: tuple, env: dict[str, Any]) -> Any:
    value = _eval(node, env)
    return None if value is _Nil else value


def _chain(node: tuple, env: dict[str, Any]) -> Any:
    return _eval(node, env) if node[0] in ("member", "call") else evaluate(node, env)


def _eval(node: tuple, env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "id":
        if node[1] not in env:
            raise ExprError(f"unknown name {node[1]}")
        return env[node[1]]
    if kind == "member":
        obj = _chain(node[1], env)
        if obj is _Nil or (obj is None and node[3]):
            return _Nil
        return fetch(obj, evaluate(node[2], env))
    if kind == "call":
        fn = _chain(node[1], env)
        if fn is _Nil:
            return _Nil
        args = [evaluate(a, env) for a in node[2]]
        if not callable(fn):
            raise ExprError(f"{go_type(fn)} is not callable")
        return call(fn, args)
    if kind == "builtin":
        fn = env.get(node[1]) if callable(env.get(node[1])) else BUILTINS[node[1]]
        return call(fn, [evaluate(a, env) for a in node[2]])
    if kind == "array":
        return [evaluate(n, env) for n in node[1]]
    if kind == "map":
        return {evaluate(k, env): evaluate(v, env) for k, v in node[1]}
    if kind == "unary":
        value = evaluate(node[2], env)
        if node[1] in ("!", "not"):
            if not isinstance(value, bool):
                raise ExprError(f"invalid operation: {node[1]} {go_type(value)}")
            return not value
        if not is_num(value):
            raise ExprError(f"invalid operation: {node[1]} {go_type(value)}")
        return -value if node[1] == "-" else value
    if kind == "cond":
        cond = evaluate(node[1], env)
        if not isinstance(cond, bool):
            raise ExprError(f"non-bool expression (type {go_type(cond)}) used as condition")
        return evaluate(node[2] if cond else node[3], env)
    return _binary(node[1], node[2], node[3], env)


def _binary(op: str, left: tuple, right: tuple, env: dict[str, Any]) -> Any:
    a = evaluate(left, env)
    if op in ("&&", "and", "||", "or"):
        if not isinstance(a, bool):
            raise ExprError(f"invalid operation: {go_type(a)} {op} (operands must be bool)")
        if a == (op in ("||", "or")):
            return a
        b = evaluate(right, env)
        if not isinstance(b, bool):
            raise ExprError(f"invalid operation: bool {op} {go_type(b)}")
        return b
    if op == "??":
        return evaluate(right, env) if a is None else a
    b = evaluate(right, env)
    if op in ("==", "!="):
        return equal(a, b) == (op == "==")
    if op in ("<", ">", "<=", ">="):
        return _less(op, a, b)
    if op == "in":
        if isinstance(b, list):
            return any(equal(a, x) for x in b)
        if isinstance(b, dict):
            return a in b
        raise ExprError(f'operator "in" not defined on {go_type(b)}')
    if op in ("contains", "startsWith", "endsWith", "matches"):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise ExprError(f"invalid operation: {go_type(a)} {op} {go_type(b)}")
        if op == "matches":
            return re.search(b, a) is not None
        return {"contains": b in a, "startsWith": a.startswith(b), "endsWith": a.endswith(b)}[op]
    return _arith(op, a, b)


def call(fn: Callable[..., Any], args: list[Any]) -> Any:
    try:
        return fn(*args)
    except ExprError:
        raise
    except TypeError as err:
        raise ExprError(f"bad call: {err}") from None
    except (ValueError, KeyError, IndexError) as err:
        raise ExprError(str(err)) from None


def go_int(x: Any) -> int:
    """builtin.Int (expr builtin/lib.go), Argo's `asInt`."""
    if is_num(x):
        return int(x)
    if isinstance(x, str) and re.fullmatch(r"[+-]?\d+", x):
        return int(x)
    raise ExprError(f"invalid operation: int({x if isinstance(x, str) else go_type(x)})")


def go_float(x: Any) -> float:
    """builtin.Float, Argo's `asFloat` (strconv.ParseFloat for text)."""
    if is_num(x):
        return float(x)
    if isinstance(x, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)", x):
        return float(x)
    raise ExprError(f"invalid operation: float({x if isinstance(x, str) else go_type(x)})")


def _len(x: Any) -> int:
    if isinstance(x, (list, dict, str)):
        return len(x)
    raise ExprError(f"invalid argument for len (type {go_type(x)})")


def _type(v: Any) -> str:
    """expr v1.17.8 builtin `type`: the kind of a value."""
    if v is None:
        return "nil"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"), (list, "array"), (dict, "map")):
        if isinstance(v, kind):
            return name
    return "func" if callable(v) else "unknown"


BUILTINS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "type": _type,
    "string": go_sprint,
    "int": go_int,
    "float": go_float,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "trim": lambda s, chars=None: s.strip(chars) if chars else s.strip(),
    "split": lambda s, sep: s.split(sep),
    "join": lambda items, sep="": sep.join(items),
    "keys": lambda m: list(m),
    "values": lambda m: list(m.values()),
}
