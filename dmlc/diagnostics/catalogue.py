"""The code catalogue: every diagnostic code dmlc can emit, with its title; long pages live in pages/CODE.md.

Ranges: DML00x syntax, DML01x names/references, DML02x values/types, DML03x graph, DML04x
resources and strategies, DML1xx target capabilities (registered by targets), DML9xx internal.
"""

from __future__ import annotations

from importlib import resources

CATALOGUE: dict[str, str] = {
    "DML001": "syntax error",
    "DML002": "unterminated string",
    "DML003": "unclosed block or list",
    "DML004": "file is not valid UTF-8",
    "DML005": "nesting too deep",
    "DML006": "empty file",
    "DML007": "invalid YAML",
    "DML008": "duplicate YAML key",
    "DML009": "YAML anchors and aliases are not allowed",
    "DML010": "unknown step kind",
    "DML011": "unknown attribute",
    "DML012": "unknown step",
    "DML013": "duplicate step",
    "DML014": "duplicate attribute",
    "DML015": "unknown output",
    "DML016": "unknown parameter",
    "DML017": "`each` outside `for_each`",
    "DML018": "index into a step that is not fanned out",
    "DML019": "invalid name",
    "DML020": "wrong value type",
    "DML021": "bad unit",
    "DML022": "value out of range",
    "DML023": "not one of the allowed values",
    "DML024": "missing attribute",
    "DML025": "invalid `when` expression",
    "DML026": "conflicting attributes",
    "DML030": "dependency cycle",
    "DML031": "`wait` or `min_success` without a fanned-out upstream",
    "DML032": "`min_success` larger than the fan-out",
    "DML040": "distributed strategy needs more processes",
    "DML041": "serving shards need a shard key",
    "DML042": "invalid elastic bounds",
    "DML043": "invalid resources",
    "DML100": "target cannot express this construct",
    "DML101": "invalid target option",
    "DML102": "name is not a valid Kubernetes name",
    "DML103": "unknown target",
    "DML900": "internal error (a dmlc bug)",
}


def explain_page(code: str) -> str | None:
    """The long explanation of `code`, or None when the code is unknown."""
    code = code.upper()
    if code not in CATALOGUE:
        return None
    page = resources.files("dmlc.diagnostics").joinpath("pages").joinpath(f"{code}.md")
    try:
        return page.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"# {code}: {CATALOGUE[code]}\n"
