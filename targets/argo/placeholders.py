"""Argo target, stage 4 (emit): references -> Argo placeholders and expressions; user text kept literal.

Takes a `Plan` and a step; gives the step spec (`dmlc.semantics.spec.template`, exactly what every
target embeds) as JSON text plus the *handover* of the values its references read: one environment
variable per value, set to the base64 of an Argo parameter (`{{=sprig.b64enc(inputs.parameters['x'])}}`),
which the runtime reads back (`dmlc.semantics.handover`) and resolves the spec with, as every other
target does. Base64, because Argo scans a template again after inserting values (a value holding `{{`
would be evaluated) and because inside a Kubernetes manifest a quote or a newline breaks its YAML. Also
the text of `command` / `args` / `env` values with references in them, the expression of a parsed
`when`, the memoization key, and the DAG-level value that feeds each template input.

Argo evaluates `{{...}}` anywhere in a template, and more than once (argo-workflows v4.1.2
workflow/common/util.go SubstituteParams: once with the globals, then again with the inputs added;
a template with a retryStrategy gets both passes again per attempt, operator.go executeTemplate): an
expression whose identifiers are all known is evaluated in the first pass that knows them, and its
result is scanned by every later pass (`Plan.passes` counts them). So:
- user text goes through `literal`: `{{` becomes `escaped_braces(n)`, an expression each pass peels
  one layer of, `{{` after the last (`{{=sprig.b64dec('e3s=')}}` is `{{` after one pass);
- every user string inside an expression goes through `_expr_string` (braces as `\u007b` / `\u007d`,
  so no `}}` of the user's closes dmlc's expression);
- values never reach a template as text Argo scans again: a step's output (and a loop item) is
  handed to a task base64 (`feed_value`: `{{=sprig.b64enc(tasks['a'].outputs.parameters['out'])}}`,
  evaluated once, at the DAG level), and decoded by `deferred`, an expression whose value after the
  remaining passes is the value's text.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from dmlc_targets.argo.plan import Input, Plan

from dmlc.ir import when as w
from dmlc.ir.types import INTERP, Ref, parse_ref
from dmlc.memo import spec_digest
from dmlc.semantics import spec as contract
from dmlc.semantics.handover import binding_key


@lru_cache(maxsize=4096)
def _text(text: str) -> str:
    """An expr-lang expression giving `text`, written with no brace, backslash or double quote (so it
    reads the same at every JSON level: a template field, the spec JSON inside it, a manifest)."""
    return f"sprig.b64dec('{base64.b64encode(text.encode()).decode()}')"


@lru_cache(maxsize=256)
def escaped_braces(passes: int, text: str = "{{") -> str:
    """Text that is `text` (`{{`) after `passes` substitution passes (each evaluates one layer)."""
    for _ in range(passes):
        text = "{{=" + _text(text) + "}}"
    return text


def deferred(value: str, passes: int) -> str:
    """A tag whose text after `passes` more passes (after the one evaluating it) is the text of the
    expression `value`: each pass decodes one layer `{{=sprig.b64dec('...')}}` of it."""
    head, tail = _text("{{=sprig.b64dec('"), _text("')}}")
    for _ in range(passes):
        value = f"{head} + sprig.b64enc({value}) + {tail}"
    return "{{=" + value + "}}"


class Unsupported(ValueError):
    """A reference Argo cannot express exactly; the checker reports it as DML100."""


def literal(text: str, passes: int = 2) -> str:
    """User text as Argo must be given it to pass it on unchanged through `passes` passes."""
    return text.replace("{{", escaped_braces(passes)) if "{{" in text else text


def _literal_all(value: Any, passes: int) -> Any:
    if isinstance(value, dict):
        return {literal(k, passes): _literal_all(v, passes) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_all(v, passes) for v in value]
    return literal(value, passes) if isinstance(value, str) else value


# -- pipeline params ---------------------------------------------------------------------------------
def param_text(value: Any) -> str:
    """Workflow parameter value: plain text for strings, JSON for anything else."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- the step spec and the handover of its values ---------------------------------------------------
def _source(plan: Plan, step: str, ref: Ref) -> tuple[str, str]:
    """The base64 of the value `ref` reads, as an Argo placeholder, and how to read its text (handover
    kinds). A template input from another step is base64 already (`feed_value`)."""
    if ref.root == "params":
        kind = "text" if isinstance(plan.pipeline.params.get(ref.fields[0]), str) else "json"
        return f"{{{{=sprig.b64enc(workflow.parameters['{ref.fields[0]}'])}}}}", kind
    if ref.root == "pipeline":
        return f"{{{{=sprig.b64enc({run_status(ref)})}}}}", "text"
    if ref.root == "each":
        items = plan.steps[step].for_each
        item = "{{inputs.parameters.item}}" if plan.item_b64(step) else "{{=sprig.b64enc(inputs.parameters['item'])}}"
        if not isinstance(items, list):
            return item, "param"  # an output's list: Argo gives strings as they are
        return item, "text" if all(isinstance(i, str) for i in items) else "json"
    if ref.index not in (None, "*"):
        raise Unsupported(f"`{ref}` picks one instance")
    inp = Input(ref.root, ref.output or "", plan.star(step, ref))
    kind = "json" if inp.star else ("text" if plan.output_kind(ref.root, inp.output) == "path" else "param")
    return f"{{{{inputs.parameters.{inp.param}}}}}", kind


def handover(plan: Plan, step: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Bindings (binding key -> env variable and kind) and the env variables' Argo values (base64)."""
    refs = [ref for path, ref in plan.refs_of[step] if path[:1] not in (("when",), ("for_each",))]
    if plan.fanned(step):
        refs.append(Ref("each"))
    bindings: dict[str, Any] = {}
    env: dict[str, str] = {}
    for ref in refs:
        key = binding_key(ref)
        if key in bindings:
            continue
        value, kind = _source(plan, step, ref)
        name = f"DMLC_REF_{len(bindings)}"
        bindings[key] = {"env": name, "kind": kind, "b64": True}
        env[name] = value
    return bindings, env


def runtime_spec(plan: Plan, step: str) -> str:
    """The step spec of one instance of `step` as JSON text: the template every target embeds, user
    text kept literal, and the instance's folders (which hold Argo's own placeholders)."""
    spec = _literal_all(contract.dump(contract.template(plan.pipeline, step)), plan.passes(step))
    spec.update(outputs_dir=plan.outputs_dir(step), work_dir=plan.work_dir(step))
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


# -- text with references: command, args, env ----------------------------------------------------------
def _expr_string(text: str) -> str:
    """A string literal of expr-lang holding `text` (no brace, quote or control character left raw)."""
    out = []
    for ch in text:
        if ch in "\\'{}" or not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def run_status(ref: Ref) -> str:
    """`${pipeline.status}` in the onExit template: `workflow.status` is Succeeded, Failed or Error there
    (argo-workflows v4.1.2 workflow/controller/operator.go operate); `${pipeline.failures}`: DML100."""
    if ref.fields != ("status",):
        raise Unsupported(f"`{ref}` on Argo")
    return "(workflow.status == 'Succeeded' ? 'succeeded' : 'failed')"


def _interp_expr(plan: Plan, step: str, ref: Ref) -> str:
    """An expr-lang expression giving the text a `${ref}` inside a string stands for."""
    if ref.root == "params":
        return f"workflow.parameters['{ref.fields[0]}']"
    if ref.root == "pipeline":
        return run_status(ref)
    if ref.root == "each":
        if ref.fields:
            return f"string(jsonpath({plan.item_expr(step)}, '$.{'.'.join(ref.fields)}'))"
        return plan.item_expr(step)
    if ref.index not in (None, "*"):
        raise Unsupported(f"`{ref}` picks one instance")
    inp = Input(ref.root, ref.output or "", plan.star(step, ref))
    raw = f"sprig.b64dec(inputs.parameters['{inp.param}'])"
    if inp.star or plan.output_kind(ref.root, inp.output) != "json":
        return raw
    return _param_text(raw)


def _param_text(raw: str) -> str:
    """The text a param output stands for in a string, as the core's `to_text(param_value(...))`: a JSON
    string unquoted, other JSON compact, anything else as written less its trailing newlines (sprig
    fromJson is nil then)."""
    value = f"sprig.fromJson({raw})"
    text = f"sprig.regexReplaceAll({_text(chr(10) + '+$')}, {raw}, '')"
    return f"({value} == nil ? {text} : (type({value}) == 'string' ? {value} : toJson({value})))"


def _param_value(raw: str) -> str:
    """The value of a param output in a `when` (`param_value`): its JSON, or its text when not JSON."""
    text = f"sprig.regexReplaceAll({_text(chr(10) + '+$')}, {raw}, '')"
    return f"(sprig.fromJson({raw}) ?? {text})"


def interpolate_expr(plan: Plan, step: str, text: str) -> str:
    """One expr-lang expression giving the text of a string with `${...}` inside."""
    parts: list[str] = []
    pos = 0
    for match in INTERP.finditer(text):
        if match.start() > pos:
            parts.append(_expr_string(text[pos : match.start()].replace("$${", "${")))
        parts.append(_interp_expr(plan, step, parse_ref(match.group(1))))
        pos = match.end()
    if pos < len(text):
        parts.append(_expr_string(text[pos:].replace("$${", "${")))
    return " + ".join(parts) or "''"


def arg_text(plan: Plan, step: str, value: Any) -> str:
    """A `command` / `args` / `env` value as text: `${x.out}` -> the value's text, as the core's `to_text`
    gives it (strings as they are, paths, compact JSON for everything else); the rest kept literal."""
    if not isinstance(value, str):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    parts: list[str] = []
    pos = 0
    for match in INTERP.finditer(value):
        text = literal(value[pos : match.start()].replace("$${", "${"), plan.passes(step))
        if text.endswith("{"):  # with the placeholder's `{{` it would open a tag of its own
            text = text[:-1] + escaped_braces(plan.passes(step), "{")
        parts.append(text)
        parts.append(_arg_ref(plan, step, parse_ref(match.group(1))))
        pos = match.end()
    parts.append(literal(value[pos:].replace("$${", "${"), plan.passes(step)))
    return "".join(parts)


def _arg_ref(plan: Plan, step: str, ref: Ref) -> str:
    """The text of a value, as it is after the template's last pass: a param is known from the first
    pass, an input (base64) from the second."""
    first = 1 if ref.root in ("params", "pipeline") else 2  # globals are known in the first pass
    return deferred(_interp_expr(plan, step, ref), plan.passes(step) - first)


def item_text(plan: Plan, step: str) -> str:
    """The loop item's text (`DMLC_ITEM`), decoded from its base64 input in the last pass."""
    return deferred(plan.item_expr(step), plan.passes(step) - 2)


# -- DAG-level values ------------------------------------------------------------------------------
def feed_value(plan: Plan, scope: str | None, inp: Input) -> str:
    """The DAG task argument feeding template input `inp`: a step's output base64-encoded (Argo would
    scan its text again in the template), an input of the loop body passed on as it came."""
    var = feed_var(plan, scope, inp)
    if var.startswith("inputs."):
        return "{{" + feed_var(plan, scope, inp, dotted=True) + "}}"
    return f"{{{{=sprig.b64enc({var})}}}}"


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


def when_expr(plan: Plan, step: str, main: bool = False) -> str:
    """`best.metrics.accuracy >= 0.8` ->
    `jsonpath(tasks['best'].outputs.parameters['metrics'], '$.accuracy') >= 0.8` (an expr-lang expression),
    seen from the step's DAG, or from the main DAG (`main`: a loop body's root, whose condition the loop
    task takes)."""
    condition = plan.pipeline.steps[step].when
    assert condition is not None
    return _when_node(plan, step, condition.tree, None if main else plan.scope(step), top=True)


def when_inputs(plan: Plan, step: str) -> list[Input]:
    """Step outputs a `when` reads (a loop body must receive those from outside as inputs)."""
    condition = plan.pipeline.steps[step].when
    if condition is None:
        return []
    return [Input(r.root, r.output or "", plan.star(step, r)) for r in condition.refs() if r.is_step]


def _when_ref(plan: Plan, step: str, ref: Ref, scope: str | None) -> str:
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
    var = feed_var(plan, scope, inp)
    if var.startswith("inputs."):
        var = f"sprig.b64dec({var})"  # a loop body's input: base64 (`feed_value`)
    if plan.output_kind(ref.root, output) != "json" and not inp.star:
        if fields:
            raise Unsupported(f"`{ref}` reads a field of a path")
        return var
    if not fields and not inp.star:
        return _param_value(var)  # a param output may be plain text: jsonpath would fail on it
    return f"jsonpath({var}, '{_jpath(fields)}')"


def _jpath(fields: tuple[str, ...]) -> str:
    return "$" + "".join(f".{f}" for f in fields)


def _condition(plan: Plan, node: w.Node) -> w.Node:
    """A `when` or an operand of `and` / `or` / `not`: expr-lang wants a boolean there, where a local run
    takes any value's truth ("" and 0 false, "abc" true). So a value there must be a boolean."""
    if not isinstance(node, (w.Lit, w.Var)):
        return node
    if not isinstance(_static(plan, node), bool):
        raise Unsupported(f"`{w.render(node)}` as a condition (compare it: Argo has no truth of other values)")
    return node


def _when_node(plan: Plan, step: str, node: w.Node, scope: str | None, top: bool = False) -> str:
    if top:
        _condition(plan, node)
    if isinstance(node, w.Bool):
        operands = [_when_node(plan, step, _condition(plan, v), scope) for v in node.values]
        return "(" + f" {_OPS[node.op]} ".join(operands) + ")"
    if isinstance(node, w.Not):
        return f"!({_when_node(plan, step, _condition(plan, node.operand), scope)})"
    if isinstance(node, w.Neg):
        return f"-{_when_node(plan, step, node.operand, scope)}"
    if isinstance(node, w.Compare):
        if len(node.ops) > 1:
            raise Unsupported("chained comparisons")
        left, right = _when_node(plan, step, node.left, scope), _when_node(plan, step, node.rights[0], scope)
        kinds = {type(_static(plan, n)) for n in (node.left, node.rights[0])}
        if bool in kinds and kinds & {int, float}:  # Python: True == 1; expr-lang: a bool equals no number
            raise Unsupported(f"`{w.render(node)}` compares a boolean with a number")
        if node.ops[0] == "in" and _is_string(plan, node.rights[0]):
            raise Unsupported(f"`in` on `{w.render(node.rights[0])}`: Argo's `in` takes a list (or a map's keys)")
        return f"({left} {_cmp(node.ops[0])} {right})"
    if isinstance(node, w.Lit):
        return _constant(node.value)
    if isinstance(node, w.Var):
        return _when_ref(plan, step, node.ref, scope)
    raise Unsupported(f"`{w.render(node)}` in `when`")


def _static(plan: Plan, node: w.Node) -> Any:
    """The value of a literal or the default of a whole param; None when not known before the run."""
    if isinstance(node, w.Lit):
        return node.value
    if isinstance(node, w.Var) and node.ref.root == "params" and len(node.ref.fields) == 1:
        return plan.pipeline.params.get(node.ref.fields[0])
    return None


def _is_string(plan: Plan, node: w.Node) -> bool:
    """Known to be a string: a local `in` on it is a substring test."""
    return isinstance(_static(plan, node), str)


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
    joined = " + ".join(f"sprig.sha256sum({p})" for p in parts)  # fixed-width parts: `a|` + `b` != `a` + `|b`
    return f"{static}-{{{{=sprig.trunc(16, sprig.sha256sum({joined}))}}}}"


def _user_key(plan: Plan, step: str) -> str:
    key = plan.steps[step].memoize.key  # type: ignore[union-attr]
    return interpolate_expr(plan, step, key or "")


def _all_refs(plan: Plan, step: str) -> list[tuple[Any, Ref]]:
    return plan.refs_of[step]
