"""One attempt of a step instance (local executor, stage 4): its spec -> argv/env, its outputs -> values.

Takes an instance's spec (`dmlc.semantics.spec.instantiate`: references resolved) and the attempt's
folder; gives the argument list (the `command` of a task, or `python -m dmlc.runtime KIND --spec
SPEC.json --outputs DIR` for built-in kinds and `run =` tasks) and the environment (the contract
variables every target sets, the step's `env`, and what only a local run has: run id, instance,
attempt, the serve pidfile). After the attempt, `dmlc.semantics.outputs` reads the output values.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc.semantics.spec import command, environment


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]


def runtime_argv(kind: str, spec_path: Path, outputs_dir: Path) -> list[str]:
    return [sys.executable, "-m", "dmlc.runtime", kind, "--spec", str(spec_path), "--outputs", str(outputs_dir)]


def prepare(
    spec: dict[str, Any],
    run: dict[str, str],
    attempt_dir: Path,
    secrets: dict[str, str],
    withheld: Collection[str] = (),
) -> Launch:
    """Write the spec into the attempt folder; the argv and environment of the attempt.

    `run` holds what only the executor knows: run id, instance key and attempt number; `secrets` the
    values of the step's `secret_env` (only ever put into the environment, never into the spec file);
    `withheld` the variables that hold some step's secret: dmlc's own environment passes them to no step
    that does not declare them (on a cluster only the declaring pod gets the secret).
    """
    argv = command(spec)
    if argv is None:  # a command reads its args, not a spec; skipping it saves a file per step
        spec_path = attempt_dir / "spec.json"
        spec_path.write_text(json.dumps(spec, sort_keys=True, indent=1, default=str))
        argv = runtime_argv(spec["attrs"]["kind"], spec_path, Path(spec["outputs_dir"]))
    env = {k: v for k, v in os.environ.items() if k not in withheld}
    env.update(environment(spec))
    env.update(secrets)
    # steps find the same Python (and dmlc) as the executor, as they would in the runtime image
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", os.defpath)
    env.update({"DMLC_RUN_ID": run["run_id"], "DMLC_INSTANCE": run["key"], "DMLC_ATTEMPT": run["attempt"]})
    if spec["attrs"]["kind"] == "serve":
        env["DMLC_SERVE_PIDFILE"] = str(attempt_dir / "serve.pid")
    return Launch(argv, env)
