"""Argo's `{{...}}` substitution on the JSON form of a template (argo-workflows v4.1.2).

- Tags: fasttemplate with `{{` / `}}` over the whole JSON text; a `{{` with no `}}` after it is an
  error (`util/template/template.go` NewTemplate).
- Simple tags (`util/template/simple_template.go` simpleReplaceStrict): the trimmed tag is looked up;
  its value is written `strconv.Quote`-escaped without the quotes; a nil value (an absent optional: a
  skipped node's output with no default) is an error; an unknown tag is written back as it was, unless
  it matches the strict prefixes (`tasks`, `steps` in DAG reference resolution; every tag in withItems
  expansion), which is the "missing variable" error the controller requeues on.
- Expression tags `{{=...}}` (`util/template/expression_template.go`): the expression is `jsonutil.Fix`ed
  and JSON-unescaped, its identifiers checked against the environment, then evaluated; a JSON string
  result is written without its quotes, anything else as its `strconv.Quote`d JSON text; when
  unresolved tags are allowed, a missing variable, a failed evaluation or a nil result leaves the tag
  as written.
- `replace` = `util/template/replace.go` Replace / ReplaceStrictAny (the text must stay valid JSON);
  `substitute_params` = `workflow/common/util.go` SubstituteParams (globals and locals first, then
  `inputs.*`); `process_args` = ProcessArgs (defaults, arguments, the absent-optional sentinel).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.expr import ExprError, identifiers, parse
from tests.argo_replay.exprenv import func_map, has_var
from tests.argo_replay.exprrun import evaluate

ABSENT = "__argo-internal.absent-optional-output__"  # common.AbsentOptionalArgumentValue
LATE_BINDING = ("item", "retries", "lastRetry.exitCode", "lastRetry.status", "lastRetry.duration")
LATE_BINDING += ("lastRetry.message", "workflow.status", "workflow.failures")
MATCH_ALL = re.compile(".*")


class ReplaceError(Exception):
    """A substitution error; `missing` is Argo's IsMissingVariableErr (the controller requeues)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def strict_regex(prefixes: list[str]) -> re.Pattern[str] | None:
    return re.compile(r"^((" + "|".join(map(re.escape, prefixes)) + r"))(\.|$)") if prefixes else None


def tags(text: str) -> list[tuple[int, int, str]]:
    """(start, end, tag) of every `{{tag}}`, as fasttemplate splits the text."""
    out, pos = [], 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            raise ReplaceError(
                f'Cannot find end tag="}}}}" in the template={text!r} starting from {text[start + 2 :]!r}'
            )
        out.append((start, end + 2, text[start + 2 : end]))
        pos = end + 2
    return out


def _simple(tag: str, values: dict[str, Any], strict: re.Pattern[str] | None, allow_artifacts: bool) -> str:
    key = tag.strip()
    if key not in values:
        index = tag.rfind("{{")
        if index > 0 and tag[index + 2 :] in values:
            nested = values[tag[index + 2 :]]
            if nested is None:
                raise ReplaceError(
                    f"unable to substitute nested tag {{{{{tag}}}}}: "
                    f"{json.dumps(tag[index + 2 :])} is an absent optional"
                )
            if isinstance(nested, str):
                return "{{" + tag[:index] + gojson.quote(nested)
        if strict and strict.search(key) and not (allow_artifacts and ".outputs.artifacts." in key):
            raise ReplaceError(f"failed to resolve {{{{{tag}}}}}", missing=True)
        return "{{" + tag + "}}"
    value = values[key]
    if value is None:
        raise ReplaceError(
            f"unable to substitute {{{{{tag}}}}}: output is an absent optional (skipped/omitted node with no default)"
        )
    if not isinstance(value, str):
        raise ReplaceError(f"failed to resolve {{{{{tag}}}}} to string")
    return gojson.quote(value)


def _unescape(expression: str) -> str:
    return json.loads('"' + expression + '"')


def _core(expression: str, env: dict[str, Any], allow: bool) -> str:
    original = "{{=" + expression + "}}"
    try:
        text = _unescape(expression)
    except json.JSONDecodeError as err:
        if allow:
            return original
        raise ReplaceError(f"failed to unmarshall JSON expression: {err}") from None
    try:
        names = identifiers(text)
    except ExprError:
        names = []
    if allow and any(n in LATE_BINDING and not has_var(env, n) for n in names):
        return original
    try:
        result = evaluate(parse(text), env)
    except ExprError as err:
        if allow:
            return original
        raise ReplaceError(f"failed to evaluate expression: {err}") from None
    if result is None:
        if allow:
            return original
        raise ReplaceError(f"failed to evaluate expression {json.dumps(expression)}")
    try:
        marshaled = gojson.marshal(result)
    except (TypeError, ValueError) as err:
        if allow:
            return original
        raise ReplaceError(f"failed to marshal evaluated expression: {err}") from None
    if len(marshaled) > 1 and marshaled[0] == '"' and marshaled[-1] == '"':
        return marshaled[1:-1]
    return gojson.quote(marshaled)


def _expression(expression: str, env: dict[str, Any], strict: re.Pattern[str] | None) -> str:
    try:
        missing = [n for n in identifiers(_unescape(expression)) if not has_var(env, n)]
    except (json.JSONDecodeError, ExprError):
        return _core(expression, env, False)
    for name in missing:
        if strict and strict.search(name):
            raise ReplaceError(f"failed to evaluate expression: {name} is missing", missing=True)
    return _core(expression, env, bool(missing) or strict is None)


def replace_text(text: str, values: dict[str, Any], strict: re.Pattern[str] | None, allow_artifacts: bool) -> str:
    found = tags(text)
    env = func_map(values) if any(t.startswith("=") for _, _, t in found) else {}
    out, pos = [], 0
    for start, end, tag in found:
        out.append(text[pos:start])
        if tag.startswith("="):
            out.append(_expression(_fix(tag[1:]), env, strict))
        else:
            out.append(_simple(tag, values, strict, allow_artifacts))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _fix(s: str) -> str:
    return s.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


def _checked(text: str, values: dict[str, Any], strict: re.Pattern[str] | None, allow_artifacts: bool) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        raise ReplaceError("cannot do template replacements with invalid JSON") from None
    out = replace_text(text, values, strict, allow_artifacts)
    try:
        json.loads(out)
    except json.JSONDecodeError:
        raise ReplaceError("cannot finish template replacement because the result was invalid JSON") from None
    return out


def replace(text: str, values: dict[str, Any], allow_unresolved: bool = True) -> str:
    """util/template Replace on JSON text."""
    return _checked(text, values, None if allow_unresolved else MATCH_ALL, allow_unresolved)


def replace_strict(text: str, values: dict[str, Any], prefixes: list[str]) -> str:
    """util/template ReplaceStrictAny on JSON text."""
    return _checked(text, values, strict_regex(prefixes), True)


def substitute_value(value: Any, values: dict[str, Any], allow_unresolved: bool = True) -> Any:
    """Marshal, replace and unmarshal a JSON-like value."""
    return json.loads(replace(gojson.marshal_ordered(value), values, allow_unresolved))


def _param_json(params: list[dict[str, Any]]) -> str:
    fields = ("name", "default", "value", "valueFrom", "globalName", "enum", "description")
    ordered = []
    for p in params:
        item = {f: p[f] for f in fields if p.get(f) is not None}
        for f in ("default", "value", "description"):
            if f in item:
                item[f] = gojson.any_string(item[f])
        ordered.append(item)
    return gojson.marshal_ordered(ordered)


def substitute_params(tmpl: dict[str, Any], globals_: dict[str, str], locals_: dict[str, str]) -> dict[str, Any]:
    """SubstituteParams: the template with global, local and input parameters substituted."""
    values: dict[str, Any] = {**globals_, **locals_}
    first = replace(gojson.marshal_ordered(tmpl), values, True)
    done = json.loads(first)
    inputs, outputs = done.get("inputs") or {}, done.get("outputs") or {}
    for p in inputs.get("parameters") or []:
        if p.get("value") is None and p.get("valueFrom") is None:
            raise ReplaceError(f"inputs.parameters.{p['name']} had no value")
        if p.get("value") is not None:
            values[f"inputs.parameters.{p['name']}"] = gojson.any_string(p["value"])
    values["inputs.parameters"] = _param_json(inputs.get("parameters") or [])
    for a in inputs.get("artifacts") or []:
        if a.get("path"):
            values[f"inputs.artifacts.{a['name']}.path"] = a["path"]
    for a in outputs.get("artifacts") or []:
        if a.get("path"):
            values[f"outputs.artifacts.{a['name']}.path"] = a["path"]
    for p in outputs.get("parameters") or []:
        if (p.get("valueFrom") or {}).get("path"):
            values[f"outputs.parameters.{p['name']}.path"] = p["valueFrom"]["path"]
    return json.loads(replace(first, values, True))


def process_args(
    tmpl: dict[str, Any], args: dict[str, Any], globals_: dict[str, str], locals_: dict[str, str]
) -> dict[str, Any]:
    """ProcessArgs: inputs from defaults and arguments, then SubstituteParams."""
    new = copy.deepcopy(tmpl)
    given = {p["name"]: p for p in (args or {}).get("parameters") or []}
    for p in (new.get("inputs") or {}).get("parameters") or []:
        if p.get("value") is None and p.get("default") is not None:
            p["value"] = p["default"]
        arg = given.get(p["name"])
        if arg is not None and arg.get("value") == ABSENT:
            if p.get("value") is None and p.get("valueFrom") is None:
                raise ReplaceError(
                    f"inputs.parameters.{p['name']}: argument references an absent optional "
                    "(skipped/omitted node output with no default)"
                )
        elif arg is not None:
            if arg.get("value") is not None:
                p["value"], p["valueFrom"] = gojson.any_string(arg["value"]), None
            else:
                p["valueFrom"], p["value"] = arg.get("valueFrom"), None
        if (p.get("valueFrom") or {}).get("configMapKeyRef"):
            raise ReplaceError(f"inputs.parameters.{p['name']}: valueFrom.configMapKeyRef is not replayed")
        if p.get("value") is None:
            raise ReplaceError(f"inputs.parameters.{p['name']} was not supplied")
        for key in [k for k, v in p.items() if v is None]:
            del p[key]
    given_arts = {a["name"]: a for a in (args or {}).get("artifacts") or []}
    for a in (new.get("inputs") or {}).get("artifacts") or []:
        if not a.get("optional") and a["name"] not in given_arts and not set(a) - {"name", "path", "mode", "optional"}:
            raise ReplaceError(f"inputs.artifacts.{a['name']} was not supplied")
    return substitute_params(new, globals_, locals_)
