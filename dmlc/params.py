"""`--param K=V` on the command line (every command that loads a pipeline): text -> typed values.

Takes the `K=V` strings; gives a dict of values, each V read as a YAML scalar or flow value (`3`,
`0.5`, `true`, `[1, 2]`, `text`), or a coded error (DML027) naming the bad pair. Whether the name
and the type fit the pipeline's `params` is lowering's job (DML016, DML020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dmlc.diagnostics.catalogue import DML027
from dmlc.diagnostics.model import Diagnostic, DmlError, Label


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DmlError([_bad(pair, "must be KEY=VALUE")])
        out[key] = _value(pair, value)
    return out


def _value(pair: str, text: str) -> Any:
    import yaml

    if not text:
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(getattr(exc, "problem", None) or "not a YAML value")
        raise DmlError([_bad(pair, f"cannot be read: {reason}")]) from None


def _bad(pair: str, why: str) -> Diagnostic:
    help_ = "write --param name=value, e.g. --param epochs=3 or --param 'sizes=[1, 2]'; quote text with spaces"
    return Diagnostic(DML027, f"`--param {pair}` {why}", Label(None), help=help_)
