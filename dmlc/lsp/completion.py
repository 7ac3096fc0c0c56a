"""Completion items for a cursor `Context`: block kinds, attributes per kind, enum values, units,
step names, and a step's outputs after `name.` (params after `params.`).

Items are plain `Item`s; the server turns them into LSP items. What an attribute accepts comes from
`dmlc.lsp.fields` (the IR models), so .dml and YAML complete the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from dmlc.ir.model import BUILTIN_MODELS, STEP_KINDS, Step
from dmlc.lsp.context import Context
from dmlc.lsp.fields import NAMED_GROUPS, Field, field_markdown, fields_of, kind_markdown, model_at, outputs_of

NUMBER = re.compile(r"^\d+(\.\d+)?")


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # keyword | field | block | value | unit | step | output | param
    detail: str = ""
    doc: str = ""
    insert: str | None = None  # text to insert (a snippet when `snippet`), default the label
    snippet: bool = False
    sort: str = "0"  # items sort by this, then by label: a kind's own attributes before the common ones


@dataclass
class Known:
    """What the buffer's last parse knows besides the context: step attributes and params."""

    steps: dict[str, dict[str, Any]]
    params: dict[str, Any]


def complete(ctx: Context, known: Known, yaml: bool) -> list[Item]:
    kinds = {**ctx.steps, **{n: str(s.get("kind", "")) for n, s in known.steps.items()}}
    if ctx.where == "key":
        items = _keys(ctx, kinds, yaml)
    elif ctx.where == "value":
        items = _values(ctx, kinds, yaml)
    elif ctx.where == "ref":
        items = _refs(ctx, kinds, known)
    else:
        items = []
    return [i for i in items if i.label.startswith(ctx.prefix) or not ctx.prefix]


def _keys(ctx: Context, kinds: dict[str, str], yaml: bool) -> list[Item]:
    model = model_at(ctx.path, kinds.get)
    if model is None:
        return []
    items = []
    if not ctx.path and not yaml:
        items += _step_kinds()
    for name, f in fields_of(model).items():
        if name in ctx.keys or (not yaml and (name == "kind" or (not ctx.path and name in NAMED_GROUPS))):
            continue
        if not yaml and not ctx.path and name == "pipeline":
            continue
        common = issubclass(model, Step) and model is not Step and name in fields_of(Step)
        items.append(replace(_key_item(f, yaml), sort="1" if common else "0"))
    return items


def _step_kinds() -> list[Item]:
    items = [
        Item(kind, "keyword", "step kind", kind_markdown(kind), f"{kind} ${{1:name}} {{\n\t$0\n}}", True)
        for kind in STEP_KINDS
    ]
    for keyword in ("volume", "target"):
        insert = f"{keyword} ${{1:name}} {{\n\t$0\n}}"
        items.append(Item(keyword, "keyword", f"named {keyword} block", "", insert, True))
    return items


def _key_item(f: Field, yaml: bool) -> Item:
    block = f.block is not None or f.is_map
    if yaml:
        insert = f"{f.name}:\n  " if block else f"{f.name}: "
        return Item(f.name, "block" if block else "field", f.type_text, field_markdown(f), insert)
    insert = f"{f.name} {{\n\t$0\n}}" if block else f"{f.name} = $0"
    return Item(f.name, "block" if block else "field", f.type_text, field_markdown(f), insert, True)


def _values(ctx: Context, kinds: dict[str, str], yaml: bool) -> list[Item]:
    if yaml and ctx.attr == "kind" and len(ctx.path) == 2 and ctx.path[0] == "steps":
        return [Item(k, "keyword", "step kind", kind_markdown(k)) for k in STEP_KINDS]
    model = model_at(ctx.path, kinds.get)
    f = fields_of(model).get(ctx.attr or "") if model is not None else None
    if f is None:
        return []
    if f.enum:
        return [Item(v, "value", f.name, f.description, _quoted(v, ctx, yaml)) for v in f.enum]
    if f.is_bool:
        return [Item(v, "value", f.name) for v in ("true", "false")]
    if f.unit is not None:
        return _units(ctx.prefix, f)
    items = []
    if f.name == "model" and ctx.path[-2:-1] == ("steps",) and kinds.get(ctx.path[-1]) == "train":
        items += [Item(m, "value", "built-in model", insert=_quoted(m, ctx, yaml)) for m in BUILTIN_MODELS]
    if f.accepts_ref or f.is_names or ctx.attr in ("for_each", "inputs", "args"):
        own = ctx.path[1] if len(ctx.path) > 1 and ctx.path[0] == "steps" else None
        items += _step_items(kinds, own, refs=not f.is_names, yaml=yaml)
    return items


def _quoted(value: str, ctx: Context, yaml: bool) -> str:
    return value if yaml or ctx.quoted else f'"{value}"'


def _units(prefix: str, f: Field) -> list[Item]:
    assert f.unit is not None
    number = NUMBER.match(prefix)
    base = number.group() if number else NUMBER.match(f.unit.example).group()  # type: ignore[union-attr]
    return [
        Item(f"{base}{s}", "unit", f"{f.unit.what} unit {s or '(none)'}", field_markdown(f)) for s in f.unit.suffixes
    ]


def _step_items(kinds: dict[str, str], own: str | None, refs: bool, yaml: bool) -> list[Item]:
    items = []
    for name, kind in kinds.items():
        if name == own:
            continue
        insert = ("${" + name + "." if yaml else name + ".") if refs else name
        items.append(Item(name, "step", f"{kind} step", kind_markdown(kind, name), insert))
    if refs:
        items.append(Item("params", "param", "pipeline params", insert="${params." if yaml else "params."))
        items.append(Item("each", "param", "the current for_each item", insert="${each}" if yaml else "each"))
    return items


def _refs(ctx: Context, kinds: dict[str, str], known: Known) -> list[Item]:
    if ctx.root is None:  # `${` typed, no dot yet
        own = ctx.path[1] if len(ctx.path) > 1 and ctx.path[0] == "steps" else None
        return [Item(i.label, i.kind, i.detail, i.doc) for i in _step_items(kinds, own, refs=True, yaml=False)]
    if ctx.root == "params":
        names = dict.fromkeys([*map(str, known.params), *sorted(ctx.params)])
        return [Item(k, "param", f"param = {known.params[k]!r}" if k in known.params else "param") for k in names]
    if ctx.root in kinds:
        outs = outputs_of(kinds[ctx.root], known.steps.get(ctx.root))
        return [Item(o, "output", f"{kind} output of {ctx.root}") for o, kind in outs.items()]
    return []
