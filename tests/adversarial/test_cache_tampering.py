"""A tampered cache is never served (issue 12): an edited, deleted or relinked output, an entry.json of
the wrong shape or with an edited value. Each case: two runs fill and hit the cache, the entry is
damaged, the third run recomputes (the step runs again, its result is right, the run succeeds), and
the damaged entry is replaced by a sound one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.executor.executor_support import Project
from tests.executor.test_memo_resume import memo_pipeline, states


def _entry(project: Project, step: str) -> Path:
    for path in project.path.glob(".dmlc/cache/entries/*/*"):
        if json.loads((path / "entry.json").read_text())["step"] == step:
            return path
    raise AssertionError(f"no cache entry for {step}")


def _a_file(folder: Path) -> Path:
    return next(p for p in sorted(folder.rglob("*")) if p.is_file())


def _edit_artifact(entry: Path, tmp: Path) -> None:
    _a_file(entry / "outputs" / "data").write_text("tampered")


def _delete_artifact(entry: Path, tmp: Path) -> None:
    shutil.rmtree(entry / "outputs" / "data")


def _relink_outputs(entry: Path, tmp: Path) -> None:
    outside = tmp / "outside"
    shutil.copytree(entry / "outputs", outside)
    _a_file(outside / "data").write_text("from outside the cache")
    shutil.rmtree(entry / "outputs")
    (entry / "outputs").symlink_to(outside)


def _rewrite(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    def apply(entry: Path, tmp: Path) -> None:
        data = json.loads((entry / "entry.json").read_text())
        (entry / "entry.json").write_text(json.dumps(change(data)))

    return apply


DAMAGE = {
    "edited artifact": (_edit_artifact, "make"),
    "deleted artifact": (_delete_artifact, "make"),
    "outputs relinked outside": (_relink_outputs, "make"),
    "entry is a list": (_rewrite(lambda d: []), "make"),
    "created is text": (_rewrite(lambda d: d | {"created": "yesterday"}), "make"),
    "digests missing": (_rewrite(lambda d: {k: v for k, v in d.items() if k != "digests"}), "make"),
    "param value edited": (_rewrite(lambda d: d | {"values": {"v": "forged"}}), "use"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_entry_is_never_served(case: str, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p")
    memo_pipeline(project)
    assert project.execute()[0] == 0
    assert project.execute()[0] == 0 and states(project) == {"make": "cached", "use": "cached"}
    damage, step = DAMAGE[case]
    damage(_entry(project, step), tmp_path)
    code, out = project.execute()
    assert code == 0, out
    assert states(project)[step] == "succeeded", out  # recomputed, not served
    assert project.count(step) == 2
    result = json.loads(next(project.path.glob(".dmlc/runs/*/steps/use/main/result.json")).read_text())
    assert result["outputs"]["v"] == "a"
    code, out = project.execute()  # the entry was replaced by a sound one: a hit again
    assert code == 0 and states(project) == {"make": "cached", "use": "cached"}, out
