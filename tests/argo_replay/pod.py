"""Container and script templates run as local processes (argo-workflows v4.1.2).

- The pod (`workflow/controller/workflowpod.go`): the template's volumes plus the workflow's
  `spec.volumes` and `volumeClaimTemplates`; a mount naming no volume makes pod creation fail (node
  Error). Volumes become folders: a PVC (or claim template) is `root/volumes/<volume name>`, shared by
  every pod of the replay (a volume of a TFJob or predictor with the same name is the same folder);
  an emptyDir is per pod; a downwardAPI volume holds one file per item with the pod's
  `metadata.annotations['k']` / `metadata.labels['k']` / `metadata.name` / `metadata.namespace`
  (annotations = `podMetadata` + the substituted template `metadata`); configMap and secret volumes
  are empty folders (noted). Every container also gets a private `/tmp`. A mount path (at a path
  boundary) is replaced by its folder in command, args, env values, workingDir and output paths,
  also inside a value handed over base64-encoded (decoded, mapped, encoded again).
- Env: the process gets this machine's environment (PATH led by the venv), what the kubelet adds
  to every container (`KUBERNETES_SERVICE_HOST`/`_PORT` of a default cluster, `HOSTNAME` = the pod
  name), then the container's `env` values; a `secretKeyRef` takes the key of a Secret the replay
  was given (`secrets`; kubernetes v1.31 `pkg/kubelet/kubelet_pods.go` makeEnvironmentVariables),
  other `valueFrom` entries (fieldRefs, unknown secrets) are skipped and noted on the node.
- Runs `initContainers` in order (`mirrorVolumeMounts` adds the main container's mounts), then the
  main container (`command` + `args`; a script's `source` is a file appended to `command`), under
  `activeDeadlineSeconds` for the whole pod.
- Phases (`operator.go` inferFailedReason): a non-zero exit is Failed "<container>: Error (exit code
  N)"; the deadline is Failed "Pod was active on the node longer than the specified deadline"; a pod
  that cannot be created is Error.
- Outputs (`workflow/executor/executor.go` SaveParameters): `valueFrom.path` read with one trailing
  newline trimmed; a missing file takes `default`, else the wait container fails (node Error when the
  main container succeeded). `outputs.result` is stdout, kept when the DAG reads it. S3 input and
  output artifacts: `artifacts.py`.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

from tests.argo_replay import artifacts, gojson
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.procs import exit_code

SCHEDULING = ("nodeSelector", "affinity", "tolerations", "serviceAccountName")  # template fields of the pod

DEADLINE = "Pod was active on the node longer than the specified deadline"


class PodError(Exception):
    """The pod cannot be created: the node is an Error."""


def workflow_volumes(ctx: Ctx) -> dict[str, dict[str, Any]]:
    vols = {v["name"]: v for v in ctx.spec.get("volumes") or []}
    for claim in ctx.spec.get("volumeClaimTemplates") or []:
        name = (claim.get("metadata") or {}).get("name")
        vols[name] = {"name": name, "persistentVolumeClaim": {"claimName": f"{ctx.name}-{name}"}}
    return vols


def pod_meta(ctx: Ctx, node: Node, tmpl: dict[str, Any]) -> dict[str, Any]:
    base, own = ctx.spec.get("podMetadata") or {}, tmpl.get("metadata") or {}
    labels = {**(base.get("labels") or {}), **(own.get("labels") or {}), "workflows.argoproj.io/workflow": ctx.name}
    annotations = {**(base.get("annotations") or {}), **(own.get("annotations") or {})}
    annotations |= {"workflows.argoproj.io/node-name": node.name, "workflows.argoproj.io/node-id": node.id}
    return {
        "name": ctx.pod_name(node.name, tmpl.get("name", "")),
        "namespace": ctx.namespace,
        "labels": labels,
        "annotations": annotations,
    }


def _field(meta: dict[str, Any], path: str) -> str:
    m = re.fullmatch(r"metadata\.(annotations|labels)\['([^']*)'\]", path)
    if m:
        return meta[m.group(1)].get(m.group(2), "")
    if path in ("metadata.annotations", "metadata.labels"):
        values = meta[path.split(".")[1]]
        return "".join(f'{k}="{gojson.quote(v)}"\n' for k, v in sorted(values.items()))
    if path in ("metadata.name", "metadata.namespace"):
        return meta[path.split(".")[1]]
    raise PodError(f"downwardAPI fieldRef {path} is not replayed")


def volume_folder(ctx: Ctx, pod_dir: Path, vol: dict[str, Any], meta: dict[str, Any], notes: list[str]) -> Path:
    name = vol["name"]
    if "persistentVolumeClaim" in vol:
        folder = ctx.root / "volumes" / name
    else:
        folder = pod_dir / "volumes" / name
        if "downwardAPI" in vol:
            for item in vol["downwardAPI"].get("items") or []:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(_field(meta, (item.get("fieldRef") or {}).get("fieldPath", "")))
        elif "emptyDir" not in vol:
            notes.append(f"volume {name}: {', '.join(k for k in vol if k != 'name')} is not replayed (an empty folder)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mounts(
    ctx: Ctx,
    pod_dir: Path,
    container: dict[str, Any],
    volumes: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    notes: list[str],
    index: str,
) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for i, vm in enumerate(container.get("volumeMounts") or []):
        vol = volumes.get(vm.get("name"))
        if vol is None:
            raise PodError(
                f'pods "{meta["name"]}" is invalid: spec.{index}.volumeMounts[{i}].name: Not found: "{vm.get("name")}"'
            )
        folder = volume_folder(ctx, pod_dir, vol, meta, notes) / (vm.get("subPath") or "")
        folder.mkdir(parents=True, exist_ok=True)
        out[vm["mountPath"].rstrip("/") or "/"] = folder
    if "/tmp" not in out:
        out["/tmp"] = pod_dir / "tmp" / container.get("name", "main")
        out["/tmp"].mkdir(parents=True, exist_ok=True)
    return out


_B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def mapper(mount_map: dict[str, Path]):
    """Mount paths (at path boundaries) -> folders, also inside a base64 value (`sprig.b64enc`)."""
    paths = sorted((p for p in mount_map if p != "/"), key=len, reverse=True)
    if not paths:
        return lambda text: text
    rx = re.compile(r"(?<![\w.\-/])(" + "|".join(map(re.escape, paths)) + r")(?=/|$|[^\w.\-])")

    def plain(text: str) -> str:
        return rx.sub(lambda m: str(mount_map[m.group(1)]), text)

    def mapped(text: str) -> str:
        if _B64.match(text):
            try:
                decoded = base64.b64decode(text, validate=True).decode()
            except ValueError:
                return plain(text)
            if plain(decoded) != decoded:
                return base64.b64encode(plain(decoded).encode()).decode()
        return plain(text)

    return mapped


KUBERNETES = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
}


def process_env(ctx: Ctx, container: dict[str, Any], mapped, notes: list[str], pod_name: str = "") -> dict[str, str]:
    env = {**ctx.base_env, **KUBERNETES, "HOSTNAME": pod_name}
    secrets = getattr(ctx, "secrets", {}) or {}
    for e in container.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
        value = secrets.get(ref.get("name"), {}).get(ref.get("key")) if ref else None
        if value is not None:  # the kubelet reads the Secret's key (kubelet_pods.go makeEnvironmentVariables)
            env[e["name"]] = value
        elif "valueFrom" in e:
            notes.append(f"env {e['name']}: valueFrom {', '.join(e['valueFrom'])} is not replayed (unset)")
            env.pop(e["name"], None)
        else:
            env[e["name"]] = mapped(gojson.any_string(e.get("value", "")))
    return env


def run(ctx: Ctx, argv: list[str], env: dict[str, str], cwd: Path, log: Path, deadline: float, limit: float):
    """Run one process; (exit code, why stopped: None, "deadline" or "limit", start error)."""
    try:
        proc = ctx.procs.start(argv, env, cwd, log)
    except OSError as err:
        return (126 if isinstance(err, PermissionError) else 127), None, f'exec: "{argv[0]}": {err.strerror}'
    while (code := exit_code(proc)) is None:
        now = time.time()
        if now >= min(deadline, limit):
            ctx.procs.stop(proc)
            return exit_code(proc) or 137, ("deadline" if now >= deadline else "limit"), None
        ctx.procs.wait(proc, min(0.2, min(deadline, limit) - now))
    if proc in ctx.procs.running:
        ctx.procs.running.remove(proc)
    return code, None, None


def deadline_seconds(tmpl: dict[str, Any]) -> float:
    value = tmpl.get("activeDeadlineSeconds")
    return float(gojson.any_string(value)) if value not in (None, "") else float("inf")


def run_container(ctx: Ctx, node: Node, tmpl: dict[str, Any], keep_result: bool = False) -> None:
    meta = pod_meta(ctx, node, tmpl)
    placed = [key for key in SCHEDULING if tmpl.get(key)]
    if placed:  # argo-workflows v4.1 workflowpod.go addSchedulingConstraints: on the pod; here one machine
        node.notes.append(f"{', '.join(placed)}: scheduling is not replayed (every pod runs on this machine)")
    pod_dir = ctx.root / "pods" / meta["name"]
    volumes = {**workflow_volumes(ctx), **{v["name"]: v for v in tmpl.get("volumes") or []}}
    main = dict(tmpl.get("container") or tmpl.get("script") or {})
    source = main.pop("source", None) if "script" in tmpl else None
    main.setdefault("name", "main")
    started = time.time()
    deadline, limit = started + deadline_seconds(tmpl), started + ctx.node_limit
    inits = [dict(c) for c in tmpl.get("initContainers") or []]
    for c in inits:  # workflowpod.go mirrorVolumeMounts
        if c.get("mirrorVolumeMounts"):
            c["volumeMounts"] = [*(c.get("volumeMounts") or []), *(main.get("volumeMounts") or [])]
    containers = [(c, f"initContainers[{i}]") for i, c in enumerate(inits)]
    plans = []
    try:
        inputs = artifacts.load_inputs(ctx, tmpl, pod_dir)  # the executor's init: only the main container sees them
        for c, where in [*containers, (main, "containers[0]")]:
            extra = inputs if c is main else {}
            mapped = mapper({**mounts(ctx, pod_dir, c, volumes, meta, node.notes, where), **extra})
            plans.append((c, mapped))
    except (PodError, artifacts.ArtifactError) as err:
        ctx.finish(node, "Error", str(err))
        return
    if source is not None:
        (pod_dir / "script").write_text(plans[-1][1](source))
    node.log = str(pod_dir / "main.log")
    for c, mapped in plans:
        argv = [mapped(gojson.any_string(a)) for a in (c.get("command") or []) + (c.get("args") or [])]
        if c is main and source is not None:  # argoexec writes the source to a file, the last argument
            argv.append(str(pod_dir / "script"))
        if not c.get("command"):
            ctx.finish(node, "Error", f"container {c['name']}: no command; the image's entrypoint is not replayed")
            return
        cwd = Path(mapped(c["workingDir"])) if c.get("workingDir") else pod_dir
        cwd.mkdir(parents=True, exist_ok=True)
        code, stopped, start_error = run(
            ctx,
            argv,
            process_env(ctx, c, mapped, node.notes, meta["name"]),
            cwd,
            pod_dir / f"{c['name']}.log",
            deadline,
            limit,
        )
        if c is main:
            node.exit_code = str(code)
        if stopped == "limit":
            ctx.finish(
                node, "Error", f"replay: {c['name']} exceeded the replay's {ctx.node_limit:.0f} s limit for a node"
            )
            return
        if stopped == "deadline":
            ctx.finish(node, "Failed", DEADLINE)
            break
        if code != 0:
            detail = f": {start_error}" if start_error else ""
            ctx.finish(node, "Failed", f"{c['name']}: Error (exit code {code}){detail}")
            break
    if c is main and keep_result:
        text = (pod_dir / "main.log").read_text(errors="replace") if (pod_dir / "main.log").exists() else ""
        node.result = text[:-1] if text.endswith("\n") else text
    if c is main:
        save_parameters(ctx, node, tmpl, plans[-1][1])
        try:
            artifacts.save_outputs(ctx, tmpl, plans[-1][1])
        except artifacts.ArtifactError as err:
            if not node.fulfilled:
                ctx.finish(node, "Error", str(err))
    if not node.fulfilled:
        ctx.finish(node, "Succeeded")


def save_parameters(ctx: Ctx, node: Node, tmpl: dict[str, Any], mapped) -> None:
    outputs = {}
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        path = (p.get("valueFrom") or {}).get("path")
        if not path:
            continue
        try:
            value = Path(mapped(path)).read_bytes().decode(errors="replace")  # os.ReadFile: no newline translation
        except OSError:
            if (p.get("valueFrom") or {}).get("default") is None:
                if not node.fulfilled:
                    why = f"wait: Error (exit code 1): open /mainctrfs{path}: no such file or directory"
                    ctx.finish(node, "Error", why)
                break
            value = gojson.any_string(p["valueFrom"]["default"])
        outputs[p["name"]] = value[:-1] if value.endswith("\n") else value
    if outputs or (tmpl.get("outputs") or {}).get("parameters"):
        node.outputs = outputs
