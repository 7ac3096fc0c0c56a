"""Validation rules for what reaches a process or a pod (stage 3, validate): context -> diagnostics.

Every target hands commands, arguments and environment variables to an operating system or to
Kubernetes, which refuse some of them at run time, after other steps already ran: a NUL character
in an argument or a value (execve cannot pass it), an environment variable name that is empty or
holds `=` (Kubernetes wants a C identifier-like name), an empty `command` (no program to start),
and two volumes mounted on one path (the pod is refused). These are errors at check time instead.
"""

from __future__ import annotations

import re
from typing import Any

from dmlc.diagnostics.catalogue import DML019, DML020, DML022, DML026
from dmlc.diagnostics.model import Diagnostic
from dmlc.parse.document import Path
from dmlc.validate.context import Ctx, strings

ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # Kubernetes' rule for an env var name


def check_process_text(ctx: Ctx) -> list[Diagnostic]:
    out = []
    for name, raw in ctx.document.data.get("steps", {}).items():
        for path, text in strings(raw, ("steps", name), keys=True):
            if "\0" in text:
                help_ = "a process cannot receive a NUL character: remove it"
                out.append(ctx.diag(DML020, "a NUL character in text a process receives", path, "here", help_))
        out += _env_names(ctx, name, raw)
    defaults = ctx.document.data.get("defaults")
    if isinstance(defaults, dict):
        out += _env_names(ctx, None, defaults)
    return out


def _env_names(ctx: Ctx, step: str | None, raw: Any) -> list[Diagnostic]:
    base: Path = ("steps", step) if step is not None else ("defaults",)
    out = []
    for attr in ("env", "secret_env"):
        block = raw.get(attr) if isinstance(raw, dict) else None
        for key in block if isinstance(block, dict) else ():
            if not ENV_NAME.match(str(key)):
                help_ = "use letters, digits, `_`, `-` and `.`, not starting with a digit (e.g. API_TOKEN)"
                message = f"`{key}` is no environment variable name"
                out.append(ctx.diag(DML019, message, (*base, attr, key), "invalid name", help_, key=True))
    return out


def check_commands_and_mounts(ctx: Ctx) -> list[Diagnostic]:
    out = []
    for name, step in ctx.steps():
        if getattr(step, "command", None) == []:
            help_ = 'name the program to run, e.g. command = ["python", "train.py"]'
            out.append(ctx.diag(DML022, "an empty `command`", ("steps", name, "command"), "nothing to run", help_))
    seen: dict[str, str] = {}
    for name, vol in ctx.pipeline.volumes.items():
        mount = vol.mount.rstrip("/") or "/"
        if mount in seen:
            help_ = f"mount `{name}` elsewhere: a pod cannot mount two volumes on one path"
            message = f"volumes `{seen[mount]}` and `{name}` are both mounted at {mount}"
            out.append(ctx.diag(DML026, message, ("volumes", name, "mount"), "same path", help_))
        seen.setdefault(mount, name)
    return out
