"""The replay's records: nodes as Argo's `status.nodes` holds them, and the state of one replay.

Node names, IDs and pod names follow argo-workflows v4.1.2: a task node is `<boundary>.<task>`, a
fan-out child `<task>(<index>:<item>)` (`workflow/controller/operator.go` generateNodeName), a retry
attempt `<node>(<n>)`; the node ID is `<workflow>-<fnv32a(name)>` and the pod name
`<workflow>-<template>-<fnv32a(name)>` (`workflow/util/pod_name.go`, v2 names). Phases are Argo's
(Pending, Running, Succeeded, Failed, Error, Skipped, Omitted). A node or workflow left `Running`
is one the real controller would never finish: it would wait forever (a requeued reference that can
never resolve, a resource whose conditions never match); `message` says why.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.argo_replay import gojson

FINAL = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")


@dataclass
class Node:
    """One entry of the workflow's node status (plus what the replay saw)."""

    name: str  # Argo's node name: `<workflow>.<task>`, `<workflow>.<dag task>.<task>`, ...
    id: str
    type: str  # DAG, TaskGroup, Retry, Pod, Skipped (Argo's type of Omitted/Skipped/Error-before-a-pod nodes)
    template: str | None
    boundary: str  # ID of the DAG node the task belongs to
    phase: str = "Pending"
    message: str = ""
    task_path: str = ""  # the name without the workflow's: `model(0:cnn)`, `body(1:b).check`
    labels: dict[str, str] = field(default_factory=dict)  # the (substituted) template's metadata.labels
    outputs: dict[str, str] | None = None  # output parameters, name -> text
    result: str | None = None  # outputs.result (stdout), when the DAG reads it
    exit_code: str | None = None
    children: list[str] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)
    item: Any = None  # the loop item of a fan-out instance, as written in withItems / withParam
    index: int | None = None  # its index in the expansion
    attempts: int = 0  # attempts of a node with a retryStrategy (0 without one)
    retried: bool = False  # this node is one attempt of a Retry node
    memoized: bool = False  # a memoization hit: nothing ran, outputs from the cache
    memo: tuple[str, str] | None = None  # (configMap, key)
    waits: list[float] = field(default_factory=list)  # retry backoffs in seconds (recorded, not slept)
    started: float = 0.0
    finished: float = 0.0
    log: str | None = None  # stdout of the main container (stderr next to it, `.err`)
    notes: list[str] = field(default_factory=list)  # what the replay skipped (secret env, volumes, ...)
    resource: dict[str, Any] | None = None  # a resource template's object, with its synthesized status

    @property
    def fulfilled(self) -> bool:
        return self.phase in FINAL

    @property
    def failed_or_error(self) -> bool:
        return self.phase in ("Failed", "Error")

    def __repr__(self) -> str:
        extra = f" {self.message!r}" if self.message else ""
        return f"<Node {self.task_path or self.name} {self.type} {self.phase}{extra}>"


@dataclass
class Replay:
    """What replaying one workflow gave: the workflow phase and every node."""

    name: str
    phase: str
    message: str
    nodes: dict[str, Node]
    root: Path
    hangs: list[str] = field(default_factory=list)
    _ctx: Any = None

    def node(self, path: str) -> Node:
        """A node by task path (`model(0:cnn)`, `body(1:b).check`) or full node name."""
        for n in self.nodes.values():
            if path in (n.task_path, n.name):
                return n
        raise KeyError(f"no node {path!r}; nodes: {sorted(n.task_path for n in self.nodes.values())}")

    @property
    def gauges(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """(metric name, sorted labels) -> value of every template-level gauge the controller set."""
        return dict(self._ctx.gauges) if self._ctx is not None else {}

    @property
    def metric_errors(self) -> list[str]:
        return list(self._ctx.metric_errors) if self._ctx is not None else []

    def phases(self) -> dict[str, str]:
        """Task path -> phase, for every node but the workflow's own."""
        return {n.task_path: n.phase for n in self.nodes.values() if n.task_path}

    def outputs(self, path: str) -> dict[str, str]:
        return dict(self.node(path).outputs or {})

    def close(self) -> None:
        """Stop what the replay left running (servers kept with keep_servers=True)."""
        if self._ctx is not None:
            self._ctx.procs.stop_all()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Ctx:
    """The state of one replay: the workflow, its global scope and its nodes."""

    def __init__(self, spec: dict[str, Any], meta: dict[str, Any], name: str, root: Path, env: dict[str, str]) -> None:
        self.spec, self.meta, self.name, self.root = spec, meta, name, root
        self.namespace = meta.get("namespace") or "argo"
        self.templates = {t["name"]: t for t in spec.get("templates") or []}
        self.nodes: dict[str, Node] = {}
        self.clock = 0.0  # seconds of backoff the replay did not sleep
        self.globals: dict[str, str] = {}
        bin_dir = str(Path(sys.executable).parent)
        self.base_env = {
            **os.environ,
            **env,
            "PATH": bin_dir + os.pathsep + env.get("PATH", os.environ.get("PATH", "")),
        }
        self.node_limit, self.tfjob_limit = 120.0, 600.0
        self.hangs: list[str] = []
        self.procs: Any = None
        self.memo: Any = None
        self.schemas: Any = None
        self.services: dict[str, Any] = {}
        self.transient_pattern: str | None = None
        self.secrets: dict[str, dict[str, str]] = {}  # Kubernetes Secrets the executor reads (S3 credentials)
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}  # template Prometheus metrics
        self.metric_errors: list[str] = []  # the workflow's MetricsError condition messages

    def now(self) -> float:
        return time.time() + self.clock

    def node_id(self, name: str) -> str:
        return name if name == self.name else f"{self.name}-{gojson.fnv32a(name)}"

    def pod_name(self, node_name: str, template: str) -> str:
        if node_name == self.name:
            return self.name
        prefix = f"{self.name}-{template}" if template else self.name
        return f"{prefix[:242]}-{gojson.fnv32a(node_name)}"

    def get(self, name: str) -> Node | None:
        return self.nodes.get(self.node_id(name))

    def new_node(
        self, name: str, type_: str, template: str | None, boundary: str, phase: str = "Pending", message: str = ""
    ) -> Node:
        node = Node(
            name=name,
            id=self.node_id(name),
            type=type_,
            template=template,
            boundary=boundary,
            phase=phase,
            message=message,
            started=self.now(),
        )
        node.task_path = name[len(self.name) + 1 :] if name.startswith(self.name + ".") else ""
        raw = self.templates.get(template or "") or {}
        node.labels = dict((raw.get("metadata") or {}).get("labels") or {})
        if node.fulfilled:
            node.finished = node.started
        if node.id in self.nodes:
            raise RuntimeError(f"node {name} already initialized")
        self.nodes[node.id] = node
        return node

    def add_child(self, parent: str, child: str) -> None:
        p, c = self.get(parent), self.node_id(child)
        if p is not None and c not in p.children:
            p.children.append(c)

    def finish(self, node: Node, phase: str, message: str | None = None) -> Node:
        node.phase = phase
        if message is not None:
            node.message = message
        if node.fulfilled and not node.finished:
            node.finished = self.now()
        return node
