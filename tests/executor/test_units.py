"""Small pieces of the executor: `when` evaluation (safe), interpolation, retry policy, gang admission."""

from __future__ import annotations

import io

import pytest

from dmlc.driver import prepare
from dmlc.ir.types import parse_ref
from tests.executor.executor_support import Project


def lookup(ref):  # type: ignore[no-untyped-def]
    values = {"params.n": 3, "best.accuracy": 0.85, "params.flag": True, "each": "cnn", "x.list": [1, 2]}
    return values[ref.text]


def eval_when(text: str, look) -> bool:  # type: ignore[no-untyped-def]
    from dmlc.ir.when import parse
    from dmlc.semantics.when import holds

    return holds(parse(text), look)


def test_when_expressions() -> None:
    assert eval_when("best.accuracy >= 0.8 and params.flag == true", lookup)
    assert not eval_when("params.n > 5 or each != 'cnn'", lookup)
    assert eval_when("len(x.list) == 2 and 1 in x.list and not null", lookup)
    assert eval_when("0 < params.n * 2 - 1 <= 5", lookup)
    assert not eval_when("0 < params.n < 2", lookup)  # a chain holds only when every link does


@pytest.mark.parametrize(
    "expr",
    ["__import__('os').system('true')", "open('x')", "(lambda: 1)()", "[i for i in x.list]",
     "len(*x.list)", "x.list[0:1]", "b'x' == 1", "len(x=1)"],
)  # fmt: skip
def test_when_refuses_code_when_parsed(expr: str) -> None:
    """Nothing but whitelisted nodes can be in a `when` tree, so nothing else can ever be evaluated."""
    from dmlc.ir.when import WhenError, parse

    with pytest.raises(WhenError):
        parse(expr)


def test_when_type_errors_are_resolve_errors() -> None:
    from dmlc.semantics.values import ResolveError

    with pytest.raises(ResolveError, match="TypeError"):
        eval_when("params.n + each > 1", lookup)


def test_a_dunder_in_when_is_a_field_name_not_an_attribute() -> None:
    """`x.__class__` reads a field of a JSON value (there is none), never a Python attribute."""
    from dmlc.semantics.values import ResolveError, dig

    with pytest.raises(ResolveError, match="no field `__class__`"):
        eval_when("params.n.__class__ == 1", lambda ref: dig({"params": {"n": 3}}, (ref.root, *ref.fields), ref.text))


def test_interpolation_and_args() -> None:
    from dmlc.semantics.values import resolve, to_text

    assert to_text(resolve("${x.list}", lookup)) == "[1,2]"
    assert resolve("n=${params.n}, $${literal}", lookup) == "n=3, ${literal}"
    assert resolve("$${literal}", lookup) == "${literal}"
    assert resolve({"a": ["${params.n}", "${each}"]}, lookup) == {"a": [3, "cnn"]}
    assert parse_ref("x.list").text == "x.list"


def test_retry_classes_and_backoff() -> None:
    from dmlc_targets.local import proc

    from dmlc.ir.model import Retry

    killed = proc.Exit(1, None, 9, 0.0, 0, 0.0)
    tempfail = proc.Exit(1, 75, None, 0.0, 0, 0.0)
    failed = proc.Exit(1, 2, None, 0.0, 0, 0.0)
    # a container shows a signal death as exit 128+signal: both count alike (dmlc.semantics.retry); the
    # exit status is a mark too (`on = [137]`), except of an attempt stopped at its timeout
    assert proc.failure_classes(killed, False) == {"transient", "failure", 137}
    assert proc.failure_classes(proc.Exit(1, 137, None, 0.0, 0, 0.0), False) == {"transient", "failure", 137}
    assert proc.failure_classes(proc.Exit(1, 255, None, 0.0, 0, 0.0), False) == {"failure", 255}
    assert proc.failure_classes(tempfail, False) == {"transient", "failure", 75}
    assert proc.failure_classes(failed, False) == {"failure", 2}
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
        prepare(str(file), "local").plan,
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
    ex.slot_cap = 3  # a machine with room for three processes
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
