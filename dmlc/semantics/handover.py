"""Values an engine hands to a step as text, and the lookup that resolves a step spec from them.

Argo passes every value a step reads as a parameter, that is as text. The target writes, per binding
key (`binding_key`: `params.x`, `each`, `step.out`, `step[*].out`), where that text is (an environment
variable of the container) and how to read it: `text` as it is, `json`, or `param` (what a param
output file holds: JSON, or plain text), base64-encoded (`b64`) where it had to cross a Kubernetes
manifest. `lookup` answers the core's resolver from them, so `instantiate` resolves the spec inside
the pod exactly as the local executor resolves it on this machine.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from dmlc.ir.types import Ref
from dmlc.semantics.outputs import param_value
from dmlc.semantics.values import Lookup, ResolveError, dig


def binding_key(ref: Ref) -> str:
    """The value a reference reads, whatever fields it digs out of it."""
    if ref.root == "params":
        return f"params.{ref.fields[0]}"
    if ref.root == "each":
        return "each"
    return f"{ref.root}{'' if ref.index is None else '[*]'}.{ref.fields[0]}"


def _fields(ref: Ref) -> tuple[str, ...]:
    return ref.fields if ref.root == "each" else ref.fields[1:]


def decode(kind: str, text: str) -> Any:
    if kind == "json":
        return json.loads(text)
    if kind == "param":
        return param_value(text)
    return text


def lookup(bindings: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]) -> Lookup:
    """`lookup(Ref)` over values the engine put in `environ` as `bindings` say."""

    def find(ref: Ref) -> Any:
        binding = bindings.get(binding_key(ref))
        if binding is None or binding["env"] not in environ:
            raise ResolveError(f"`{ref.text}` was not handed to this step")
        text = environ[binding["env"]]
        if binding.get("b64"):
            text = base64.b64decode(text).decode("utf-8")
        value = decode(binding["kind"], text)
        if isinstance(ref.index, int):
            value = value[ref.index]
        return dig(value, _fields(ref), ref.text)

    return find
