"""Support for the local executor tests: a scratch project folder, a helper step script, runners.

Every pipeline here is made of `task` steps running `python h.py MODE ...` (no TensorFlow), so the
whole folder runs in seconds. `h.py` counts its executions in `counts/NAME` so tests can check
what ran and how often.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

HELPER = r"""
import json, os, sys, time
mode, name, *rest = sys.argv[1:]
os.makedirs("counts", exist_ok=True)
with open(os.path.join("counts", name), "a") as f:
    f.write("%f\n" % time.time())
n = len(open(os.path.join("counts", name)).read().split())
out = os.environ.get("DMLC_OUTPUTS", ".")
def put(key, value):
    with open(os.path.join(out, key), "w") as f:
        f.write(json.dumps(value))
if mode == "ok":
    put("v", rest[0] if rest else n)
elif mode == "num":
    put("v", json.loads(rest[0]))
elif mode == "metrics":
    put("metrics", json.loads(rest[0]))
elif mode == "square":
    put("v", json.loads(rest[0]) ** 2)
elif mode == "sum":
    put("total", sum(json.loads(rest[0])))
elif mode == "flaky":
    if n == 1:
        sys.exit(75)
    put("v", n)
elif mode == "fail":
    print("boom", file=sys.stderr)
    sys.exit(1)
elif mode == "sleep":
    time.sleep(float(rest[0]))
    put("v", float(rest[0]))
elif mode == "fail_on":
    if json.loads(rest[0]) == json.loads(rest[1]):
        sys.exit(1)
    put("v", json.loads(rest[0]))
elif mode == "slow_first":
    if n == 1:
        time.sleep(60)
    put("v", n)
elif mode == "artifact":
    os.makedirs(os.path.join(out, "data"))
    with open(os.path.join(out, "data", "part-0"), "w") as f:
        f.write(rest[0])
elif mode == "read":
    put("v", open(os.path.join(rest[0], "part-0")).read())
elif mode == "spawn_and_hang":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open("child.pid", "w") as f:
        f.write(str(child.pid))
    time.sleep(120)
"""


def _pythonpath() -> str:
    """`dmlc_targets` must be importable by the executor subprocesses; link it if the install lacks it."""
    parts = [os.environ.get("PYTHONPATH", "")]
    if importlib.util.find_spec("dmlc_targets") is None:
        shim = Path(os.environ.get("TMPDIR", "/tmp")) / f"dmlc-shim-{os.getuid()}"
        shim.mkdir(exist_ok=True)
        link = shim / "dmlc_targets"
        if not link.exists():
            link.symlink_to(ROOT / "targets")
        sys.path.insert(0, str(shim))
        parts.insert(0, str(shim))
    return os.pathsep.join(p for p in parts if p)


PYTHONPATH = _pythonpath()


class Project:
    """A scratch folder with `h.py`; write pipelines into it and run them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "h.py").write_text(HELPER)

    def h(self, *args: Any) -> str:
        """The `command = [...]` text for one helper call."""
        items = ["python", str(self.path / "h.py"), *map(str, args)]
        return "[" + ", ".join(f'"{a}"' for a in items) + "]"

    def write(self, text: str, name: str = "p.dml") -> Path:
        file = self.path / name
        file.write_text(text)
        return file

    def count(self, name: str) -> int:
        file = self.path / "counts" / name
        return len(file.read_text().split()) if file.exists() else 0

    def times(self, name: str) -> list[float]:
        file = self.path / "counts" / name
        return [float(t) for t in file.read_text().split()] if file.exists() else []

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`dmlc ARGS` as a subprocess in the project folder."""
        env = {**os.environ, "PYTHONPATH": PYTHONPATH}
        cmd = [sys.executable, "-m", "dmlc.cli", *args]
        return subprocess.run(cmd, cwd=self.path, env=env, capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": PYTHONPATH}
        cmd = [sys.executable, "-m", "dmlc.cli", *args]
        return subprocess.Popen(
            cmd, cwd=self.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def execute(self, file: str = "p.dml", **kwargs: Any) -> tuple[int, str]:
        """`dmlc run FILE --local` in this process (fast: no interpreter start-up)."""
        import io

        from dmlc_targets.local.runner import RunRequest, execute

        out = io.StringIO()
        old = os.getcwd()
        os.chdir(self.path)
        try:
            code = execute(RunRequest(file, **kwargs), out)
        finally:
            os.chdir(old)
        return code, out.getvalue()

    def store(self) -> Any:
        from dmlc_targets.local.store import Store

        return Store(self.path / ".dmlc" / "metadata.db")
