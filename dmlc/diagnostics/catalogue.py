"""The code catalogue: every diagnostic code dmlc can emit, with its title; long pages live in pages/CODE.md.

Like ruff's rule registry, this module is the one table: renderers, `dmlc explain` and the CLI's help
read it, and call sites import the code they emit by name (`from dmlc.diagnostics.catalogue import
DML012`), so a mistyped code fails at import time and a `Diagnostic` refuses anything that is not a
`Code`. Ranges: DML00x syntax, DML01x names and references, DML02x values and types, DML03x graph,
DML04x resources and strategies, DML1xx target capabilities, DML2xx environment and I/O (files,
the local store, disk space, ports, the servers runs are submitted to), DML9xx internal.
"""

from __future__ import annotations

from importlib import resources


class Code(str):
    """A diagnostic code: the string `DMLxxx` (so it prints and compares as itself) with its title."""

    title: str

    def __new__(cls, code: str, title: str) -> Code:
        obj = super().__new__(cls, code)
        obj.title = title
        return obj


DML001 = Code("DML001", "syntax error")
DML002 = Code("DML002", "unterminated string")
DML003 = Code("DML003", "unclosed block or list")
DML004 = Code("DML004", "file is not valid UTF-8")
DML005 = Code("DML005", "nesting too deep")
DML006 = Code("DML006", "empty file")
DML007 = Code("DML007", "invalid YAML")
DML008 = Code("DML008", "duplicate YAML key")
DML009 = Code("DML009", "YAML anchors and aliases are not allowed")
DML010 = Code("DML010", "unknown step kind")
DML011 = Code("DML011", "unknown attribute")
DML012 = Code("DML012", "unknown step")
DML013 = Code("DML013", "duplicate step")
DML014 = Code("DML014", "duplicate attribute")
DML015 = Code("DML015", "unknown output")
DML016 = Code("DML016", "unknown parameter")
DML017 = Code("DML017", "`each` outside `for_each`")
DML018 = Code("DML018", "index into a step that is not fanned out")
DML019 = Code("DML019", "invalid name")
DML020 = Code("DML020", "wrong value type")
DML021 = Code("DML021", "bad unit")
DML022 = Code("DML022", "value out of range")
DML023 = Code("DML023", "not one of the allowed values")
DML024 = Code("DML024", "missing attribute")
DML025 = Code("DML025", "invalid `when` expression")
DML026 = Code("DML026", "conflicting attributes")
DML027 = Code("DML027", "invalid `--param`")
DML028 = Code("DML028", "invalid placement")
DML029 = Code("DML029", "repeated item in a list")
DML030 = Code("DML030", "dependency cycle")
DML031 = Code("DML031", "`wait` or `min_success` without a fanned-out upstream")
DML032 = Code("DML032", "`min_success` larger than the fan-out")
DML033 = Code("DML033", "misplaced exit handler (`finally`)")
DML034 = Code("DML034", "the exit handler reads what it cannot")
DML040 = Code("DML040", "distributed strategy needs more processes")
DML041 = Code("DML041", "serving shards need a shard key")
DML042 = Code("DML042", "invalid elastic bounds")
DML043 = Code("DML043", "invalid resources")
DML100 = Code("DML100", "target cannot express this construct")
DML101 = Code("DML101", "invalid target option")
DML102 = Code("DML102", "name is not a valid Kubernetes name")
DML103 = Code("DML103", "unknown target")
DML104 = Code("DML104", "user code is not in the step's image")
DML106 = Code("DML106", "a metric name the target cannot show")
DML107 = Code("DML107", "the target cannot use the artifact store here")
DML200 = Code("DML200", "cannot read an input file")
DML201 = Code("DML201", "cannot write an output file")
DML202 = Code("DML202", "the local store is damaged or not dmlc's")
DML203 = Code("DML203", "no space left on the device")
DML204 = Code("DML204", "a port is already in use")
DML205 = Code("DML205", "a required program is not installed")
DML206 = Code("DML206", "a step wrote an output that cannot be taken as its value")
DML207 = Code("DML207", "a secret has no value for this run")
DML208 = Code("DML208", "cannot reach the server")
DML209 = Code("DML209", "the server refused the credentials")
DML210 = Code("DML210", "not found on the server or in the local store")
DML211 = Code("DML211", "the server rejected the request")
DML212 = Code("DML212", "cannot use the artifact store")
DML213 = Code("DML213", "an object in the artifact store is not what was written")
DML900 = Code("DML900", "internal error (a dmlc bug)")

CATALOGUE: dict[str, Code] = {c: c for c in list(globals().values()) if isinstance(c, Code)}
RANGES = (
    ("DML000", "syntax"),
    ("DML010", "names and references"),
    ("DML020", "values and types"),
    ("DML030", "the graph"),
    ("DML040", "resources and strategies"),
    ("DML100", "target capabilities"),
    ("DML200", "environment and I/O"),
    ("DML900", "internal errors"),
)


def ranges_text() -> str:
    """`DML001..DML009, ...`: the code ranges in use, for help and error messages."""
    spans: list[str] = []
    for start, end in zip([r[0] for r in RANGES], [r[0] for r in RANGES[1:]] + ["DML999"], strict=True):
        inside = [c for c in CATALOGUE if start <= c < end]
        if inside:
            spans.append(f"{inside[0]}..{inside[-1]}" if len(inside) > 1 else inside[0])
    return ", ".join(spans)


def explain_page(code: str) -> str | None:
    """The long explanation of `code`, or None when the code is unknown."""
    found = CATALOGUE.get(code.upper())
    if found is None:
        return None
    page = resources.files("dmlc.diagnostics").joinpath("pages").joinpath(f"{found}.md")
    try:
        return page.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"# {found}: {found.title}\n"
