"""`dmlc fmt FILE... [--check | --diff] [--to dml|yaml] [-o OUT]`: the canonical layout, comments kept.

A `.dml` file is laid out from its concrete syntax tree (`dmlc.cst` -> `dmlc.fmt_dml`): layout only,
every token and every comment kept. A YAML file, and a file converted to its twin (`--to`), is
written from its parsed document by `dmlc.fmt_twin`, its comments carried by key (`fmt_comments`).
Only a file `check` accepts is formatted (bad input gives check's DML diagnostics, nothing is
written); the file is rewritten in place (atomically) unless `-o` names another output (`-o -`:
stdout); a conversion (`--to` the other form) without `-o` goes to stdout, never over the
twin. `--check` says which files would change (exit 1); `--diff` prints the change instead.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from dmlc.ir.model import Pipeline, Step


def canonical_data(pipeline: Pipeline) -> dict[str, Any]:
    """The YAML form of an IR pipeline: what the user set, each step's own attributes before the common ones."""
    data = pipeline.model_dump(mode="json", by_alias=True, exclude_unset=True)
    common = set(Step.model_fields) - {"kind", "for_each"}
    for name, step in data.get("steps", {}).items():
        data["steps"][name] = dict(sorted(step.items(), key=lambda kv: kv[0] in common))
    return data


def to_dml(pipeline: Pipeline, comments: list[str] | None = None) -> str:
    """An IR pipeline as canonical `.dml` (`comments` first)."""
    from dmlc.fmt_comments import Anchored
    from dmlc.fmt_twin import dml_text

    head = "".join(f"{line}\n" for line in comments or [])
    return format_dml_text(head + dml_text(canonical_data(pipeline), Anchored()))


def to_yaml(pipeline: Pipeline, comments: list[str] | None = None) -> str:
    """An IR pipeline as canonical YAML (`comments` after the schema line)."""
    from dmlc.fmt_comments import Anchored
    from dmlc.fmt_twin import yaml_text

    return yaml_text(canonical_data(pipeline), Anchored(leading={("pipeline",): list(comments or [])}))


def format_dml_text(text: str) -> str:
    """The canonical layout of `.dml` text the parser accepts (DmlError otherwise)."""
    from dmlc import cst, fmt_dml
    from dmlc.parse.dml import _BUDGET, parse_dml, parser
    from dmlc.source import Source

    parse_dml(Source("<fmt>", text))
    _BUDGET.reset()
    return fmt_dml.render(cst.build(list(parser().lex(text, dont_ignore=True))))


def formatted(text: str, path: str, to: str | None = None) -> str:
    """The canonical text of a pipeline file (`to`: its twin); raises DmlError as `check` would."""
    from dmlc import driver
    from dmlc.fmt_comments import anchor
    from dmlc.fmt_twin import dml_text, yaml_text
    from dmlc.parse import YAML_SUFFIXES, parse_source
    from dmlc.source import Source

    document = driver.load_document(parse_source(Source(path, text))).document
    yaml_form = path.endswith(YAML_SUFFIXES)
    syntax = to or ("yaml" if yaml_form else "dml")
    if syntax == "dml" and not yaml_form:
        return format_dml_text(text)
    comments = anchor(document, yaml_form)
    if syntax == "yaml":
        return yaml_text(document.data, comments)
    return format_dml_text(dml_text(document.data, comments))


def format_file(path: str, *, to: str | None, check: bool, output: str | None, diff: bool = False) -> int:
    """Format one file: 0 done (or already canonical), 1 `--check`/`--diff` found a change."""
    from dmlc.atomic import write_output
    from dmlc.parse import decode, read_source

    original = decode(path, read_source(path)).text
    text = formatted(original, path, to)
    if check or diff:
        if text == original:
            return 0
        if diff:
            sys.stdout.writelines(difflib.unified_diff(original.splitlines(True), text.splitlines(True), path, path))
        else:
            print(f"would reformat {path}", file=sys.stderr)
        return 1
    if output == "-":
        sys.stdout.write(text)
    elif output:
        write_output(output, text)
    elif to and _converts(path, to):  # a twin never overwrites its original: it goes to stdout
        sys.stdout.write(text)
    elif text != original:
        write_output(path, text)
    return 0


def _converts(path: str, to: str) -> bool:
    from dmlc.parse import YAML_SUFFIXES

    return path.endswith(YAML_SUFFIXES) != (to == "yaml")
