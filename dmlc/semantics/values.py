"""Reference resolution at run time (shared by the local executor and the KFP component shim).

Takes a JSON value in which references are still written `${...}` and a `lookup(Ref) -> value`
callback answered by the caller (the executor from finished instances, the KFP shim from its
component inputs); gives the value with whole-string references replaced by their values and
`${...}` inside strings filled in as text (`$${` stands for a literal `${`). Also the text form of a
value (`to_text`: how a value reads inside a string, an `env` value or a command argument) and the
`min_success` gate of fan-ins whose failed instances arrive as missing values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dmlc.ir.types import INTERP, REF_FULL, Ref, parse_ref

Lookup = Callable[[Ref], Any]
MISSING = (None, "", "null")  # how Argo and KFP hand over the output of an instance that failed


class ResolveError(Exception):
    """A reference or expression that cannot be given a value at run time."""


def to_text(value: Any) -> str:
    """Strings as they are, anything else as compact JSON: the form Argo substitutes for a parameter."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def interpolate(text: str, lookup: Lookup) -> str:
    def replace(match: Any) -> str:
        return to_text(lookup(parse_ref(match.group(1))))

    return INTERP.sub(replace, text).replace("$${", "${")


def resolve(value: Any, lookup: Lookup) -> Any:
    """A JSON dump with whole-string refs replaced by their values and `${...}` inside strings filled."""
    if isinstance(value, str):
        match = REF_FULL.match(value)
        if match:
            return lookup(parse_ref(match.group(1)))
        return interpolate(value, lookup) if "${" in value else value
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def dig(value: Any, fields: tuple[str, ...] | list[str], what: str) -> Any:
    """`value.a.b` for nested dicts (param outputs are JSON)."""
    for field in fields:
        if isinstance(value, dict) and field in value:
            value = value[field]
        else:
            raise ResolveError(f"`{what}` has no field `{field}`")
    return value


def apply_min_success(attrs: dict[str, Any], gates: dict[str, int]) -> dict[str, Any]:
    """Fan-ins over a step with `min_success` (`gates`: attribute path -> N): drop the values of failed
    instances and fail when fewer than N are left, exactly as the local executor counts them."""
    attrs = dict(attrs)
    for path, need in gates.items():
        *parents, last = path.split(".")
        holder: Any = attrs
        for part in parents:  # copy along the path: the caller's value stays as it was
            child = holder.get(part) if isinstance(holder, dict) else None
            holder[part] = child = dict(child) if isinstance(child, dict) else child
            holder = child
        values = holder.get(last) if isinstance(holder, dict) else None
        if not isinstance(values, list):
            continue
        present = [v for v in values if v not in MISSING]
        if len(present) < need:
            raise ResolveError(f"only {len(present)} of {len(values)} instances feeding `{path}` succeeded; "
                               f"min_success = {need}")  # fmt: skip
        holder[last] = present
    return attrs
