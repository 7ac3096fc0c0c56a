"""The replay's records: one `Execution` per task instance, as the KFP v2 backend keeps them in ML Metadata.

Takes nothing; gives the data classes the other modules fill in. A container task's `parameters` are
its output parameter values (protobuf Values: every number a float) and `artifacts` its output
artifacts (`minio://` URI, sandbox path); a DAG's `children` are the executions of its tasks by task
name, a loop's `iterations` one DAG execution per item (`backend/src/v2/metadata/client.go`: DAG
executions with `iteration_count` / `iteration_index`, `parameter_producer_task`).

States: SUCCEEDED, FAILED, SKIPPED (its trigger condition was false: the driver ran, Argo skipped the
executor or DAG with `when: condition != false`), NOT_TRIGGERED (never started: an upstream task did
not succeed, so Argo omitted it (`depends: x.Succeeded`), the DAG had already failed (Argo `failFast`),
or an exit task the backend never attaches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, SKIPPED, NOT_TRIGGERED = "SUCCEEDED", "FAILED", "SKIPPED", "NOT_TRIGGERED"


class BackendRejected(Exception):
    """The run is never created: the backend's compiler or Argo's validation refuses the pipeline."""


class NotReplayed(Exception):
    """A construct this replay does not implement."""


@dataclass
class Artifact:
    name: str
    uri: str
    path: str  # the sandbox folder standing for the launcher's /minio/... download path
    schema: str = "system.Artifact"
    metadata: dict[str, Any] = field(default_factory=dict)

    def runtime(self) -> dict[str, Any]:
        """A RuntimeArtifact as the executor input holds it."""
        return {"name": self.name, "type": {"schemaTitle": self.schema}, "uri": self.uri, "metadata": self.metadata}

    def custom_properties(self) -> dict[str, Any]:
        """The artifact's metadata as ML Metadata records it and the run's UI reads it
        (`backend/src/v2/metadata/converter.go` toMLMDArtifact, StructValueToMLMDValue): a number is a
        double, a string a string, a bool an int, a list `{"list": [...]}`, a map `{"struct": {...}}`."""
        return {k: _mlmd_value(v) for k, v in self.metadata.items() if k != "_kfp_workspace"}


def _mlmd_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return {"list": value}
    if isinstance(value, dict):
        return {"struct": value}
    if isinstance(value, str):
        return value
    raise NotReplayed(f"artifact metadata of type {type(value).__name__}")  # converter.go: unsupported


@dataclass
class Execution:
    name: str  # the KFP task name
    kind: str  # "container" | "dag" | "loop" | "iteration" | "driver" (a driver-only task: CreatePVC)
    path: str  # where it ran: "root/for-loop-2[0]/a"
    component: str = ""
    state: str = NOT_TRIGGERED
    reason: str = ""
    iterations_of: tuple[int, ...] = ()  # the iteration index of every loop around it, outermost first
    inputs: dict[str, Any] = field(default_factory=dict)  # resolved parameter values
    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    children: dict[str, Execution] = field(default_factory=dict)
    iterations: list[Execution] = field(default_factory=list)
    outputs_spec: dict[str, Any] = field(default_factory=dict)  # a DAG component's dag.outputs
    attempts: int = 0
    runs: int = 0  # an exit task runs once per task it is attached to
    log: str = ""

    def walk(self) -> list[Execution]:
        """This execution and every one under it."""
        out = [self]
        for child in [*self.children.values(), *self.iterations]:
            out += child.walk()
        return out


@dataclass
class Run:
    """A replayed run: its root DAG execution, the run id, and the notes of what was not replayed."""

    pipeline: str
    run_id: str
    root: Execution
    sandbox: str
    notes: list[str] = field(default_factory=list)
    platform: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.root.state

    def executions(self) -> list[Execution]:
        return self.root.walk()

    def containers(self) -> list[Execution]:
        return [e for e in self.executions() if e.kind in ("container", "driver")]

    def find(self, task: str) -> list[Execution]:
        """Every instance of the container / driver task called `task`, in run order."""
        return [e for e in self.containers() if e.name == task]
