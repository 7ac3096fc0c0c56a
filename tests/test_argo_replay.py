"""The Argo rule replay (tests/argo_replay): its expression and substitution rules against cases from
argo-workflows' own tests (v4.1.2), and Argo's DAG, retry, memoization and resource rules on small
hand-written workflows whose containers are `sh -c` commands. One slow test replays the compiled
quickstart end to end (TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argo_replay import replay
from tests.argo_replay.expr import ExprError, identifiers, parse
from tests.argo_replay.exprenv import func_map
from tests.argo_replay.exprrun import evaluate
from tests.argo_replay.gojson import marshal, parse_duration, quote
from tests.argo_replay.govaluate import WhenError, should_execute
from tests.argo_replay.template import ReplaceError, replace, replace_strict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def ev(text: str, env: dict[str, Any] | None = None) -> Any:
    return evaluate(parse(text), env if env is not None else func_map({}))


def sub(text: str, values: dict[str, Any] | None = None, allow: bool = True) -> str:
    """Replace on a JSON string holding `text`; the unmarshalled result."""
    return json.loads(replace(json.dumps(text), values or {}, allow))


# -- expr-lang ------------------------------------------------------------------------------------
# util/expr/argoexpr/eval_test.go
@pytest.mark.parametrize(
    ("text", "env", "want"),
    [
        (" FOO == 1 ", {"FOO": 2}, False),
        (" FOO == 1 ", {"FOO": 1}, True),
        ("split == 1", {"split": 1}, True),
        ("join == 1", {"join": 1}, True),
    ],
)
def test_eval_bool_cases_of_argoexpr(text: str, env: dict[str, Any], want: bool) -> None:
    assert ev(text, env) is want


@pytest.mark.parametrize(
    ("text", "env", "error"),
    [
        ("invalid expression", {}, "unexpected token"),
        ('steps["prepare"].outputs != null', {"steps": {"prepare": {"outputs": "msg"}}}, "unknown name null"),
    ],
)
def test_eval_errors_of_argoexpr(text: str, env: dict[str, Any], error: str) -> None:
    with pytest.raises(ExprError, match=error):
        ev(text, env)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1 + 2 * 3", 7),
        ("-2 ** 2", -4.0),
        ("(1 + 2) * 3", 9),
        ("10 / 4", 2.5),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("!true", False),
        ("not false", True),
        ("true ? 'a' : 'b'", "a"),
        ("1 == 1.0", True),
        ("true == 1", False),
        ("'a' + 'b'", "ab"),
        ("'a' in ['a', 'b']", True),
        ("2 not in [1, 3]", True),
        ("'k' in {k: 1}", True),
        ("m.x ?? 'd'", "d"),
        ("m.y ?? 'd'", 0),
        ("m?.z?.w", None),
        ("l[-1]", 3),
        ("l[0] + l[1]", 3),
        ("len(l) == 3 && len('héllo') == 5", True),
        ("'abc' startsWith 'a' and 'abc' endsWith 'c'", True),
        ("asInt('42') + 1", 43),
        ("asFloat('0.5') * 2", 1.0),
        ("int(2.9)", 2),
        ("string(3.0)", "3"),
        ("string(1e6)", "1e+06"),
        ("jsonpath('{\"a\": {\"b\": [1, 2]}}', '$.a.b[1]')", 2.0),
        ("jsonpath('{\"a\": 0.9}', '$.a') > 0.5", True),
        ("toJson({b: [1, 'x'], a: nil})", '{"a":null,"b":[1,"x"]}'),
        ("toJson('<&>')", '"\\u003c\\u0026\\u003e"'),
        ("sprig.trunc(5, 'hello world')", "hello"),
        ("sprig.trunc(-5, 'hello world')", "world"),
        ("sprig.trunc(12, sprig.sha1sum('cnn'))", hashlib.sha1(b"cnn").hexdigest()[:12]),
        ("sprig.sha256sum('x')", hashlib.sha256(b"x").hexdigest()),
        ("sprig.b64enc('a\"b')", "YSJi"),
        ("sprig.b64dec('YSJi')", 'a"b'),
        ("sprig.upper('a') + sprig.lower('B')", "Ab"),
        ("sprig.toString(1.5)", "1.5"),
    ],
)
def test_expr_semantics(text: str, want: Any) -> None:
    env = func_map({"m.y": "", "l": [1, 2, 3]})
    env["m"] = {"y": 0}
    env["l"] = [1, 2, 3]
    got = ev(text, env)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("'a' + 1", "invalid operation: string \\+ int"),
        ("1 && true", "operands must be bool"),
        ("m.x.y", "cannot fetch y from <nil>"),
        ("l[5]", "index out of range: 5"),
        ("1 ?? 2 + 3", "cannot be mixed"),
        ("asInt('3.5')", "invalid operation: int\\(3.5\\)"),
        ("'1' < 2", "invalid operation: string < int"),
        ("sprig.trunc('1', 'x')", "as type int"),
        ("(1", "expected '\\)'"),
    ],
)
def test_expr_errors(text: str, error: str) -> None:
    env = func_map({})
    env |= {"m": {}, "l": [1]}
    with pytest.raises(ExprError, match=error):
        ev(text, env)


# util/template/expression_template_test.go Test_getIdentifiers
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("item.requiredKey", ["item", "item.requiredKey"]),
        ("item.optionalKey ?? 'fallback'", ["item"]),
        ("item['optionalKey'] ?? ''", ["item"]),
        ("item?.optionalKey", ["item"]),
        ("item.a?.b", ["item"]),
        ("item.requiredKey + (item.optionalKey ?? 'x')", ["item", "item.requiredKey"]),
        ("tasks.a.outputs.result ?? 'default'", ["tasks"]),
    ],
)
def test_identifiers_as_argo_collects_them(text: str, want: list[str]) -> None:
    assert sorted(identifiers(text)) == sorted(want)


# -- substitution ---------------------------------------------------------------------------------
# util/template/replace_test.go, template_test.go
@pytest.mark.parametrize(
    ("text", "values", "want"),
    [
        ("{{foo}}", {"foo": "bar"}, "bar"),
        ("{{ inputs.parameters.message }}", {"inputs.parameters.message": "hello world"}, "hello world"),
        ("{{=foo}}", {"foo": "bar"}, "bar"),
        ("{{='test'}}", {}, "test"),
        ('{{="test"}}', {}, "test"),
        ("{{='some\\\\path'}}", {}, "some\\path"),
        ("{{='a\\nb'}}", {}, "a\nb"),
        ("{{=1 + \n1}}", {}, "2"),
        ("{{=toJson('test')}}", {}, '"test"'),
        ("{{=toJson({test: 1})}}", {}, '{"test":1}'),
        ("{{=toJson([1, '2', {an: 'object'}])}}", {}, '[1,"2",{"an":"object"}]'),
        ('{{="\'"}}', {}, "'"),
        ("{{='\"'}}", {}, '"'),
        ("{{=true == false}}", {}, "false"),
        ("{{customParam}}", {"customParam": 'This is " John'}, 'This is " John'),
        (
            "test {{= sprig.trunc(5, inputs.parameters.message) }}",
            {"inputs.parameters.message": "hello world"},
            "test hello",
        ),
        ('{{=workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"}}', {"workflow.status": "Failed"}, "FAILED"),
        ('{{=jsonpath(\'{"e": [{"n": "B", "a": 43}, {"n": "M"}]}\', \'$.e[*].n\')}}', {}, '["B","M"]'),
        ('{{=jsonpath(\'{"e": [{"n": "B", "a": 43}]}\', \'$.e[0]\')}}', {}, '{"a":43,"n":"B"}'),
        ("{{=sprig.int(retries)}}", {}, "{{=sprig.int(retries)}}"),
        ("{{unknown}} {{=unknown}}", {}, "{{unknown}} {{=unknown}}"),
        (
            '{{- with secret "{{inputs.parameters.message}}" -}}',
            {"inputs.parameters.message": "hi"},
            '{{- with secret "hi" -}}',
        ),
    ],
)
def test_replace_cases_of_argo(text: str, values: dict[str, Any], want: str) -> None:
    assert sub(text, values) == want


def test_replace_errors_of_argo() -> None:
    with pytest.raises(ReplaceError, match="Cannot find end tag"):
        sub("{{", {})
    with pytest.raises(ReplaceError, match=r"^failed to resolve \{\{foo\}\}$") as err:
        sub("{{foo}}", {}, allow=False)
    assert err.value.missing
    with pytest.raises(ReplaceError, match=r"^failed to evaluate expression: foo is missing$"):
        sub("{{=foo}}", {}, allow=False)
    with pytest.raises(ReplaceError, match="failed to evaluate expression"):
        sub("{{=!}}", {}, allow=False)


def test_absent_optional_values_as_argo_treats_them() -> None:
    # replace_test.go TestReplaceStrictAnyNilValues: nil is a skipped node's output with no default
    values = {"tasks.producer.outputs.parameters.msg": None, "tasks.other.outputs.parameters.msg": "real"}

    def strict(text: str, vals: dict[str, Any]) -> str:
        return json.loads(replace_strict(json.dumps(text), vals, ["tasks", "steps"]))

    assert strict("{{= tasks.producer.outputs.parameters.msg ?? 'fallback'}}", values) == "fallback"
    assert (
        strict(
            "{{= tasks.producer.outputs.parameters.msg ?? 'fallback'}}", {"tasks.producer.outputs.parameters.msg": ""}
        )
        == ""
    )
    assert strict("{{= tasks.other.outputs.parameters.msg ?? 'fallback'}}", values) == "real"
    with pytest.raises(ReplaceError, match="absent optional") as err:
        strict("pre-{{tasks.producer.outputs.parameters.msg}}-post", values)
    assert not err.value.missing
    with pytest.raises(ReplaceError) as err:
        strict("{{= tasks.unknown.outputs.parameters.msg}}", values)
    assert err.value.missing


def test_simple_tag_values_are_escaped_once_and_must_stay_json() -> None:
    assert quote('a"b\\c\nd\te\x01é') == 'a\\"b\\\\c\\nd\\te\\x01é'
    assert sub("x{{v}}y", {"v": 'q"\n'}) == 'xq"\ny'
    with pytest.raises(ReplaceError, match="result was invalid JSON"):  # strconv.Quote's \x01 is no JSON escape
        sub("{{v}}", {"v": "\x01"})


def test_go_json_and_durations() -> None:
    assert marshal({"b": 1.0, "a": [1e21, 1e-7, 0.5, "<"]}) == '{"a":[1e+21,1e-7,0.5,"\\u003c"],"b":1}'
    assert parse_duration("1h30m") == 5400 and parse_duration("24h") == 86400
    with pytest.raises(ValueError, match='unknown unit "d"'):
        parse_duration("1d")


# workflow/controller/when_test.go TestShouldExecute
WHEN_TRUE = [
    "foo == foo",
    "'ref/branch/master' == 'ref/branch/master'",
    "foo != bar",
    "1 == 1",
    "1 != 2",
    "1 < 2",
    "1 <= 1",
    "1/2 == 0.5",
    "a < b",
    "(foo == bar) || (foo == foo)",
    "(1 > 0) && (1 < 2)",
    "Error in (Failed, Error)",
    "!(Succeeded in (Failed, Error))",
    "true == true",
    "true",
]
WHEN_FALSE = [
    "foo != foo",
    "'ref/branch/master' != 'ref/branch/master'",
    "foo == bar",
    "1 != 1",
    "1 == 2",
    "1 > 2",
    "1 <= 0",
    "1/2 != 0.5",
    "a > b",
    "(foo == bar) || (bar == foo)",
    "(1 > 0) && (11 < 2)",
    "Succeeded in (Failed, Error)",
    "!(Error in (Failed, Error))",
    "false == true",
    "false",
]


def test_when_as_govaluate_evaluates_it() -> None:
    assert all(should_execute(w) for w in WHEN_TRUE)
    assert not any(should_execute(w) for w in WHEN_FALSE)
    for bad, error in [
        ("1 > a", "not a number"),
        ("x @ y", "Invalid token"),
        ("a.b == c", "No parameter"),
        ("5", "Expected boolean"),
    ]:
        with pytest.raises(WhenError, match=error):
            should_execute(bad)


# -- workflows ------------------------------------------------------------------------------------
OK = {"name": "ok", "container": {"command": ["sh", "-c", "true"]}}
FAIL = {"name": "fail", "container": {"command": ["sh", "-c", "exit 3"]}}
ECHO = {
    "name": "echo",
    "inputs": {"parameters": [{"name": "v"}]},
    "metadata": {"labels": {"dmlc.io/step": "echo"}},
    "container": {"command": ["sh", "-c", 'printf "%s" "$0" > /tmp/out', "{{inputs.parameters.v}}"]},
    "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]},
}
DATA = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
MOUNT = [{"name": "data", "mountPath": "/data"}]


def dag(
    tasks: list[dict[str, Any]], *templates: dict[str, Any], params: dict[str, str] | None = None, **dag_opts: Any
) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "t-"},
        "spec": {
            "entrypoint": "main",
            "volumes": DATA,
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in (params or {}).items()]},
            "templates": [{"name": "main", "dag": {"tasks": tasks, **dag_opts}}, *templates],
        },
    }


def echo(name: str, value: str, **task: Any) -> dict[str, Any]:
    return {"name": name, "template": "echo", "arguments": {"parameters": [{"name": "v", "value": value}]}, **task}


def test_user_text_reaches_the_process_as_argo_substitutes_it(tmp_path: Path) -> None:
    text = 'say "hi"\nand {{braces}} $HOME'
    wf = dag(
        [{"name": "t", "template": "show"}],
        {
            "name": "show",
            "container": {
                "command": [
                    "sh",
                    "-c",
                    'printf "%s|%s|%s|%s" "$0" "$V" "$1" "$2" > /tmp/out',
                    "{{workflow.parameters.text}}",
                    "pre-{{=sprig.upper(workflow.parameters.text)}}-post",
                    '{"cfg": {{=toJson({"t": workflow.parameters.text, "n": 2})}}}',
                ],
                "env": [
                    {"name": "V", "value": "{{workflow.parameters.text}}"},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
            },
            "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]},
        },
        params={"text": "x", "again": "x"},
    )
    r = replay(wf, tmp_path, params={"text": text, "again": "{{workflow.name}}"})
    assert r.phase == "Succeeded", r.message
    raw, env, upper, cfg = r.outputs("t")["out"].split("|")
    assert raw == env == text  # quotes, a newline, {{ }} and $ arrive literally
    assert upper == 'pre-SAY "HI"\nAND {{BRACES}} $HOME-post'  # an expression's string result, inside a string
    assert json.loads(cfg) == {"cfg": {"n": 2, "t": text}}  # an object result is its JSON text
    assert any("valueFrom secretKeyRef" in n for n in r.node("t").notes)
    # Argo substitutes twice (globals, then inputs): a value that spells a global tag is substituted again
    again = dag([echo("t", "{{workflow.parameters.again}}")], ECHO, params={"again": "{{workflow.name}}"})
    assert replay(again, tmp_path / "again").outputs("t") == {"out": "wf-x7k2p"}


def test_depends_continue_on_and_omitted_branches(tmp_path: Path) -> None:
    tasks = [
        {"name": "a", "template": "fail", "continueOn": {"failed": True}},
        {"name": "b", "template": "ok", "depends": "a"},
        {"name": "c", "template": "ok", "depends": "a.Succeeded"},
        {"name": "d", "template": "ok", "depends": "c || a.Failed"},
        {"name": "legacy", "template": "ok", "dependencies": ["b"]},
    ]
    r = replay(dag(tasks, OK, FAIL), tmp_path / "1")
    assert r.phases() == {"a": "Failed", "b": "Succeeded", "c": "Omitted", "d": "Succeeded", "legacy": "Succeeded"}
    assert r.node("c").message == "omitted: depends condition not met"
    assert r.phase == "Succeeded"  # a failed, but continueOn and every target succeeded
    # an omitted target inherits the failed phase of its branch (assessDAGPhase): the DAG fails
    r = replay(dag([*tasks, {"name": "e", "template": "ok", "depends": "c"}], OK, FAIL), tmp_path / "2")
    assert r.node("e").phase == "Omitted" and r.phase == "Failed"


def test_when_skips_a_task_and_a_bad_when_is_an_error(tmp_path: Path) -> None:
    tasks = [
        echo("a", "yes"),
        {"name": "b", "template": "ok", "depends": "a", "when": "{{tasks.a.outputs.parameters.out}} == yes"},
        {"name": "c", "template": "ok", "depends": "a", "when": "{{=tasks.a.outputs.parameters.out != 'yes'}}"},
        {"name": "d", "template": "ok", "depends": "c"},
        {"name": "e", "template": "ok", "depends": "c.Succeeded"},
        {"name": "f", "template": "ok", "when": "{{workflow.parameters.flag}} > 1"},
    ]
    r = replay(dag(tasks, OK, ECHO, params={"flag": "high"}, failFast=False), tmp_path)
    assert r.phases() == {
        "a": "Succeeded",
        "b": "Succeeded",
        "c": "Skipped",
        "d": "Succeeded",
        "e": "Omitted",
        "f": "Error",
    }
    assert r.node("c").message == "when 'false' evaluated false"
    assert r.node("f").message == (
        "Failed to evaluate 'when' expresion 'high > 1': "
        "Value 'high' cannot be used with the comparator '>', it is not a number"
    )
    assert r.phase == "Error"


def test_fan_out_aggregation_and_loop_items(tmp_path: Path) -> None:
    item = {
        "name": "item",
        "inputs": {"parameters": [{"name": "v"}]},
        "container": {
            "command": ["sh", "-c", '[ "$0" != a ] && printf "v-%s" "$0" > /tmp/out', "{{inputs.parameters.v}}"]
        },
        "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]},
    }
    gen = {
        "name": "gen",
        "container": {"command": ["sh", "-c", 'echo \'["x", 2.50, {"k": 1}]\' > /tmp/l']},
        "outputs": {"parameters": [{"name": "list", "valueFrom": {"path": "/tmp/l"}}]},
    }
    tasks = [
        {
            "name": "fan",
            "template": "item",
            "withItems": ["b", "a", "c"],
            "continueOn": {"failed": True},
            "arguments": {"parameters": [{"name": "v", "value": "{{item}}"}]},
        },
        echo(
            "after",
            "{{tasks.fan.outputs.parameters.out}} {{tasks.fan.status}} {{tasks.fan.outputs.parameters}}",
            depends="fan",
        ),
        {"name": "gen", "template": "gen"},
        echo("dyn", "{{item}}", depends="gen", withParam="{{tasks.gen.outputs.parameters.list}}"),
        echo("objs", "{{item.k}}-{{item.n}}-{{item}}", withItems=[{"n": "x", "k": 1}]),
        echo("json", "{{tasks.objs.outputs.parameters.out}}", depends="objs"),
    ]
    r = replay(dag(tasks, item, gen, ECHO), tmp_path)
    assert r.phase == "Succeeded", r.message
    assert [(n.task_path, n.item, n.index, n.phase) for n in r.nodes.values() if n.task_path.startswith("fan(")] == [
        ("fan(0:b)", "b", 0, "Succeeded"),
        ("fan(1:a)", "a", 1, "Failed"),
        ("fan(2:c)", "c", 2, "Succeeded"),
    ]
    assert r.node("fan").type == "TaskGroup" and r.node("fan").phase == "Failed"
    assert r.outputs("after")["out"] == '["v-b","v-c"] Failed [{"out":"v-b"},{"out":"v-c"}]'
    assert [r.outputs(p)["out"] for p in ("dyn(0:x)", "dyn(1:2.50)", "dyn(2:k:1)")] == ["x", "2.50", '{"k":1}']
    assert r.outputs("objs(0:k:1,n:x)")["out"] == '1-x-{"k":1,"n":"x"}'
    assert r.outputs("json")["out"] == '["1-x-{\\"k\\":1,\\"n\\":\\"x\\"}"]'
    assert r.node("fan(0:b)").labels == {} and r.node("after").labels == {"dmlc.io/step": "echo"}


def flaky(name: str, script: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "retryStrategy": strategy,
        "container": {
            "command": ["sh", "-c", script, "{{retries}}", "{{lastRetry.exitCode}}-{{lastRetry.status}}"],
            "volumeMounts": MOUNT,
        },
        "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out", "default": "none"}}]},
    }


COUNT = 'n=$(cat /data/{0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/{0}; echo "$0 $1" > /tmp/out; '


def test_retries_backoff_policies_limit_and_expression(tmp_path: Path) -> None:
    templates = [
        flaky(
            "third-time",
            COUNT.format("t") + "[ $n -ge 3 ] || exit 2",
            {"limit": 3, "retryPolicy": "Always", "backoff": {"duration": "1", "factor": 2}},
        ),
        flaky("on-error", COUNT.format("e") + "exit 2", {"limit": 3, "retryPolicy": "OnError"}),
        flaky(
            "expression",
            COUNT.format("x") + "exit $((n+1))",
            {"limit": 5, "expression": "asInt(lastRetry.exitCode) == 2"},
        ),
        flaky("limit", COUNT.format("l") + "exit 1", {"limit": "1"}),
        flaky("transient", COUNT.format("r") + "exit 75", {"limit": 2, "retryPolicy": "OnTransientError"}),
    ]
    r = replay(
        dag([{"name": t["name"], "template": t["name"]} for t in templates], *templates, failFast=False), tmp_path
    )
    ok = r.node("third-time")
    assert (ok.type, ok.phase, ok.attempts, ok.waits, ok.outputs) == (
        "Retry",
        "Succeeded",
        3,
        [1.0, 2.0],
        {"out": "2 2-Failed"},
    )
    assert [r.node(f"third-time({i})").phase for i in range(3)] == ["Failed", "Failed", "Succeeded"]
    assert r.outputs("third-time(0)") == {"out": "0 0-"}  # lastRetry.* before the first retry
    assert (r.node("on-error").attempts, r.node("on-error").phase, r.node("on-error").message) == (
        1,
        "Failed",
        "main: Error (exit code 2)",
    )
    x = r.node("expression")
    assert (x.attempts, x.phase, x.message, x.exit_code) == (
        2,
        "Failed",
        "retryStrategy.expression evaluated to false",
        "3",
    )
    assert (r.node("limit").attempts, r.node("limit").message) == (2, "No more retries left")
    assert r.node("transient").attempts == 1  # exit 75 is no transient error to Argo (util/errors/errors.go)
    assert r.phase == "Failed"


def test_memoization_across_replays_and_bad_memo_settings(tmp_path: Path) -> None:
    def memo(key: str, max_age: str) -> dict[str, Any]:
        return {
            "name": "memo",
            "memoize": {"key": key, "maxAge": max_age, "cache": {"configMap": {"name": "memo-cm"}}},
            "container": {
                "command": ["sh", "-c", 'echo run >> /data/runs; echo "v-$0" > /tmp/out', "{{workflow.parameters.p}}"],
                "volumeMounts": MOUNT,
            },
            "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]},
        }

    cache, root = tmp_path / "memo.json", tmp_path / "root"
    wf = dag([{"name": "m", "template": "memo"}], memo("k-{{workflow.parameters.p}}", "1h"), params={"p": "a"})
    first, second = replay(wf, root, cache=cache), replay(wf, root, cache=cache)
    assert (first.node("m").memoized, second.node("m").memoized) == (False, True)
    assert second.outputs("m") == first.outputs("m") == {"out": "v-a"} and second.phase == "Succeeded"
    assert (root / "volumes" / "data" / "runs").read_text() == "run\n"
    assert replay(wf, root, cache=cache, params={"p": "b"}).node("m").memoized is False  # another key
    assert json.loads(json.loads(cache.read_text())["memo-cm"]["k-a"])["outputs"]["parameters"] == [
        {"name": "out", "value": "v-a"}
    ]
    bad = replay(dag([{"name": "m", "template": "memo"}], memo("k", "1d"), params={"p": "a"}), root, cache=cache)
    assert bad.node("m").message == 'invalid maxAge: time: unknown unit "d" in duration "1d"'
    bad = replay(
        dag([{"name": "m", "template": "memo"}], memo("k_{{workflow.parameters.p}}", "1h"), params={"p": "a"}), root
    )
    assert (bad.node("m").phase, bad.node("m").message) == ("Error", "invalid cache key: k_a")


def test_nested_dag_inputs_and_outputs(tmp_path: Path) -> None:
    inner = {
        "name": "inner",
        "inputs": {"parameters": [{"name": "x"}]},
        "outputs": {
            "parameters": [
                {"name": "r", "valueFrom": {"parameter": "{{tasks.s.outputs.parameters.out}}"}},
                {"name": "d", "valueFrom": {"parameter": "{{tasks.nope.outputs.parameters.out}}", "default": "dflt"}},
            ]
        },
        "dag": {"tasks": [echo("s", "in-{{inputs.parameters.x}}")]},
    }
    tasks = [
        {
            "name": "inner",
            "template": "inner",
            "withItems": ["7"],
            "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]},
        },
        echo("use", "{{tasks.inner.outputs.parameters.r}}", depends="inner"),
    ]
    r = replay(dag(tasks, inner, ECHO), tmp_path)
    assert r.phase == "Succeeded", r.message
    assert r.node("inner(0:7)").type == "DAG" and r.outputs("inner(0:7)") == {"r": "in-7", "d": "dflt"}
    assert r.outputs("inner(0:7).s") == {"out": "in-7"} and r.outputs("use") == {"out": '["in-7"]'}


def test_absent_optionals_of_a_skipped_task_and_a_reference_that_never_resolves(tmp_path: Path) -> None:
    with_default = {**ECHO, "name": "echo-default", "inputs": {"parameters": [{"name": "v", "default": "dflt"}]}}
    ref = "{{tasks.a.outputs.parameters.out}}"
    tasks = [
        echo("a", "x", when="false"),
        echo("pure", ref, depends="a"),
        echo("composite", f"x-{ref}", depends="a"),
        {**echo("defaulted", ref, depends="a"), "template": "echo-default"},
        echo("coalesced", "{{=tasks.a.outputs.parameters.out ?? 'fb'}}", depends="a"),
    ]
    r = replay(dag(tasks, ECHO, with_default, failFast=False), tmp_path / "1")
    assert r.node("a").phase == "Skipped"
    assert r.node("pure").message == (
        "inputs.parameters.v: argument references an absent optional (skipped/omitted node output with no default)"
    )
    assert r.node("composite").phase == "Error" and "absent optional" in r.node("composite").message
    assert (r.outputs("defaulted"), r.outputs("coalesced")) == ({"out": "dflt"}, {"out": "fb"})
    # a reference to an output that does not exist is requeued by the controller for ever
    r = replay(
        dag([echo("a", "x"), echo("b", "{{tasks.a.outputs.parameters.nope}}", depends="a")], ECHO), tmp_path / "2"
    )
    assert r.phase == "Running" and "b" not in r.phases()
    assert r.hangs == [
        "wf-x7k2p.b: Argo requeues the task for ever: failed to resolve {{tasks.a.outputs.parameters.nope}}"
    ]


def test_pod_deadline_missing_outputs_and_unknown_volumes(tmp_path: Path) -> None:
    slow = {"name": "slow", "activeDeadlineSeconds": 1, "container": {"command": ["sleep", "30"]}}
    lost = {
        "name": "lost",
        "container": {"command": ["true"]},
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/none"}}]},
    }
    kept = {
        **lost,
        "name": "kept",
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/none", "default": "d"}}]},
    }
    orphan = {
        "name": "orphan",
        "container": {"command": ["true"], "volumeMounts": [{"name": "nope", "mountPath": "/x"}]},
    }
    script = {
        "name": "script",
        "script": {"command": ["sh"], "source": "echo from-script > /tmp/o"},
        "outputs": {"parameters": [{"name": "o", "valueFrom": {"path": "/tmp/o"}}]},
    }
    templates = [slow, lost, kept, orphan, script]
    r = replay(
        dag([{"name": t["name"], "template": t["name"]} for t in templates], *templates, failFast=False), tmp_path
    )
    assert (r.node("slow").phase, r.node("slow").message) == (
        "Failed",
        "Pod was active on the node longer than the specified deadline",
    )
    assert (r.node("lost").phase, r.node("lost").message) == (
        "Error",
        "wait: Error (exit code 1): open /mainctrfs/tmp/none: no such file or directory",
    )
    assert r.outputs("kept") == {"p": "d"} and r.outputs("script") == {"o": "from-script"}
    assert r.node("orphan").phase == "Error" and 'volumeMounts[0].name: Not found: "nope"' in r.node("orphan").message


def test_processes_that_leave_their_process_group_are_stopped_too(tmp_path: Path) -> None:
    code = "import subprocess; subprocess.Popen(['sleep', '300'], start_new_session=True)"
    daemon = {"name": "daemon", "container": {"command": ["python", "-c", code]}}
    r = replay(dag([{"name": "d", "template": "daemon"}], daemon), tmp_path)
    assert r.phase == "Succeeded" and r._ctx.procs.marked() == []


def resource(manifest: str, owner: bool = True, **fields: Any) -> dict[str, Any]:
    return {
        "name": "res",
        "resource": {"action": "create", "setOwnerReference": owner, "manifest": textwrap.dedent(manifest), **fields},
    }


def test_a_manifest_that_is_not_yaml_after_substitution(tmp_path: Path) -> None:
    manifest = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "{{workflow.parameters.p}}"}\n'
    params = {"p": 'x"y'}
    r = replay(dag([{"name": "r", "template": "res"}], resource(manifest), params=params), tmp_path / "1")
    assert r.node("r").phase == "Error" and r.node("r").message.startswith(
        "error converting YAML to JSON: yaml: line 3: "
    )
    # without setOwnerReference argoexec's kubectl rejects it: the pod fails
    r = replay(dag([{"name": "r", "template": "res"}], resource(manifest, owner=False), params=params), tmp_path / "2")
    assert r.node("r").phase == "Failed" and "error converting YAML to JSON" in r.node("r").message
    r = replay(dag([{"name": "r", "template": "res"}], resource(manifest), params={"p": "fine"}), tmp_path / "3")
    assert (r.node("r").phase, r.node("r").message) == (
        "Error",
        "not replayed: a v1 ConfigMap resource (only TFJob and InferenceService run locally)",
    )


TFJOB = """\
    apiVersion: kubeflow.org/v1
    kind: TFJob
    metadata:
      generateName: "{{workflow.name}}-job-"
      annotations: {out: "/data/{{workflow.name}}"}
    spec:
      tfReplicaSpecs:
        Chief:
          replicas: 1
          restartPolicy: Never
          template:
            spec:
              containers:
              - name: tensorflow
                image: x
                command: [sh, -c, 'echo "$TF_CONFIG" > /data/chief.json; exit CODE']
                volumeMounts: [{name: data, mountPath: /data}]
              volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
        PS:
          replicas: 1
          restartPolicy: Never
          template:
            spec:
              containers: [{name: tensorflow, image: x, command: [sleep, "600"]}]
"""


def test_tfjob_runs_its_replicas_with_the_operators_tf_config_and_status(tmp_path: Path) -> None:
    def job(code: int) -> dict[str, Any]:
        conds = {
            "successCondition": "status.replicaStatuses.Chief.succeeded > 0",
            "failureCondition": "status.replicaStatuses.Chief.failed > 0",
        }
        tmpl = resource(TFJOB.replace("CODE", str(code)), **conds)
        tmpl["outputs"] = {"parameters": [{"name": "out", "valueFrom": {"jsonPath": "{.metadata.annotations.out}"}}]}
        return dag([{"name": "job", "template": "res"}], tmpl)

    r = replay(job(0), tmp_path / "ok")
    assert r.phase == "Succeeded", r.message
    node = r.node("job")
    assert node.outputs == {"out": "/data/wf-x7k2p"} and node.resource["metadata"]["name"].startswith("wf-x7k2p-job-")
    assert node.resource["status"]["replicaStatuses"] == {"Chief": {"succeeded": 1}, "PS": {"succeeded": 1}}
    assert node.resource["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
    config = json.loads((tmp_path / "ok" / "volumes" / "data" / "chief.json").read_text())
    assert config["task"] == {"type": "chief", "index": 0} and config["environment"] == "cloud"
    assert sorted(config["cluster"]) == ["chief", "ps"] and config["cluster"]["ps"][0].startswith("127.0.0.1:")
    r = replay(job(1), tmp_path / "failed")
    assert (r.node("job").phase, r.node("job").message) == (
        "Failed",
        "failure condition 'status.replicaStatuses.Chief.failed>0' evaluated true",
    )


@pytest.mark.skipif(not (EXAMPLES.parent.parent / "shared" / "schemas").is_dir(), reason="no ../shared/schemas")
def test_tfjob_manifests_are_checked_against_the_crd_schema(tmp_path: Path) -> None:
    bad = TFJOB.replace("CODE", "0").replace(
        "    spec:\n      tfReplicaSpecs:", "    spec:\n      bogus: 1\n      tfReplicaSpecs:"
    )
    r = replay(dag([{"name": "job", "template": "res"}], resource(bad)), tmp_path)
    assert (
        r.node("job").phase == "Failed" and "is invalid" in r.node("job").message and "bogus" in r.node("job").message
    )


SERVER = (
    "import http.server as h, os; "
    "h.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), h.SimpleHTTPRequestHandler).serve_forever()"
)
ISVC = f"""\
    apiVersion: serving.kserve.io/v1beta1
    kind: InferenceService
    metadata: {{name: svc}}
    spec:
      predictor:
        containers:
        - name: kserve-container
          image: x
          command: [python, -c, "{SERVER}"]
"""


def test_inference_service_serves_until_the_replay_is_closed(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    tmpl = resource(ISVC, owner=False, successCondition="status.modelStatus.states.activeModelState == Loaded")
    tmpl["resource"]["action"] = "apply"
    tmpl["outputs"] = {"parameters": [{"name": "endpoint", "valueFrom": {"jsonPath": "{.status.address.url}"}}]}
    with replay(dag([{"name": "serve", "template": "res"}], tmpl), tmp_path, keep_servers=True) as r:
        assert r.phase == "Succeeded", r.message
        endpoint = r.outputs("serve")["endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError):  # the server answers (404 for this path)
            urllib.request.urlopen(f"{endpoint}/v1/models/svc", timeout=5)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/v1/models/svc", timeout=5)
    # a predictor that exits never becomes Loaded: with only a success condition Argo waits for ever
    tmpl["resource"]["manifest"] = tmpl["resource"]["manifest"].replace(f'"{SERVER}"', '"pass"')
    r = replay(dag([{"name": "serve", "template": "res"}], tmpl), tmp_path / "2")
    assert r.phase == "Running" and r.node("serve").phase == "Running"


def test_deployments_are_not_replayed_and_cron_workflows_are(tmp_path: Path) -> None:
    deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: router}\nspec: {}\n"
    r = replay(dag([{"name": "d", "template": "res"}], resource(deploy, owner=False)), tmp_path / "1")
    assert r.node("d").phase == "Error" and r.node("d").message.startswith("not replayed: a apps/v1 Deployment")
    wf = dag([echo("a", "{{workflow.parameters.p}}")], ECHO, params={"p": "cron"})
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "c"},
        "spec": {"schedules": ["0 * * * *"], "workflowSpec": wf["spec"]},
    }
    assert replay(cron, tmp_path / "2").outputs("a") == {"out": "cron"}


# -- the compiled quickstart ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.tf
def test_quickstart_replays_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from dmlc.driver import compile_file

    docs = [d for d in yaml.safe_load_all(compile_file(str(EXAMPLES / "quickstart.dml"), "argo")) if d]
    (wf,) = [d for d in docs if d.get("kind") == "Workflow"]
    with replay(wf, tmp_path, cache=tmp_path / "memo.json", keep_servers=True) as r:
        assert r.phase == "Succeeded", r.message
        assert [r.node(f"model({i}:{m})").phase for i, m in enumerate(["cnn", "dropout", "mlp"])] == ["Succeeded"] * 3
        metrics = json.loads(r.outputs("best")["metrics"])
        assert metrics["metric"] == "accuracy" and len(metrics["candidates"]) == 3
        endpoint = r.outputs("classifier")["endpoint"]

        # ready per the compiled readinessProbe, so the model is loaded: no 503 to wait out
        status = json.loads(urllib.request.urlopen(f"{endpoint}/v1/models/classifier", timeout=10).read())
        assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_the_replay_probes_readiness_by_kubernetes_rules() -> None:
    """httpGet: ready only for 200-399 (a loading server's 503 is not ready); no probe: the port accepting."""
    import http.server
    import threading

    from tests.argo_replay.kserve import InferenceService

    status = {"code": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        isvc = InferenceService.__new__(InferenceService)
        isvc.port, isvc.probe = server.server_address[1], "/v2/health/ready"
        assert not isvc._answers()
        status["code"] = 200
        assert isvc._answers()
        status["code"], isvc.probe = 503, None  # a TCP probe: the port answers, whatever it says
        assert isvc._answers()
    finally:
        server.shutdown()
        server.server_close()
