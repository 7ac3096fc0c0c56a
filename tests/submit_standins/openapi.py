"""Checks HTTP requests and answers against a published Swagger 2.0 (OpenAPI v2) API definition.

Takes a spec file (specs/*.json) and gives `Api.request(method, path, query, body)` -> the operation
and its path parameters, or the list of problems: an undeclared path or method, a query parameter the
operation does not declare or of the wrong type, a missing required one, a body that fails the
operation's body schema. `Api.answer(...)` checks what a stand-in sends back against the response
schema, so the stand-ins cannot drift from the API either. Bodies are checked with jsonschema
(draft 4, which Swagger 2.0 schemas are) and strictly: an object schema that lists properties
rejects unknown ones (`argo submit` and the KFP API server's protobuf JSON decoder both refuse
unknown fields). Leniencies, as validate_argo.py in ../shared/schemas has them, because the Go
decoders accept more than the published schema says: IntOrString also takes integers, Quantity
numbers, Argo Parameter value/default/enum numbers and booleans (Argo's AnyString).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SPECS = Path(__file__).with_name("specs")
LENIENT = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ["integer", "string"],
    "io.k8s.apimachinery.pkg.api.resource.Quantity": ["string", "number"],
}
ARGO_PARAMETER = "io.argoproj.workflow.v1alpha1.Parameter"


def _make_strict(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _make_strict(value)
    elif isinstance(node, list):
        for value in node:
            _make_strict(value)


def _lenient(defs: dict[str, Any]) -> None:
    for name, types in LENIENT.items():
        if name in defs:
            defs[name]["type"] = types
    if ARGO_PARAMETER in defs:
        props = defs[ARGO_PARAMETER]["properties"]
        for key in ("value", "default"):
            props[key]["type"] = ["string", "number", "boolean"]
        props["enum"]["items"]["type"] = ["string", "number", "boolean"]


@dataclass
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    regex: re.Pattern[str]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


class Api:
    """One or more Swagger 2.0 files served together (KFP's API comes as one file per service)."""

    def __init__(self, *files: str) -> None:
        self.definitions: dict[str, Any] = {}
        self.operations: list[Operation] = []
        for name in files:
            spec = json.loads((SPECS / name).read_text(encoding="utf-8"))
            self.definitions.update(copy.deepcopy(spec.get("definitions", {})))
            for template, item in spec["paths"].items():
                shared = item.get("parameters", [])
                for method, op in item.items():
                    if method == "parameters":
                        continue
                    params = {p["name"]: p for p in [*shared, *op.get("parameters", [])]}
                    self.operations.append(Operation(method.upper(), template, op, _regex(template), params))
        _lenient(self.definitions)
        _make_strict(self.definitions)

    def _validator(self, schema: dict[str, Any]) -> Draft4Validator:
        return Draft4Validator({**copy.deepcopy(schema), "definitions": self.definitions})

    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str]]:
        for op in self.operations:
            found = op.regex.fullmatch(path)
            if found and op.method == method:
                return op, found.groupdict()
        return None, {}

    def request(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes | None
    ) -> tuple[Operation | None, dict[str, str], list[str]]:
        """The operation, its path parameters, and every way the request departs from the definition."""
        op, path_params = self.match(method, path)
        if op is None:
            return None, {}, [f"{method} {path}: no such operation in the API definition"]
        problems = [f"{op.template}: path parameter `{k}` is empty" for k, v in path_params.items() if not v]
        problems += self._query_problems(op, query)
        problems += self._body_problems(op, body)
        return op, path_params, problems

    def _query_problems(self, op: Operation, query: dict[str, list[str]]) -> list[str]:
        out = []
        for name, values in query.items():
            param = op.params.get(name)
            if param is None or param.get("in") != "query":
                out.append(f"{op.template}: query parameter `{name}` is not declared")
                continue
            out += [f"{op.template}: `{name}={v}` is not {param.get('type')}" for v in values if not _scalar(param, v)]
        for name, param in op.params.items():
            if param.get("in") == "query" and param.get("required") and name not in query:
                out.append(f"{op.template}: required query parameter `{name}` missing")
        return out

    def _body_problems(self, op: Operation, body: bytes | None) -> list[str]:
        schema = next((p["schema"] for p in op.params.values() if p.get("in") == "body"), None)
        if schema is None:
            return [f"{op.template}: a body where the operation takes none"] if body else []
        if not body:
            return [f"{op.template}: the operation's body is required"]
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return [f"{op.template}: the body is not JSON ({exc})"]
        return [_where(e) for e in self._validator(schema).iter_errors(doc)]

    def answer(self, op: Operation, status: int, doc: Any) -> list[str]:
        """Problems of a stand-in's own answer against the operation's response schema."""
        responses = op.spec.get("responses", {})
        resp = responses.get(str(status)) or responses.get("default")
        if resp is None:
            return [f"{op.template}: status {status} is not a declared response"]
        schema = resp.get("schema")
        return [_where(e) for e in self._validator(schema).iter_errors(doc)] if schema else []


def _regex(template: str) -> re.Pattern[str]:
    out, pos = "", 0
    for found in re.finditer(r"\{([^}]+)\}", template):
        out += re.escape(template[pos : found.start()]) + f"(?P<{found.group(1)}>[^/:]*)"
        pos = found.end()
    return re.compile(out + re.escape(template[pos:]))


def _scalar(param: dict[str, Any], value: str) -> bool:
    kind = param.get("type", "string")
    if kind == "boolean":
        return value in ("true", "false")
    if kind == "integer" or param.get("format") in ("int64", "int32", "uint64"):
        return re.fullmatch(r"-?\d+", value) is not None
    if "enum" in param:
        return value in param["enum"]
    return True


def _where(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"body{path}: {error.message[:300]}"
