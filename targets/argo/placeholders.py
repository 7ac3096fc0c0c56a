"""Argo target, stage 4 (emit): references -> Argo placeholders and expressions.

Takes a `Plan` and a step; gives the step spec (`dmlc.semantics.spec.template`, the same every target
serializes) as JSON text with `{{...}}` placeholders where values are only known at run time, the text
of `command` / `args` / `env` values with references in them, the expression of a parsed `when`, the
memoization key, and the DAG-level value that feeds each template input.

Value formats: a param output file holds JSON text (inserted raw into the spec), an artifact is a path
on the volume (inserted as a JSON string), pipeline params are workflow parameters holding plain text for
string params and JSON otherwise, a `for_each` item arrives as `{{item}}`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dmlc_targets.argo.plan import Input, Plan

from dmlc.ir import when as w
from dmlc.ir.types import INTERP, Ref, as_ref, parse_ref
from dmlc.memo import spec_digest
from dmlc.semantics import spec as contract

_MARK = "\x00{}\x00"
_MARK_RE = re.compile(r'"\\u0000(\d+)\\u0000"')


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
            return value.replace("$${", "${")  # an escaped `$${` is a literal `${`, as the core resolves it
        return _MARK.format(len(raws) - 1)
    return value


def to_json(value: Any, plan: Plan, step: str) -> str:
    raws: list[str] = []
    marked = _mark(value, plan, step, raws)
    text = json.dumps(marked, sort_keys=True, separators=(",", ":"))
    return _MARK_RE.sub(lambda m: raws[int(m.group(1))], text)


def runtime_spec(plan: Plan, step: str) -> str:
    """The step spec of one instance of `step`, as JSON text with Argo placeholders."""
    spec = contract.dump(contract.template(plan.pipeline, step))
    spec.update(outputs_dir=plan.outputs_dir(step), work_dir=plan.work_dir(step))
    return to_json(spec, plan, step)


# -- task command lines ----------------------------------------------------------------------------
def arg_text(plan: Plan, step: str, value: Any) -> str:
    """A `command` / `args` / `env` value as text: `${x.out}` -> the value's text, as the core's `to_text`
    gives it (strings as they are, paths, compact JSON for everything else)."""
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
_OPS = {"and": "&&", "or": "||"}


def when_expr(plan: Plan, step: str) -> str:
    """`best.metrics.accuracy >= 0.8` ->
    `{{=jsonpath(tasks['best'].outputs.parameters['metrics'], '$.accuracy') >= 0.8}}`."""
    condition = plan.pipeline.steps[step].when
    assert condition is not None
    return "{{=" + _when_node(plan, step, condition.tree) + "}}"


def when_inputs(plan: Plan, step: str) -> list[Input]:
    """Step outputs a `when` reads (a loop body must receive those from outside as inputs)."""
    condition = plan.pipeline.steps[step].when
    if condition is None:
        return []
    return [Input(r.root, r.output or "", plan.star(step, r)) for r in condition.refs() if r.is_step]


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
    output, fields = ref.output or "", ref.fields[1:]
    inp = Input(ref.root, output, plan.star(step, ref))
    var = feed_var(plan, plan.scope(step), inp)
    if plan.output_kind(ref.root, output) != "json" and not inp.star:
        if fields:
            raise Unsupported(f"`{ref}` reads a field of a path")
        return var
    return f"jsonpath({var}, '{_jpath(fields)}')"


def _jpath(fields: tuple[str, ...]) -> str:
    return "$" + "".join(f".{f}" for f in fields)


def _when_node(plan: Plan, step: str, node: w.Node) -> str:
    if isinstance(node, w.Bool):
        return "(" + f" {_OPS[node.op]} ".join(_when_node(plan, step, v) for v in node.values) + ")"
    if isinstance(node, w.Not):
        return f"!({_when_node(plan, step, node.operand)})"
    if isinstance(node, w.Neg):
        return f"-{_when_node(plan, step, node.operand)}"
    if isinstance(node, w.Compare):
        if len(node.ops) > 1:
            raise Unsupported("chained comparisons")
        return f"({_when_node(plan, step, node.left)} {_cmp(node.ops[0])} {_when_node(plan, step, node.rights[0])})"
    if isinstance(node, w.Lit):
        return _constant(node.value)
    if isinstance(node, w.Var):
        return _when_ref(plan, step, node.ref)
    raise Unsupported(f"`{w.render(node)}` in `when`")


def _cmp(op: str) -> str:
    if op == "not in":
        raise Unsupported("operator `not in` in `when`")
    return op


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
