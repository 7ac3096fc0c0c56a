"""Differential tests (DESIGN §7.2): the Argo replay of the compiled Workflow and `dmlc run --local`
must agree on every step instance's state and outputs, for generated pipelines of shell tasks (fan-out
over lists, params and outputs, fan-in, `wait = "each"`, `when`, `after`, `min_success` with failing
instances, env and command references, retries) and for the examples. CI runs a modest number of
generated cases; set DMLC_HYPOTHESIS_EXAMPLES to run many locally.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given

from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file
from tests.differential import outcome_argo, outcome_local
from tests.pipeline_gen import generated_settings, pipelines


def _compiles(path: Path) -> bool:
    try:
        compile_file(str(path), "argo")
    except DmlError:
        return False  # a coded DML1xx: Argo says it cannot express this pipeline exactly
    return True


@generated_settings(12)
@given(doc=pipelines(max_steps=4))
def test_generated_pipelines_agree_on_argo_and_locally(
    doc: dict, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path_factory.mktemp("diff")
    path = folder / "gen.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if check_file(str(path)) or not _compiles(path):
        return
    with monkeypatch.context() as patch:
        patch.chdir(folder)
        local = outcome_local(path)
    argo = outcome_argo(path, folder / "argo")
    assert argo == local


# -- cases the generator found (each once differed) ------------------------------------------------
STEP = 'if [ "$${DMLC_ITEM:-}" = "%s" ]; then exit 3; fi; printf "%%s|%%s" "$1" "$${DMLC_ITEM:-}" > "$DMLC_OUTPUTS/out"'


def _task(fails_on: str = "-", **attrs: object) -> dict:
    return {"kind": "task", "outputs": {"out": "param"}, "command": ["sh", "-c", STEP % fails_on, "sh", "x"], **attrs}


FOUND = {
    # a skipped min_success loop is a Succeeded TaskGroup to Argo: its gate must not count it
    "skipped-min-success-loop": {
        "params": {"go": False},
        "steps": {"a": _task("7", for_each=[7], min_success=1, when="params.go"), "b": _task(after=["a"])},
    },
    # the loop body's root failed: its per-instance reader is left out, and the instance is not collected
    "failed-root-of-a-loop-body": {
        "steps": {
            "a": _task("d", for_each=["c", "a", "d"], min_success=2),
            "b": _task(wait="each", command=["sh", "-c", STEP % "-", "sh", "${a.out}"]),
            "c": _task(command=["sh", "-c", STEP % "-", "sh", "${a[*].out}"]),
        },
    },
    # user text and values holding Argo's own syntax reach the process literally (issue 10, #3): Argo
    # scans a template twice, so a single escape, or a value inserted in the first pass, would change
    "user-text": {
        "params": {"label": "}}{{=1}}"},
        "steps": {
            "a": _task(
                env={
                    "V": "{{workflow.parameters.secret}} {{=sprig.b64enc(workflow.name)}}",
                    "Q": 'say "hi"\r\nx{{y ${params.label}',
                },
                command=[
                    "sh",
                    "-c",
                    'printf "%s|%s|%s|%s" "$1" "$2" "$V" "$Q" > "$DMLC_OUTPUTS/out"',
                    "sh",
                    "{{workflow.name}} }} {{",
                    "{{=sprig.upper('x')}} ${params.label}",
                ],
                when="params.label == '}}{{=1}}'",
            ),
            "b": _task(for_each=["it's", 'a"b', "c}}d"], command=["sh", "-c", STEP % "-", "sh", "${a.out}"]),
            "c": _task(command=["sh", "-c", STEP % "-", "sh", "${b[*].out}"]),
        },
    },
    # the same through the runtime: the step spec (JSON inside a template field, keys included) and
    # values of params and outputs handed over base64
    "user-text-runtime": {
        "params": {"label": "}}{{=1}} {{workflow.name}}", "n": {"a{{": "{{b"}},
        "steps": {
            "a": _task(command=["sh", "-c", 'printf "%s" "x{{workflow.name}} }}{{=1}} \\"q\\"" > "$DMLC_OUTPUTS/out"']),
            "b": {
                "kind": "task",
                "run": "json:dumps",
                "outputs": {"out": "param"},
                "inputs": {
                    "obj": ["x{{workflow.name}} }}", "${a.out}", "${params.label}", "${params.n}", {"k{{": "{{=1}}\nz"}]
                },
                "memoize": {"key": "k{{workflow.name}}${params.label}"},
            },
        },
    },
}


# a template with a retryStrategy is substituted twice more, per attempt
FOUND |= {
    f"{name}-retried": {**doc, "steps": {k: {**v, "retry": {"limit": 1}} for k, v in doc["steps"].items()}}
    for name, doc in list(FOUND.items())
    if name.startswith("user-text")
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_found_cases_agree(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "found.yaml"
    path.write_text(yaml.safe_dump({"pipeline": "found", **FOUND[name]}, sort_keys=False))
    assert not check_file(str(path)) and _compiles(path)
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    assert outcome_argo(path, tmp_path / "argo") == local


def test_a_submitted_param_holding_argo_syntax_reaches_the_process_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`argo submit -p label=TEXT` and `dmlc run --param label=TEXT` agree: a string param takes the text."""
    path = tmp_path / "found.yaml"
    path.write_text(yaml.safe_dump({"pipeline": "found", **FOUND["user-text"]}, sort_keys=False))
    for i, text in enumerate(["{{workflow.name}} {{=sprig.upper('x')}} }}", "}}{{=1}}"]):
        with monkeypatch.context() as patch:
            patch.chdir(tmp_path)
            local = outcome_local(path, {"label": text})
        assert outcome_argo(path, tmp_path / f"argo{i}", {"label": text}) == local
        ran = local.get(("a", "-"), ("not run", {}))
        assert ran[0] == ("ok" if text == "}}{{=1}}" else "not run")  # the `when` compared the literal text


# -- cases a reviewer found (tests/fixtures/argo_found: they once differed; argo_dml100: Argo cannot) --
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("source", sorted((FIXTURES / "argo_found").glob("*.yaml")), ids=lambda p: p.stem)
def test_reviewed_cases_agree(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / source.name
    path.write_text(source.read_text())
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    assert outcome_argo(path, tmp_path / "argo") == local


@pytest.mark.parametrize("source", sorted((FIXTURES / "argo_dml100").glob("*.yaml")), ids=lambda p: p.stem)
def test_reviewed_cases_argo_cannot_express_are_dml100(source: Path) -> None:
    assert not check_file(str(source))
    with pytest.raises(DmlError) as raised:
        compile_file(str(source), "argo")
    assert {d.code for d in raised.value.diagnostics} == {"DML100"}


def test_a_loop_body_waiting_for_its_own_loop_is_dml100(tmp_path: Path) -> None:
    """`b` runs per instance of `a` but reads `c`, which collects all of `a`: the loop task and `c` would
    wait for each other in the main DAG (Argo would never schedule either)."""
    doc = {"pipeline": "cycle", "steps": {
        "a": _task(for_each=[1, 2]),
        "c": _task(command=["sh", "-c", STEP % "-", "sh", "${a[*].out}"]),
        "b": _task(wait="each", command=["sh", "-c", STEP % "-", "sh", "${a.out} ${c.out}"]),
    }}  # fmt: skip
    path = tmp_path / "cycle.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DmlError) as raised:
        compile_file(str(path), "argo")
    assert [d.code for d in raised.value.diagnostics] == ["DML100"]
    assert "waits for all of `a`" in raised.value.diagnostics[0].message


# -- the examples (real TensorFlow steps) ------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
# values of the run, not results: wall time, a server's port, where this executor stored a model
TIMING = ("seconds", "endpoint", "path")
NOT_REPLAYED = {
    "sharded_serving": "its router is a Deployment + Service, which the replay does not run",
    # its store is an S3 endpoint: tests/test_object_store.py runs it locally, on the Argo replay and on
    # the KFP harness against a loopback S3 server and compares the three runs' objects
    "object_store": "needs an S3 server (tests/test_object_store.py)",
}


def _comparable(outcome: dict) -> dict:
    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in TIMING}
        if isinstance(value, float):
            return round(value, 5)
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {key: (state, {k: "<set>" if k in TIMING else clean(v) for k, v in outs.items()})
            for key, (state, outs) in outcome.items()}  # fmt: skip


def _without_tfjob_params(outcome: dict, path: Path) -> dict:
    """A TFJob hands back no parameter on Argo (its `metrics` is DML100 to read there, and it has no
    `metric-<name>` parameters for Argo's UI): not compared."""
    from dmlc.driver import load
    from dmlc.ir.model import Train

    steps = load(str(path)).pipeline.steps
    jobs = {n for n, s in steps.items() if isinstance(s, Train) and s.distributed}

    def kept(step: str, name: str) -> bool:
        return step not in jobs or (name != "metrics" and not name.startswith("metric-"))

    return {key: (state, {k: v for k, v in outs.items() if kept(key[0], k)}) for key, (state, outs) in outcome.items()}


PARAMS = {"quickstart": {"epochs": "1"}}  # smaller, for time: the same on both sides
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.dml") if p.stem not in NOT_REPLAYED)
EXAMPLES.remove("fashion_mnist")  # its data: tests/test_book_e2e.py replays it on Fashion-MNIST


def example_outcomes(name: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    path = ROOT / "examples" / f"{name}.dml"
    params = PARAMS.get(name)
    with monkeypatch.context() as patch:
        patch.chdir(folder)
        local = _without_tfjob_params(outcome_local(path, params), path)
    return _comparable(local), _comparable(outcome_argo(path, folder / "argo", params))


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_agree_on_argo_and_locally(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow")
    local, argo = example_outcomes(name, tmp_path, monkeypatch)
    assert argo == local
