"""The container launcher of the KFP v2 backend (kubeflow/pipelines 2.17.0), as local processes.

Takes a container task's executor spec (`deploymentSpec.executors[...].container`), its component and
its resolved `Inputs`; runs the command on this machine and fills the task's `Execution`:

- the executor input as the driver makes it (`backend/src/v2/driver/driver.go` provisionOutputs): each
  output artifact at `<pipeline root>/<task>/<salt>/<name>` where the pipeline root is
  `minio://mlpipeline/v2/artifacts/<pipeline>/<run id>` (`config/env.go` defaultPipelineRoot,
  `metadata/client.go` GetPipeline + GenerateOutputURI), each output parameter's `outputFile` at
  `/tmp/kfp/outputs/<name>` (here under the pod's own folder), `outputs.outputFile` =
  `<local task root>/output_metadata.json`;
- `component/launcher_v2.go`: addDefaultParams (component defaults for missing inputs), compileCmdAndArgs
  (`{{$}}` = the executor input JSON, `{{$.inputs.parameters['x']}}`, `{{$.outputs.parameters['x'].output_file}}`,
  `{{$.inputs|outputs.artifacts['x'].path|uri}}`), LocalPathForURI (`minio://b/k` -> `/minio/b/k`),
  execute, then getExecutorOutputFile (parameters it names win) and collectOutputParameters (each
  other output file read by its declared type: TextToPbValue), then uploadOutputArtifacts (a missing
  output artifact fails the task).

The object store and the pod's `/minio` download folder are one sandbox folder (`<root>/minio`), so an
input artifact is "downloaded" where its producer uploaded it. In the process, `python3` is this
interpreter and kfp's `_MINIO_LOCAL_MOUNT_PREFIX` (`kfp/dsl/types/artifact_types.py`, the SDK's
`Artifact.path` of a `minio://` URI) points at that folder, through a `sitecustomize.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kfp_replay import objstore, values
from tests.kfp_replay.model import FAILED, SUCCEEDED, Artifact, Execution, NotReplayed
from tests.kfp_replay.resolve import Inputs

SITECUSTOMIZE = '''\
"""kfp replay: map minio:// artifact URIs into the sandbox, as the launcher's /minio mount."""
import importlib.abc
import importlib.util
import os
import sys

_PREFIX = os.environ.get("KFP_REPLAY_MINIO_PREFIX")
_S3_PREFIX = os.environ.get("KFP_REPLAY_S3_PREFIX")


class _MinioPrefix(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "kfp.dsl.types.artifact_types":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module._MINIO_LOCAL_MOUNT_PREFIX = _PREFIX
            if _S3_PREFIX:
                module._S3_LOCAL_MOUNT_PREFIX = _S3_PREFIX

        spec.loader.exec_module = exec_module
        return spec


if _PREFIX:
    sys.meta_path.insert(0, _MinioPrefix())
'''


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    timeout: float = 600.0
    store: objstore.Store | None = None  # the kfp-launcher ConfigMap's s3 provider, for s3:// pipeline roots
    s3_root: Path | None = None  # the running pod's /s3 folder

    @property
    def minio(self) -> Path:
        return self.root / "minio"

    def setup(self) -> None:
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        (self.root / "site").mkdir(exist_ok=True)
        self.minio.mkdir(exist_ok=True)
        python3 = self.root / "bin" / "python3"
        python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python3.chmod(0o755)
        (self.root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def local_path(self, uri: str) -> str:
        """LocalPathForURI, into the sandbox."""
        if uri.startswith("s3://") and self.store is not None and self.s3_root is not None:
            return str(self.s3_root / uri.removeprefix("s3://"))
        if not uri.startswith("minio://"):
            raise NotReplayed(f"artifact URI {uri!r}: only minio:// and s3:// (with a store) are replayed")
        return str(self.minio / uri.removeprefix("minio://"))

    def process_env(self, container: dict[str, Any]) -> dict[str, str]:
        env = dict(self.env)
        env.update({e["name"]: str(e.get("value", "")) for e in container.get("env", [])})
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        site = str(self.root / "site")
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["KFP_REPLAY_MINIO_PREFIX"] = str(self.minio) + "/"
        if self.s3_root is not None:
            env["KFP_REPLAY_S3_PREFIX"] = str(self.s3_root) + "/"
        return env


def _outputs(component: dict[str, Any], task_root: str, pod: Path, box: Sandbox) -> tuple[dict, dict[str, Artifact]]:
    defs = component.get("outputDefinitions", {})
    artifacts = {}
    for name, spec in defs.get("artifacts", {}).items():
        uri = f"{task_root}/{name}"
        schema = spec.get("artifactType", {}).get("schemaTitle", "system.Artifact")
        artifacts[name] = Artifact(name, uri, box.local_path(uri), schema)
    outputs = {
        "parameters": {n: {"outputFile": str(pod / "tmp/kfp/outputs" / n)} for n in defs.get("parameters", {})},
        "artifacts": {n: {"artifacts": [a.runtime()]} for n, a in artifacts.items()},
        "outputFile": os.path.join(box.local_path(task_root), "output_metadata.json"),
    }
    return outputs, artifacts


def executor_input(inputs: Inputs, outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {
            "parameterValues": {k: values.to_json(v) for k, v in inputs.parameters.items()},
            "artifacts": {k: {"artifacts": [a.runtime() for a in v]} for k, v in inputs.artifacts.items()},
        },
        "outputs": outputs,
    }


def _with_defaults(inputs: Inputs, component: dict[str, Any]) -> Inputs:
    """addDefaultParams: only for the command line; the executor input given to execute() has none."""
    params = dict(inputs.parameters)
    for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
        if name not in params and "defaultValue" in spec:
            params[name] = values.numbers_as_floats(spec["defaultValue"])
    return Inputs(params, inputs.artifacts, inputs.nil)


_PLACEHOLDER = re.compile(r"\{\{\$(\.[^}]*)?\}\}")


def _placeholder(match: re.Match[str], data: dict[str, Any], box: Sandbox) -> str:
    path = match.group(1) or ""
    if not path:
        return json.dumps(data, separators=(",", ":"))
    found = re.fullmatch(r"\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](?:\.(\w+))?", path)
    if found is None:
        raise NotReplayed(f"placeholder {match.group(0)!r}")
    side, kind, name, attr = found.groups()
    if kind == "parameters" and side == "inputs":
        return values.value_to_text(data["inputs"]["parameterValues"].get(name))
    if kind == "parameters":
        return str(data["outputs"]["parameters"][name]["outputFile"])
    artifact = data[side]["artifacts"][name]["artifacts"][0]
    return str(artifact["uri"]) if attr == "uri" else box.local_path(artifact["uri"])


def command_line(container: dict[str, Any], data: dict[str, Any], box: Sandbox) -> list[str]:
    argv = [*container.get("command", []), *container.get("args", [])]
    return [_PLACEHOLDER.sub(lambda m: _placeholder(m, data, box), str(a)) for a in argv]


def launch(ex: Execution, container: dict[str, Any], component: dict[str, Any], inputs: Inputs, box: Sandbox,
           pipeline_root: str) -> None:  # fmt: skip
    """One attempt: run the executor, then collect its outputs into `ex` (state SUCCEEDED or FAILED)."""
    task_root = f"{pipeline_root}/{ex.name}/{uuid.uuid4().hex[:12]}"
    pod = box.root / "pods" / uuid.uuid4().hex[:12]
    (pod / "tmp/kfp/outputs").mkdir(parents=True)
    box.s3_root = pod / "s3"
    _download_inputs(inputs, box)
    outputs, artifacts = _outputs(component, task_root, pod, box)
    for artifact in artifacts.values():  # prepareOutputFolders
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
    Path(outputs["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
    # compileCmdAndArgs fills `{{$}}` from the executor input with the component defaults added
    argv = command_line(container, executor_input(_with_defaults(inputs, component), outputs), box)
    try:
        done = subprocess.run(argv, env=box.process_env(container), cwd=pod, capture_output=True, text=True,
                              timeout=box.timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        ex.state, ex.reason = FAILED, f"timed out after {box.timeout}s"
        return
    ex.log += done.stdout + done.stderr
    if done.returncode != 0:
        ex.state, ex.reason = FAILED, f"exit code {done.returncode}"
        return
    _collect(ex, component, outputs, artifacts)
    if ex.state == SUCCEEDED and box.store is not None:  # uploadOutputArtifacts
        for artifact in artifacts.values():
            if artifact.uri.startswith("s3://"):
                objstore.upload(box.store, Path(artifact.path), artifact.uri)


def _download_inputs(inputs: Inputs, box: Sandbox) -> None:
    """downloadArtifacts: each remote input artifact to the pod's local path for its URI."""
    if box.store is None:
        return
    for arts in inputs.artifacts.values():
        for artifact in arts:
            if artifact.uri.startswith("s3://"):
                objstore.download(box.store, artifact.uri, Path(box.local_path(artifact.uri)))


def _collect(ex: Execution, component: dict[str, Any], outputs: dict[str, Any], artifacts: dict[str, Artifact]) -> None:
    written: dict[str, Any] = {}
    metadata_file = Path(outputs["outputFile"])
    if metadata_file.exists():
        written = json.loads(metadata_file.read_text() or "{}")
    params = {k: values.numbers_as_floats(v) for k, v in written.get("parameterValues", {}).items()}
    defs = component.get("outputDefinitions", {}).get("parameters", {})
    for name, spec in defs.items():
        if name in params:
            continue
        path = Path(outputs["parameters"][name]["outputFile"])
        if not path.exists():
            ex.state, ex.reason = FAILED, f"failed to read output parameter name={name!r}: no such file"
            return
        try:
            params[name] = values.text_to_value(path.read_text(), spec["parameterType"])
        except values.ValueError_ as exc:
            ex.state, ex.reason = FAILED, str(exc)
            return
    for name, artifact in artifacts.items():
        updated = written.get("artifacts", {}).get(name, {}).get("artifacts", [{}])[0]
        artifact.metadata = updated.get("metadata", artifact.metadata)
        if not os.path.exists(artifact.path):
            ex.state, ex.reason = FAILED, f"failed to upload output artifact {name!r}: {artifact.path} does not exist"
            return
    ex.parameters, ex.artifacts, ex.state = params, artifacts, SUCCEEDED
