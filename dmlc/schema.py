"""`dmlc schema`: the JSON Schema of the YAML form, generated from the IR models.

Strict (`additionalProperties: false` from `extra="forbid"`), discriminated on each step's `kind`,
with descriptions from the models' attribute docstrings. Committed as schema/dmlc.schema.json.
"""

from __future__ import annotations

import json
from typing import Any

from dmlc.ir.model import Pipeline

SCHEMA_ID = "https://dmlc.dev/schema/dmlc.schema.json"


def schema() -> dict[str, Any]:
    body = Pipeline.model_json_schema(by_alias=True, mode="validation")
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "dmlc pipeline",
        "description": "A dmlc pipeline in its YAML form (the twin of the .dml syntax).",
    }
    body.pop("title", None)
    body.pop("description", None)
    return {**head, **body}


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
