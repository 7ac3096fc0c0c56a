"""Small pieces of the executor: `when` evaluation (safe), interpolation, retry policy, gang admission."""

from __future__ import annotations

import io

import pytest

from dmlc.driver import load
from dmlc.ir.types import parse_ref
from tests.executor.executor_support import Project


def lookup(ref):  # type: ignore[no-untyped-def]
    values = {"params.n": 3, "best.accuracy": 0.85, "params.flag": True, "each": "cnn", "x.list": [1, 2]}
    return values[ref.text]


def test_when_expressions() -> None:
    from dmlc_targets.local.values import eval_when

    assert eval_when("best.accuracy >= 0.8 and params.flag == true", lookup)
    assert not eval_when("params.n > 5 or each != 'cnn'", lookup)
    assert eval_when("len(x.list) == 2 and 1 in x.list and not null", lookup)
    assert eval_when("0 < params.n * 2 - 1 <= 5", lookup)


@pytest.mark.parametrize(
    "expr",
    ["__import__('os').system('true')", "open('x')", "params.n.__class__", "(lambda: 1)()", "[i for i in x.list]"],
)
def test_when_refuses_code(expr: str) -> None:
    from dmlc_targets.local.values import ResolveError, eval_when

    with pytest.raises(ResolveError):
        eval_when(expr, lookup)


def test_interpolation_and_args() -> None:
    from dmlc_targets.local.values import resolve, resolve_arg

    assert resolve_arg("${x.list}", lookup) == "[1, 2]"
    assert resolve_arg("n=${params.n}, $${literal}", lookup) == "n=3, ${literal}"
    assert resolve({"a": ["${params.n}", "${each}"]}, lookup) == {"a": [3, "cnn"]}
    assert parse_ref("x.list").text == "x.list"


def test_retry_classes_and_backoff() -> None:
    from dmlc_targets.local import proc

    from dmlc.ir.model import Retry

    killed = proc.Exit(1, None, 9, 0.0, 0, 0.0)
    tempfail = proc.Exit(1, 75, None, 0.0, 0, 0.0)
    failed = proc.Exit(1, 2, None, 0.0, 0, 0.0)
    assert proc.failure_classes(killed, False) == {"transient"}
    assert proc.failure_classes(tempfail, False) == {"transient", "failure"}
    assert proc.failure_classes(failed, False) == {"failure"}
    assert proc.failure_classes(failed, True) == {"transient"}
    retry = Retry(limit=5, backoff=10, factor=2, max_backoff=30)
    assert [proc.backoff(retry, n) for n in (1, 2, 3)] == [10, 20, 30]


def test_gang_takes_all_slots_or_waits(project: Project) -> None:
    from dmlc_targets.local.cache import Cache
    from dmlc_targets.local.executor import Executor, Options
    from dmlc_targets.local.progress import PlainView
    from dmlc_targets.local.rundir import RunDir
    from dmlc_targets.local.state import RUNNING
    from dmlc_targets.local.store import Store

    file = project.write("""
pipeline g {
  scheduling { parallelism = 3 }
  task a { command = ["true"] }
  task b { command = ["true"] }
  train big {
    data = "/nowhere"
    strategy = "allreduce"
    workers = 3
    priority = 5
  }
}""")
    root = project.path / ".dmlc"
    ex = Executor(
        load(str(file)).pipeline,
        RunDir(root, "r"),
        Cache(root / "cache"),
        Store(root / "m.db"),
        PlainView(io.StringIO()),
        Options(),
    )
    started: list[str] = []

    def fake_start(inst):  # type: ignore[no-untyped-def]
        started.append(inst.label)
        inst.state = RUNNING
        ex.running[len(started)] = inst

    ex._start = fake_start  # type: ignore[method-assign]
    while ex._settle():
        pass
    a = next(i for i in ex.instances() if i.step == "a")
    ex.ready = [e for e in ex.ready if e[2] is not a]
    fake_start(a)  # a small step is already running: the gang (3 slots) does not fit
    started.clear()
    ex._start_ready()
    assert started == []  # `b` (lower priority) does not jump the waiting gang
    ex.running.clear()
    ex._start_ready()
    assert started == ["big"]  # all three slots at once, and nothing else fits beside it


def test_store_with_an_older_layout_is_moved_aside(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from dmlc_targets.local.store import Store

    path = tmp_path / "metadata.db"
    old = sqlite3.connect(str(path))
    old.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, pipeline TEXT)")
    old.commit()
    old.close()
    store = Store(path)
    store.start_run("r1", "p", "p.dml", {}, str(tmp_path))
    assert [row["id"] for row in store.runs()] == ["r1"]
    assert len(list(tmp_path.glob("metadata.db.v*.old"))) == 1
