"""A replay of what the Argo controller and executor do with one container template, for tests.

Argo substitutes a template by marshalling it to JSON, replacing every `{{tag}}` (fasttemplate,
delimiters `{{` and `}}`) with its value JSON-escaped (`strconv.Quote` without the quotes) and
unmarshalling the result; global parameters (`workflow.parameters.*`, `workflow.name`) first, then
`inputs.parameters.*`; tags it does not know are left as written (argo-workflows
`workflow/common/util.go` SubstituteParams and Replace, `util/template/simple_template.go`
simpleReplace, v3.x-v4.x). Expression tags (`{{=...}}`) are not replayed here: a template that still
holds one after substitution is reported. The container then runs as a local process, with its
volume mounts mapped to a folder on this machine, its init containers first; its output parameters
are read from their `valueFrom.path`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

TAG = re.compile(r"\{\{(.*?)\}\}")


def substitute(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The template after Argo's simple-tag substitution with `values` (tag -> text)."""

    def replace(match: re.Match[str]) -> str:
        tag = match.group(1)
        if tag.strip() not in values:
            return match.group(0)  # allowUnresolved: written back as it was
        return json.dumps(values[tag.strip()])[1:-1]

    return json.loads(TAG.sub(replace, json.dumps(template)))


def workflow_values(workflow: dict[str, Any], name: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The global tags of a submitted workflow: its name and its (overridden) parameters."""
    params = {p["name"]: p.get("value", "") for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
    params.update(overrides or {})
    return {"workflow.name": name, **{f"workflow.parameters.{k}": v for k, v in params.items()}}


def _mapped(text: str, mounts: dict[str, Path]) -> str:
    for mount, folder in mounts.items():
        text = text.replace(mount, str(folder))
    return text


def _run(container: dict[str, Any], mounts: dict[str, Path], base_env: dict[str, str]) -> None:
    argv = [_mapped(a, mounts) for a in container["command"] + container.get("args", [])]
    leftover = [a for a in argv if "{{" in a]
    assert not leftover, f"unreplayed Argo tags in {leftover}"
    env = {**base_env, **{e["name"]: _mapped(e["value"], mounts) for e in container.get("env", []) if "value" in e}}
    subprocess.run(argv, env=env, check=True)


def run_container_template(
    template: dict[str, Any], values: dict[str, str], root: Path, base_env: dict[str, str]
) -> dict[str, str]:
    """Substitute, run init containers then the container; the output parameters' text."""
    done = substitute(template, values)
    mounts = {m["mountPath"]: root / m["name"] for m in done["container"].get("volumeMounts", [])}
    for folder in mounts.values():
        folder.mkdir(parents=True, exist_ok=True)
    for init in done.get("initContainers", []):
        _run(init, mounts, base_env)
    _run(done["container"], mounts, base_env)
    outputs = (done.get("outputs") or {}).get("parameters", [])
    return {p["name"]: Path(_mapped(p["valueFrom"]["path"], mounts)).read_text() for p in outputs}
