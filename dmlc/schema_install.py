"""`dmlc schema --install`: the schema written into a workspace and associated with the YAML form.

Takes a workspace folder; writes `.vscode/dmlc.schema.json` and the `yaml.schemas` entry of
`.vscode/settings.json` (other settings kept; a settings file that is not plain JSON is left alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmlc.schema import FILE_PATTERNS, schema_text


def install(folder: str | Path = ".") -> list[Path]:
    """Write the schema to `folder`/.vscode/dmlc.schema.json and associate it with *.dml.yaml and
    *.dml.yml there: `yaml.schemas` in `folder`/.vscode/settings.json, which the YAML extension sends to
    yaml-language-server (other editors take the same setting). Keeps the other settings; a settings
    file that is not plain JSON (VS Code allows comments) is left alone: DML200 with the entry to add."""
    from dmlc.atomic import output_error, write_output
    from dmlc.diagnostics.catalogue import DML200
    from dmlc.diagnostics.model import Diagnostic, DmlError, Label

    vscode = Path(folder) / ".vscode"
    settings_path = vscode / "settings.json"
    settings: Any = {}
    if settings_path.exists():
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            help_ = f"add this entry to it by hand: {install_setting_text()}"
            raise DmlError(
                [Diagnostic(DML200, f"cannot read `{settings_path}` as JSON: {why}", Label(None), help=help_)]
            ) from None
        if not isinstance(settings, dict):
            help_ = f"add this entry to it by hand: {install_setting_text()}"
            raise DmlError(
                [Diagnostic(DML200, f"`{settings_path}` does not hold a JSON object", Label(None), help=help_)]
            )
    schemas = settings.get("yaml.schemas")
    schemas = dict(schemas) if isinstance(schemas, dict) else {}
    schemas[INSTALL_KEY] = list(FILE_PATTERNS)
    settings["yaml.schemas"] = schemas
    try:
        vscode.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(str(vscode), exc) from None
    target = vscode / "dmlc.schema.json"
    write_output(str(target), schema_text())
    write_output(str(settings_path), json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    return [target, settings_path]


INSTALL_KEY = "./.vscode/dmlc.schema.json"  # relative to the workspace folder, as yaml-language-server reads it


def install_setting_text() -> str:
    return json.dumps({"yaml.schemas": {INSTALL_KEY: list(FILE_PATTERNS)}})
