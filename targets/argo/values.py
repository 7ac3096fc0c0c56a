"""Argo target, stage 4 (emit): references -> Argo placeholders and expressions.

Takes a `Plan` and a step; gives the runtime SPEC as JSON text with `{{...}}` placeholders where values
are only known at run time, command-line arguments of `task` steps, the expression of a `when`, the
memoization key, and the DAG-level value that feeds each template input.

Value formats: a param output file holds JSON text (inserted raw into the spec), an artifact is a path
on the volume (inserted as a JSON string), pipeline params are workflow parameters holding plain text for
string params and JSON otherwise, a `for_each` item arrives as `{{item}}`.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from dmlc.ir.graph import when_refs
from dmlc.ir.model import Train
from dmlc.ir.types import INTERP, Ref, as_ref, parse_ref
from dmlc.memo import spec_digest

from .plan import Input, Plan

_MARK = "\x00{}\x00"
_MARK_RE = re.compile(r'"\\u0000(\d+)\\u0000"')
_SAFE_JSON_TEXT = re.compile(r'^[^"\\\x00-\x1f]*$')


class Unsupported(ValueError):
    """A reference Argo cannot express exactly; the checker reports it as DML100."""


# -- pipeline params and items ---------------------------------------------------------------------
def param_text(value: Any) -> str:
    """Workflow parameter value: plain text for strings, JSON for anything else."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _param_json(plan: Plan, name: str) -> str:
    if isinstance(plan.pipeline.params.get(name), str):
        return f"{{{{=toJson(workflow.parameters['{name}'])}}}}"
    return f"{{{{workflow.parameters.{name}}}}}"


def item_json(plan: Plan, step: str, fields: tuple[str, ...] = ()) -> str:
    items = plan.steps[step].for_each
    if fields:
        path = "$." + ".".join(fields)
        return f"{{{{=toJson(jsonpath(inputs.parameters.item, '{path}'))}}}}"
    if isinstance(items, list) and items and not all(isinstance(i, str) for i in items):
        return "{{inputs.parameters.item}}"  # Argo substitutes numbers, booleans and maps as JSON
    return "{{=toJson(inputs.parameters.item)}}"


# -- the runtime spec ------------------------------------------------------------------------------
def _value_json(plan: Plan, step: str, ref: Ref) -> str:
    """Raw JSON text standing for a whole-value reference inside the template of `step`."""
    if ref.root == "params":
        return _param_json(plan, ref.fields[0])
    if ref.root == "each":
        return item_json(plan, step, ref.fields)
    if ref.index not in (None, "*"):
        raise Unsupported(f"`{ref}` picks one instance")
    inp = Input(ref.root, ref.output or "", plan.star(step, ref))
    placeholder = f"{{{{inputs.parameters.{inp.param}}}}}"
    if inp.star or plan.output_kind(ref.root, inp.output) == "json":
        return placeholder
    if plan.output_kind(ref.root, inp.output) == "path":
        return f'"{placeholder}"'
    return f"{{{{=toJson(inputs.parameters['{inp.param}'])}}}}"


def _expr_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _interp_expr(plan: Plan, step: str, ref: Ref) -> str:
    """An expr-lang expression giving the text a `${ref}` inside a string stands for."""
    if ref.root == "params":
        return f"workflow.parameters['{ref.fields[0]}']"
    if ref.root == "each":
        if ref.fields:
            return f"string(jsonpath(inputs.parameters['item'], '$.{'.'.join(ref.fields)}'))"
        return "inputs.parameters['item']"
    if ref.index not in (None, "*"):
        raise Unsupported(f"`{ref}` picks one instance")
    inp = Input(ref.root, ref.output or "", plan.star(step, ref))
    return f"inputs.parameters['{inp.param}']"


def interpolate_json(plan: Plan, step: str, text: str) -> str:
    """Raw JSON text of a string with `${...}` inside: one expression, so any value stays valid JSON."""
    parts: list[str] = []
    pos = 0
    for match in INTERP.finditer(text):
        if match.start() > pos:
            parts.append(_expr_string(text[pos : match.start()]))
        parts.append(_interp_expr(plan, step, parse_ref(match.group(1))))
        pos = match.end()
    if pos < len(text):
        parts.append(_expr_string(text[pos:]))
    return "{{=toJson(" + " + ".join(parts) + ")}}"


def _mark(value: Any, plan: Plan, step: str, raws: list[str]) -> Any:
    """Replace references by numbered marks; `raws[i]` is the raw JSON text for mark i."""
    if isinstance(value, dict):
        return {k: _mark(v, plan, step, raws) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v, plan, step, raws) for v in value]
    if isinstance(value, str):
        ref = as_ref(value)
        if ref is not None:
            raws.append(_value_json(plan, step, ref))
        elif INTERP.search(value):
            raws.append(interpolate_json(plan, step, value.replace("$${", "\x01")).replace("\x01", "${"))
        else:
            return value
        return _MARK.format(len(raws) - 1)
    return value


def to_json(value: Any, plan: Plan, step: str) -> str:
    raws: list[str] = []
    marked = _mark(value, plan, step, raws)
    text = json.dumps(marked, sort_keys=True, separators=(",", ":"))
    return _MARK_RE.sub(lambda m: raws[int(m.group(1))], text)


def runtime_spec(plan: Plan, step: str, extra: dict[str, Any] | None = None) -> str:
    """The SPEC of DESIGN §4 for one instance of `step`, as JSON text with Argo placeholders."""
    eff = plan.steps[step]
    attrs = eff.model_dump(mode="json", by_alias=True)
    spec: dict[str, Any] = {
        "pipeline": plan.pipeline.pipeline,
        "step": step,
        "kind": eff.kind,
        "item": "${each}" if eff.for_each is not None else None,
        "index": None,
        "attrs": attrs,
        "outputs_dir": plan.outputs_dir(step),
        "work_dir": plan.work_dir(step),
        "volumes": dict(sorted(plan.mounts.items())),
        "seed": eff.seed if isinstance(eff, Train) else None,
    }
    gates = min_success(plan, step)
    if gates:
        spec["min_success"] = gates
    spec.update(extra or {})
    return to_json(spec, plan, step)


def min_success(plan: Plan, step: str) -> dict[str, int]:
    """attr -> N for fan-ins over a step with `min_success` (the runtime fails below N values)."""
    gates: dict[str, int] = {}
    for path, ref in plan.refs_of[step]:
        up = plan.steps.get(ref.root)
        if up is not None and up.min_success and plan.star(step, ref) and path[:1] != ("when",):
            gates[str(path[0])] = up.min_success
    return gates


# -- task command lines ----------------------------------------------------------------------------
def arg_text(plan: Plan, step: str, value: Any) -> str:
    """A `task` argument as text: `${x.out}` -> the value's text (paths, JSON for params and lists)."""
    if not isinstance(value, str):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def sub(match: re.Match[str]) -> str:
        ref = parse_ref(match.group(1))
        if ref.root == "params":
            return f"{{{{workflow.parameters.{ref.fields[0]}}}}}"
        if ref.root == "each":
            return "{{inputs.parameters.item}}" if not ref.fields else "{{=" + _interp_expr(plan, step, ref) + "}}"
        if ref.index not in (None, "*"):
            raise Unsupported(f"`{ref}` picks one instance")
        return f"{{{{inputs.parameters.{Input(ref.root, ref.output or '', plan.star(step, ref)).param}}}}}"

    return INTERP.sub(sub, value).replace("$${", "${")


# -- DAG-level values ------------------------------------------------------------------------------
def feed(plan: Plan, consumer: str, inp: Input) -> str:
    """The value a DAG task passes to template input `inp` of `consumer`, in the consumer's scope."""
    return "{{" + feed_var(plan, plan.scope(consumer), inp, dotted=True) + "}}"


def feed_var(plan: Plan, scope: str | None, inp: Input, dotted: bool = False) -> str:
    """Argo variable for `inp` seen from a DAG `scope` (None = the main DAG, else a loop body)."""
    up_scope = plan.scope(inp.root)
    if up_scope == scope:
        task, param = plan.name(inp.root), inp.output
    elif up_scope is not None and scope is None:
        task, param = plan.name(up_scope), f"{inp.root}-{inp.output}"
    else:
        return f"inputs.parameters.{inp.param}" if dotted else f"inputs.parameters['{inp.param}']"
    if dotted:
        return f"tasks.{task}.outputs.parameters.{param}"
    return f"tasks['{task}'].outputs.parameters['{param}']"


# -- when ------------------------------------------------------------------------------------------
_OPS = {ast.And: "&&", ast.Or: "||"}


def when_expr(plan: Plan, step: str) -> str:
    """`best.accuracy >= 0.8` -> `{{=jsonpath(tasks['best'].outputs.parameters['metrics'], '$.accuracy') >= 0.8}}`."""
    expr = plan.pipeline.steps[step].when or ""
    tree = ast.parse(expr.strip(), mode="eval")
    return "{{=" + _when_node(plan, step, tree.body) + "}}"


def when_inputs(plan: Plan, step: str) -> list[Input]:
    """Step outputs a `when` reads (a loop body must receive those from outside as inputs)."""
    out: list[Input] = []
    if not plan.pipeline.steps[step].when:
        return out
    for ref in when_refs(plan.pipeline.steps[step].when or ""):
        if ref.is_step:
            output = _when_output(plan, ref)[0]
            out.append(Input(ref.root, output, plan.star(step, ref)))
    return out


def _when_output(plan: Plan, ref: Ref) -> tuple[str, tuple[str, ...]]:
    outputs = plan.steps[ref.root].outputs()
    if ref.output in outputs:
        return ref.output, ref.fields[1:]
    return "metrics", ref.fields  # `best.accuracy` reads the metrics of `best`


def _when_ref(plan: Plan, step: str, ref: Ref) -> str:
    if ref.root == "params":
        base, fields = f"workflow.parameters['{ref.fields[0]}']", ref.fields[1:]
        if not isinstance(plan.pipeline.params.get(ref.fields[0]), str):
            return f"jsonpath({base}, '{_jpath(fields)}')"
        if fields:
            raise Unsupported(f"`{ref}` reads a field of a string parameter")
        return base
    if not ref.is_step:
        raise Unsupported("`each` inside `when`")
    if ref.index not in (None, "*"):
        raise Unsupported(f"`{ref}` picks one instance")
    output, fields = _when_output(plan, ref)
    inp = Input(ref.root, output, plan.star(step, ref))
    var = feed_var(plan, plan.scope(step), inp)
    if plan.output_kind(ref.root, output) != "json" and not inp.star:
        if fields:
            raise Unsupported(f"`{ref}` reads a field of a path")
        return var
    return f"jsonpath({var}, '{_jpath(fields)}')"


def _jpath(fields: tuple[str, ...]) -> str:
    return "$" + "".join(f".{f}" for f in fields)


def _when_node(plan: Plan, step: str, node: ast.AST) -> str:
    if isinstance(node, ast.BoolOp):
        return "(" + f" {_OPS[type(node.op)]} ".join(_when_node(plan, step, v) for v in node.values) + ")"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return f"!({_when_node(plan, step, node.operand)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"-{_when_node(plan, step, node.operand)}"
    if isinstance(node, ast.Compare):
        parts = [_when_node(plan, step, node.left)]
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts += [_cmp(op), _when_node(plan, step, right)]
        if len(node.ops) > 1:
            raise Unsupported("chained comparisons")
        return "(" + " ".join(parts) + ")"
    if isinstance(node, ast.Constant):
        return _constant(node.value)
    if isinstance(node, (ast.Attribute, ast.Name)):
        return _when_ref(plan, step, parse_ref(ast.unparse(node)))
    raise Unsupported(f"`{ast.unparse(node)}` in `when`")


def _cmp(op: ast.cmpop) -> str:
    table = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in"}
    if type(op) not in table:
        raise Unsupported(f"operator `{type(op).__name__}` in `when`")
    return table[type(op)]


def _constant(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _expr_string(value)
    return repr(value)


# -- memoization -----------------------------------------------------------------------------------
def memo_key(plan: Plan, step: str) -> str:
    """`dmlc-<step>-<spec digest>` + a digest of what is only known at run time (inputs, item, params)."""
    eff = plan.steps[step]
    static = f"dmlc-{plan.name(step)}-{spec_digest(plan.pipeline, step)[:16]}"
    parts = [f"inputs.parameters['{inp.param}']" for inp in plan.inputs(step)]
    if eff.for_each is not None:
        parts.append("inputs.parameters['item']")
    params = sorted({ref.fields[0] for _, ref in _all_refs(plan, step) if ref.root == "params"})
    parts += [f"workflow.parameters['{p}']" for p in params]
    if eff.memoize is not None and eff.memoize.key:
        parts.append(_expr_string(eff.memoize.key) if not INTERP.search(eff.memoize.key) else _user_key(plan, step))
    if not parts:
        return static
    joined = " + '|' + ".join(parts)
    return f"{static}-{{{{=sprig.trunc(16, sprig.sha256sum({joined}))}}}}"


def _user_key(plan: Plan, step: str) -> str:
    key = plan.steps[step].memoize.key  # type: ignore[union-attr]
    return interpolate_json(plan, step, key or "")[3:-2]  # the expression inside `{{=` ... `}}`


def _all_refs(plan: Plan, step: str) -> list[tuple[Any, Ref]]:
    return plan.refs_of[step]


def json_safe(text: str) -> bool:
    return bool(_SAFE_JSON_TEXT.match(text))
