"""User code in the image (`dmlc build`, and the check `compile` makes for targets that run images).

Takes a validated pipeline and its file; gives the user code it references (`task { run = "mod:fn" }`,
`train { model = "pkg.mod:build" }`, also as `for_each` items of `model = each`), found next to the
pipeline file and followed through its imports (read with `ast`, never executed), and a reproducible
build context: a Dockerfile `FROM` the runtime image (its GPU variant when a step with user code asks
for GPUs), the code under `app/`, an optional requirements file. The context is named by the sha256 of
its files, so the same code gives the same tag. `dmlc build` writes it, builds it with the first OCI
builder on PATH (docker, podman, buildah, nerdctl; else prints the command) and records the image in
`.dmlc/builds.json` beside the pipeline file; `compile` for a target that runs images (`runs_in_image`)
then uses that image for the steps with user code, or gives DML104 at the reference when the code is
not in the step's image. A local run keys results on `code_digest` (the same files) instead.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dmlc.diagnostics.catalogue import DML104, DML200
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.model import BUILTIN_MODELS, DEFAULT_IMAGE, GPU_IMAGE, Pipeline, Task, Train
from dmlc.parse.document import Document

RECORD = Path(".dmlc") / "builds.json"  # next to the pipeline file: compile finds it from any folder
BUILDERS = {
    "docker": ["docker", "build", "-t", "{tag}", "{dir}"],
    "podman": ["podman", "build", "-t", "{tag}", "{dir}"],
    "buildah": ["buildah", "bud", "-t", "{tag}", "{dir}"],
    "nerdctl": ["nerdctl", "build", "-t", "{tag}", "{dir}"],
}
MAX_FILE = 16 << 20  # a user module larger than this is not source code


@dataclass
class Reference:
    step: str
    path: tuple[str | int, ...]  # the attribute that names the code
    ref: str  # "pkg.module:function"

    @property
    def module(self) -> str:
        return self.ref.partition(":")[0]


@dataclass
class Context:
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    base: str = DEFAULT_IMAGE

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


def references(pipeline: Pipeline, root: Path | None = None) -> list[Reference]:
    """Every place the pipeline names Python code, in pipeline order; with `root`, only the code that
    lives there (user code: `json:dumps` or an installed package is the image's, not the pipeline's)."""
    out = []
    for name, step in pipeline.steps.items():
        if isinstance(step, Task) and step.run:
            out.append(Reference(name, ("run",), step.run))
        if isinstance(step, Train):
            out += _model_refs(name, step)
    return out if root is None else [r for r in out if locate(r.module, root) is not None]


def _model_refs(name: str, step: Train) -> list[Reference]:
    if isinstance(step.model, str) and _is_code(step.model):
        return [Reference(name, ("model",), step.model)]
    items = step.for_each if isinstance(step.for_each, list) else []
    return [Reference(name, ("for_each", i), m) for i, m in enumerate(items) if isinstance(m, str) and _is_code(m)]


def _is_code(model: str) -> bool:
    return ":" in model and model not in BUILTIN_MODELS


def gather(pipeline: Pipeline, root: Path, requirements: Path | None = None) -> Context:
    """The build context of the pipeline's user code (DML200 when a module cannot be found)."""
    refs = references(pipeline, root)
    gpu = any(_gpus(pipeline, r.step) for r in refs)
    ctx = Context(base=GPU_IMAGE if gpu else DEFAULT_IMAGE)
    for module in dict.fromkeys(r.module for r in refs):
        for path in _closure(module, root):
            ctx.files["app/" + path.relative_to(root).as_posix()] = _read(path)
    if requirements is not None:
        ctx.files["requirements.txt"] = _read(requirements)
    ctx.files["Dockerfile"] = dockerfile(ctx.base, requirements is not None).encode()
    return ctx


def _gpus(pipeline: Pipeline, name: str) -> bool:
    from dmlc.ir.effective import effective

    resources = effective(pipeline, name).resources
    return bool(resources is not None and getattr(resources, "gpu", None))


def _read(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_FILE of them: never blocks on a FIFO, never reads a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _missing(f"`{path}` is not a regular file (a device, FIFO or socket)")
            data = os.read(fd, MAX_FILE + 1)
            while len(data) <= MAX_FILE and (more := os.read(fd, MAX_FILE + 1 - len(data))):
                data += more
        finally:
            os.close(fd)
    except OSError as exc:
        raise _missing(f"cannot read `{path}`: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE:
        raise _missing(f"`{path}` is larger than {MAX_FILE >> 20} MiB; it is not a Python source file")
    return data


def _missing(message: str) -> DmlError:
    help_ = "user code lives next to the pipeline file (a module `m.py` or a package folder `pkg/`)"
    return DmlError([Diagnostic(DML200, message, Label(None), help=help_)])


def code_digest(pipeline: Pipeline, step: str, root: Path) -> str | None:
    """The sha256 of the user code a step runs from `root` (its modules and what they import), or None
    when it runs none there: a local run keys results on it, as a cluster run keys them on the image."""
    modules = sorted({r.module for r in references(pipeline, root) if r.step == step})
    if not modules:
        return None
    h = hashlib.sha256()
    try:
        for path in sorted({p for m in modules for p in _closure(m, root)}):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(_read(path)).digest())
    except DmlError as exc:  # unreadable code: the step itself will say so when it imports it
        h.update(exc.diagnostics[0].message.encode())
    return h.hexdigest()


def locate(module: str, root: Path) -> Path | None:
    """The file or package folder of a top-level module under `root`, if it is there."""
    top = module.split(".")[0]
    if (root / top).is_dir():
        return root / top
    if (root / f"{top}.py").is_file():
        return root / f"{top}.py"
    return None


def _closure(module: str, root: Path) -> list[Path]:
    """The files of `module` and of every module under `root` it imports, transitively (sorted)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        top = locate(todo.pop(), root)
        if top is None:
            if not seen:
                raise _missing(f"cannot find the module `{module}` next to the pipeline file ({root})")
            continue
        for path in _sources(top):
            if path not in seen:
                seen.add(path)
                todo += [m for m in _imports(path) if locate(m, root) is not None]
    return sorted(seen)


def _sources(top: Path) -> list[Path]:
    """The .py files of a module or package; links are followed only when they stay inside the package
    (a link out of it, or to a device, is not the package's code: `_read` refuses what is not a file)."""
    if not top.is_dir():
        return [top]
    inside = top.resolve()
    found = (p for p in top.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(p for p in found if p.resolve().is_relative_to(inside))


def _imports(path: Path) -> list[str]:
    """Top-level names a module imports (absolute imports; relative ones stay inside its package)."""
    try:
        tree = ast.parse(_read(path), filename=str(path))
    except (SyntaxError, ValueError):
        return []  # the image gets the file as it is; the step will report the error where it runs
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module.split(".")[0])
    return found


def dockerfile(base: str, requirements: bool) -> str:
    lines = [
        "# generated by dmlc build; do not edit. The runtime image plus this pipeline's user code.",
        f"FROM {base}",
        "USER root",
    ]
    if requirements:
        lines += [
            "COPY requirements.txt /opt/dmlc-user/requirements.txt",
            "RUN pip install --no-cache-dir -r /opt/dmlc-user/requirements.txt",
        ]
    lines += ["COPY app/ /opt/dmlc-user/app/", "ENV PYTHONPATH=/opt/dmlc-user/app", "USER 1000", ""]
    return "\n".join(lines)


def write(ctx: Context, folder: Path) -> None:
    """The context as files (a fresh folder each time: nothing stale is built)."""
    from dmlc.atomic import write_bytes

    if folder.exists():
        shutil.rmtree(folder)
    for name, data in sorted(ctx.files.items()):
        write_bytes(folder / name, data)


def tag(repo: str, ctx: Context) -> str:
    return f"{repo}:{ctx.digest[:12]}"


def default_repo(pipeline: Pipeline) -> str:
    return "localhost/dmlc-" + re.sub(r"[^a-z0-9-]+", "-", pipeline.pipeline.lower()).strip("-")


PROBES = {"docker": ["docker", "info"], "podman": ["podman", "info"], "nerdctl": ["nerdctl", "info"]}


def builder_command(image: str, folder: Path) -> tuple[list[str], bool]:
    """The build command of the first usable builder (True), else docker's (False: none can build here;
    a docker CLI without a running engine does not count)."""
    for name, template in BUILDERS.items():
        if shutil.which(name) and _usable(name):
            return [a.format(tag=image, dir=folder) for a in template], True
    return [a.format(tag=image, dir=folder) for a in BUILDERS["docker"]], False


def _usable(name: str) -> bool:
    import subprocess

    probe = PROBES.get(name)
    if probe is None:  # buildah needs no engine
        return True
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def record_path(pipeline_file: str) -> Path:
    return Path(pipeline_file).resolve().parent / RECORD


def record(pipeline_file: str, image: str, ctx: Context) -> None:
    from dmlc.atomic import write_text

    path = record_path(pipeline_file)
    data = _records(path)
    data[str(Path(pipeline_file).resolve())] = {"image": image, "digest": ctx.digest}
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _records(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_image(pipeline_file: str, ctx: Context) -> str | None:
    """The image `dmlc build` recorded for this pipeline file, if it holds the code as it is now."""
    entry = _records(record_path(pipeline_file)).get(str(Path(pipeline_file).resolve()))
    if isinstance(entry, dict) and entry.get("digest") == ctx.digest and isinstance(entry.get("image"), str):
        return entry["image"]
    return None


def place(pipeline: Pipeline, document: Document, target: str) -> tuple[Pipeline, list[Diagnostic]]:
    """For a target that runs images: the pipeline with its user-code steps on the built image, or
    DML104 at every reference whose code is not in its step's image (with the target's own checks)."""
    file = document.source.path
    refs = [r for r in references(pipeline, Path(file).resolve().parent) if _on_runtime_image(pipeline, r.step)]
    if not refs:
        return pipeline, []
    try:
        ctx = gather(pipeline, Path(file).resolve().parent)
    except DmlError:  # the code is not even next to the pipeline: it cannot be in an image either
        ctx = None
    image = recorded_image(file, ctx) if ctx is not None else None
    if image is None:
        stale = ctx is not None and str(Path(file).resolve()) in _records(record_path(file))
        return pipeline, [_not_in_image(r, document, target, file, stale) for r in refs]
    users = {r.step for r in refs}
    steps = {n: s.model_copy(update={"image": image}) if n in users else s for n, s in pipeline.steps.items()}
    return pipeline.model_copy(update={"steps": steps}), []


def _on_runtime_image(pipeline: Pipeline, name: str) -> bool:
    """True when the step runs the stock runtime image, which holds no user code."""
    return (pipeline.steps[name].image or pipeline.image) in (DEFAULT_IMAGE, GPU_IMAGE)


def _not_in_image(ref: Reference, document: Document, target: str, file: str, stale: bool) -> Diagnostic:
    span = document.span(("steps", ref.step, *ref.path))
    message = f"`{ref.module}` is not in the image step `{ref.step}` runs on {target}"
    if stale:
        message += " (the code changed since `dmlc build` recorded an image)"
    help_ = (
        f"run `dmlc build {file}` (it builds the runtime image plus your code and records the image for"
        " compile), or set `image = ...` to an image that holds it"
    )
    return Diagnostic(DML104, message, Label(span, "user code: the stock runtime image does not hold it"), help=help_)


def build_command(
    pipeline: Pipeline, file: str, requirements: str | None, repo: str | None, output: str | None, no_build: bool
) -> int:
    """`dmlc build`: write the context, build it where a builder can, record the image; the exit code."""
    if not references(pipeline, Path(file).resolve().parent):
        print(f"{file}: no user code next to it (`run =` or a custom `model`): {DEFAULT_IMAGE} runs it as it is")
        return 0
    ctx = gather(pipeline, Path(file).resolve().parent, Path(requirements) if requirements else None)
    folder = Path(output or Path(".dmlc") / "build" / pipeline.pipeline)
    write(ctx, folder)
    image = tag(repo or default_repo(pipeline), ctx)
    print(f"build context: {folder} ({len(ctx.files) - 1} files, sha256 {ctx.digest[:12]}, FROM {ctx.base})")
    if not _build(image, folder, no_build):
        return 1
    record(file, image, ctx)
    print(f"image: {image} (recorded: `dmlc compile` uses it for the steps with user code)")
    return 0


def _build(image: str, folder: Path, no_build: bool) -> bool:
    """Run the builder (True when built or when there is none to run: the command is printed)."""
    import subprocess
    import sys

    command, found = builder_command(image, folder)
    if not found or no_build:
        why = "--no-build" if found else "no usable OCI builder here (docker, podman, buildah, nerdctl)"
        print(f"{why}: not built; build it with:\n  {' '.join(command)}")
        return True
    if subprocess.run(command).returncode != 0:
        print(f"error: `{' '.join(command)}` failed; the image was not recorded", file=sys.stderr)
        return False
    return True
