"""Argo target, stage 4 (emit): hera model objects for the small, hot nodes, built without re-validation.

A 5,000-step workflow has ~65,000 model objects; pydantic validation of the tiny ones (parameters,
arguments, task entries) was over half of the compile time. Their fields come from dmlc's own code with
the right types, so they are made with `model_construct`; every output is still validated in the tests by
reading it back into `hera.workflows.models.Workflow`.
"""

from __future__ import annotations

from typing import Any

import hera.workflows.models as m

_DEFAULTS: dict[type, dict[str, Any] | None] = {}


def _defaults(cls: Any) -> dict[str, Any] | None:
    """Field defaults of `cls` when all are plain constants (safe to share), else None."""
    if cls not in _DEFAULTS:
        fields = cls.model_fields
        plain = all(f.default_factory is None for f in fields.values())
        _DEFAULTS[cls] = {n: (None if f.is_required() else f.default) for n, f in fields.items()} if plain else None
    return _DEFAULTS[cls]


def _make(cls: Any, fields: dict[str, Any]) -> Any:
    """What `model_construct` does, without resolving every default again for each object."""
    given = {k: v for k, v in fields.items() if v is not None}
    defaults = _defaults(cls)
    if defaults is None:
        return cls.model_construct(**given)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", {**defaults, **given})
    object.__setattr__(obj, "__pydantic_fields_set__", set(given))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def Parameter(**fields: Any) -> m.Parameter:
    return _make(m.Parameter, fields)


def ValueFrom(**fields: Any) -> m.ValueFrom:
    return _make(m.ValueFrom, fields)


def Inputs(**fields: Any) -> m.Inputs:
    return _make(m.Inputs, fields)


def Outputs(**fields: Any) -> m.Outputs:
    return _make(m.Outputs, fields)


def Arguments(**fields: Any) -> m.Arguments:
    return _make(m.Arguments, fields)


def DAGTask(**fields: Any) -> m.DAGTask:
    return _make(m.DAGTask, fields)


def Metadata(**fields: Any) -> m.Metadata:
    return _make(m.Metadata, fields)


def Item(value: Any) -> m.Item:
    return m.Item.model_construct(value)
