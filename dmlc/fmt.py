"""`dmlc fmt`: the IR -> canonical `.dml` or YAML text (lossless twins: both lower to the same IR).

Formatting goes through the IR (`model_dump(exclude_defaults=True)`), so the output is canonical:
defaults dropped, units in their largest exact form, attributes in schema order. The file's leading
comment block is kept; other comments are not (the output goes to stdout unless -o is given).
The output always means the same pipeline: a value fmt could not write back (`-1e999`) is refused
with the DML022 `check` gives, never written as something else (YAML `null`).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from dmlc.ir.model import Pipeline, Step

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNIT = re.compile(r"^\d+(\.\d+)?[A-Za-z]+$")
REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.\[\]*]*)\}$")
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/dmlc.schema.json"
GROUPS = {"volumes": "volume", "targets": "target"}
JSON_ESCAPE = re.compile(r"\\(.)")
DML_ESCAPE = {"b": "\\u0008", "f": "\\u000c"}
YAML_UNSAFE = re.compile("[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def canonical_data(pipeline: Pipeline) -> dict[str, Any]:
    """The YAML form: what the user set, with each step's own attributes before the common ones."""
    data = pipeline.model_dump(mode="json", by_alias=True, exclude_unset=True)
    common = set(Step.model_fields) - {"kind", "for_each"}
    for name, step in data.get("steps", {}).items():
        data["steps"][name] = dict(sorted(step.items(), key=lambda kv: kv[0] in common))
    return data


def leading_comments(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# yaml-language-server"):
            out.append(line)
    return out


def to_yaml(pipeline: Pipeline, comments: list[str] | None = None) -> str:
    import yaml

    body = yaml.safe_dump(canonical_data(pipeline), sort_keys=False, allow_unicode=True, width=100)
    return "\n".join([SCHEMA_LINE, *map(_yaml_comment, comments or [])]) + "\n" + body


def _yaml_comment(line: str) -> str:
    """A comment YAML can hold: what it refuses (controls) or reads as a line break is written `\\uXXXX`."""
    return YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def to_dml(pipeline: Pipeline, comments: list[str] | None = None) -> str:
    data = canonical_data(pipeline)
    lines = list(comments or [])
    lines.append(f"pipeline {data.pop('pipeline')} {{")
    for key, value in data.items():
        lines += _top(key, value)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _top(key: str, value: Any) -> list[str]:
    if key == "steps":
        out = []
        for name, step in value.items():
            step = dict(step)
            out += ["", *_block(f"{step.pop('kind')} {name}", step, 1)]
        return out
    if key in GROUPS:
        return [line for name, body in value.items() for line in ["", *_block(f"{GROUPS[key]} {name}", body, 1)]]
    if isinstance(value, dict):
        return ["", *_block(key, value, 1)]
    return [f"  {_key(key)} = {_value(value, key)}"]


def _block(header: str, body: dict[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    if not body:
        return [f"{pad}{header} {{}}"]
    lines = [f"{pad}{header} {{"]
    for key, value in body.items():
        if isinstance(value, dict) and value and key not in ("inputs",):
            lines += _block(_key(key), value, depth + 1)
        else:
            lines.append(f"{pad}  {_key(key)} = {_value(value, key)}")
    lines.append(f"{pad}}}")
    return lines


def _key(key: str) -> str:
    return key if IDENT.match(key) else _quote(key)


def _quote(text: str) -> str:
    """A .dml string literal: JSON's, but `\\b` and `\\f` (no .dml escapes) written as `\\uXXXX`."""
    return JSON_ESCAPE.sub(lambda m: DML_ESCAPE.get(m.group(1), m.group(0)), json.dumps(text, ensure_ascii=False))


def _value(value: Any, key: str = "") -> str:
    if isinstance(value, str):
        ref = REF.match(value)
        if ref:
            return ref.group(1)
        if UNIT.match(value) or (key == "after" and IDENT.match(value)):
            return value
        return _quote(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, key) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + "  ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def format_file(path: str, *, to: str | None, check: bool, output: str | None) -> int:
    from dmlc.driver import load
    from dmlc.parse import YAML_SUFFIXES

    loaded = load(path)
    comments = leading_comments(loaded.document.source.text)
    syntax = to or ("yaml" if path.endswith(YAML_SUFFIXES) else "dml")
    text = (to_yaml if syntax == "yaml" else to_dml)(loaded.pipeline, comments)
    if check:
        if text != loaded.document.source.text:
            print(f"would reformat {path}", file=sys.stderr)
            return 1
        return 0
    if output and output != "-":
        from dmlc.atomic import write_output

        write_output(output, text)
    else:
        sys.stdout.write(text)
    return 0
