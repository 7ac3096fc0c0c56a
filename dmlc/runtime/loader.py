"""Import a user function given as "pkg.module:function" (the current folder is on sys.path)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmlc.runtime.step_io import UserError


def load_function(ref: str) -> Callable[..., Any]:
    module_name, sep, func_name = ref.partition(":")
    if not sep or not module_name or not func_name:
        raise UserError(f"{ref!r} is not of the form 'pkg.module:function'")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the pipeline's folder holds user code
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {module_name!r} for {ref!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(f"{module_name} has no function {func_name!r}")
    return func
