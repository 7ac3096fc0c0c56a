"""Reading a step's outputs back after it ran (the local executor and the KFP shim alike).

Takes the outputs a step declares and the folder it wrote them to (`$DMLC_OUTPUTS`); gives each
output's value: an artifact is its path, a param is the JSON its file holds, or the file's text when
it is not JSON (`echo hi > $DMLC_OUTPUTS/greeting` gives "hi" on every target).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_outputs(declared: dict[str, str], outputs_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Values of the declared outputs written to `outputs_dir`, and the names that are missing."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind in declared.items():
        path = outputs_dir / name
        if not path.exists():
            missing.append(name)
        elif kind == "param":
            values[name] = parse_param(path)
        else:
            values[name] = str(path)
    return values, missing


def parse_param(path: Path) -> Any:
    """The value of a param file (see `param_value`), byte for byte as the engines read it (read_text
    would turn a `\r` into `\n`)."""
    return param_value(path.read_bytes().decode() if path.is_file() else "")


def param_value(text: str) -> Any:
    """A param holds JSON text; anything else is taken as a plain string (trailing newline dropped)."""
    try:
        return json.loads(text)
    except ValueError:
        return text.rstrip("\n")
