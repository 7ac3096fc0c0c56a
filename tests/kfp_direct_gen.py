"""Hypothesis strategies for the KFP direct path's byte-identity tests: pipelines it builds, and YAML data.

`flat_pipelines` draws pipelines (YAML form) within the direct path's coverage (every step in the root
DAG) using every setting it writes: params of each type, tasks with a command or a function, built-in
ingest/train/serve steps, param and artifact outputs read by later steps, `after`, retry, timeout,
resources, env (literal and with references), secrets, labels, memoize with `max_age` and `key`, Kueue
labels, node selectors, tolerations, node affinity, accelerator types, image pull secrets and `defaults`
of placement, volumes, launched steps (an allreduce TFJob, a served model) and
step names kfp renames alike (`a_b` and `A_b` are both task `a-b`). `yaml_documents` draws JSON-like
data with the scalars that test PyYAML's quoting and folding rules.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

NAMES = ["a_b", "A_b", "class", "dmlc_x", "x__y", "step", "Task2", "_z", "s"]
TEXTS = ["x", "", "yes", "3", "a b", "it's", "tab\there", "é", "{{$}}", "long " * 30, "a\nb"]


def _param_value(rng: random.Random) -> Any:
    return rng.choice([
        lambda: rng.randint(-(10**6), 10**6),
        lambda: rng.randint(-(10**4), 10**4) + 0.25,
        lambda: rng.random() < 0.5,
        lambda: rng.choice(TEXTS),
        lambda: [rng.randint(0, 9) for _ in range(rng.randint(0, 3))],
        lambda: {k: rng.randint(0, 9) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))},
    ])()  # fmt: skip


def _settings(rng: random.Random, step: dict[str, Any], params: list[str]) -> None:
    if rng.randint(0, 3) == 0:
        step["retry"] = {"limit": rng.randint(0, 3), "backoff": rng.choice(["10s", "1m", "2h"])}
        if rng.random() < 0.5:
            step["retry"]["factor"] = rng.choice([1, 2, 3.5])
    if rng.randint(0, 3) == 0:
        step["timeout"] = rng.choice(["5m", "90s", "1h"])
    if rng.randint(0, 3) == 0:
        step["resources"] = {"cpu": rng.choice(["500m", "2", "250m"]), "memory": rng.choice(["1Gi", "512Mi"])}
        if rng.random() < 0.5:
            step["resources"]["gpu"] = 1
            if rng.random() < 0.5:
                step["resources"]["accelerator"] = rng.choice(["amd.com/gpu", "nvidia.com/gpu"])
    if rng.randint(0, 3) == 0:
        ref = "${params." + params[0] + "}" if params else "v"
        step["env"] = {"MODE": rng.choice([t for t in TEXTS if "$" not in t]), "REF": ref}
    if rng.randint(0, 4) == 0:
        step["secret_env"] = {"TOKEN": "creds/token", "OTHER": "creds/other", "K": "b/k"}
    if rng.randint(0, 4) == 0:
        step["labels"] = {"stage": rng.choice(["one", "two"])}
    if rng.randint(0, 3) == 0:
        memo: dict[str, Any] = {}
        if rng.random() < 0.5:
            memo["max_age"] = rng.choice(["1h", "7d", "30s"])
        if rng.random() < 0.5:
            memo["key"] = "k-${params." + params[0] + "}" if params else "k"
        step["memoize"] = memo
    if rng.randint(0, 3) == 0:
        _placement(rng, step)


def _placement(rng: random.Random, step: dict[str, Any]) -> None:
    """Placement of every kind; a service account only where KFP takes one (a TFJob's or a served
    model's pods: a task's is DML100)."""
    if rng.random() < 0.5:
        step["node_selector"] = {"pool": rng.choice(["gpu", "ml"]), "example.com/zone": "a"}
    if rng.random() < 0.5:
        step["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 30},
                               {"key": "team", "value": rng.choice(TEXTS[:1] + ["ml"])}]  # fmt: skip
    if rng.random() < 0.5:
        step["affinity"] = {"require": {"gpu.example.com/model": ["a100", "h100"]}} if rng.random() < 0.7 else {}
        if rng.random() < 0.5:
            step["affinity"]["prefer"] = {"zone": ["us-a"], "example.com/rack": ["r1", "r2"]}
    if step["kind"] == "serve" or step.get("strategy"):
        step["service_account"] = "trainer"


def _step(rng: random.Random, earlier: dict[str, dict[str, str]], params: list[str]) -> tuple[dict, dict]:
    """A step and its outputs (name -> param | artifact); reads come from the last 20 steps."""
    kind = rng.choice(["command", "command", "command", "run", "ingest", "train", "serve"])
    recent = list(earlier)[-20:]
    readable = [f"{s}.{o}" for s in recent for o in earlier[s]]
    reads = rng.sample(readable, min(len(readable), rng.randint(0, 2)))
    data = [r for r in readable if r.endswith(".dataset")]
    models = [r for r in readable if r.endswith(".model")]
    if kind == "serve" and not models:
        kind = "train"
    if kind == "ingest" or (kind == "train" and not data):
        step: dict[str, Any] = {"kind": "ingest", "dataset": "digits"}
        outputs = {"dataset": "artifact"}
    elif kind == "train":
        step = {"kind": "train", "data": "${" + rng.choice(data) + "}", "model": "mlp"}
        if rng.randint(0, 2) == 0:  # launched: a TFJob
            step |= {"strategy": "allreduce", "workers": 2}
        outputs = {"model": "artifact", "metrics": "param"}
    elif kind == "serve":
        step = {"kind": "serve", "model": "${" + rng.choice(models) + "}", "replicas": rng.randint(1, 2)}
        outputs = {"endpoint": "param"}
    else:
        names = rng.sample(["out", "art", "n"], rng.randint(0, 2))
        outputs = {name: rng.choice(["param", "artifact"]) for name in names}
        step = {"kind": "task", "outputs": outputs}
        used = ["${" + r + "}" for r in reads] + ["${params." + p + "}" for p in params[:1] if rng.random() < 0.5]
        if kind == "run":
            step["run"] = "mod:fn"
            step["inputs"] = {f"i{k}": ref for k, ref in enumerate(used)}
        else:
            step["command"] = ["echo", rng.choice(TEXTS), *used]
    if recent and rng.randint(0, 3) == 0:
        step["after"] = [rng.choice(recent)]
    _settings(rng, step, params)
    return step, outputs


def flat_pipeline(seed: int, max_steps: int, min_steps: int = 1) -> dict[str, Any]:
    """A pipeline of `min_steps` to `max_steps` steps (fewer when a name repeats), all drawn from `seed`."""
    rng = random.Random(seed)
    params = {name: _param_value(rng) for name in rng.sample(["p", "epochs", "on", "name", "rate"], rng.randint(0, 3))}
    doc: dict[str, Any] = {"pipeline": rng.choice(["flat", "Flat_Pipe", "p1"]), "image": "reg.example/img:1"}
    if rng.random() < 0.5:
        doc["description"] = rng.choice([t for t in TEXTS if t])
    if params:
        doc["params"] = params
    if rng.randint(0, 3) == 0:
        doc["labels"] = {"team": "ml"}
    if rng.randint(0, 3) == 0:
        doc["scheduling"] = {"queue": "q1", "priority": "high"}
    options: dict[str, Any] = {}
    if rng.randint(0, 3) == 0:
        options["node_selector"] = {"pool": "ml"}
        options["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}]
    if rng.randint(0, 4) == 0:
        options["cache_max_age"] = "ignore"
    if rng.randint(0, 4) == 0:
        doc["image_pull_secrets"] = ["regcred", "mirror"]
    if rng.randint(0, 4) == 0:
        doc["defaults"] = {"node_selector": {"pool": "cpu"}, "tolerations": [{"operator": "Exists"}]}
    if rng.randint(0, 3) == 0:
        doc["volumes"] = {"models": {"size": "1Gi", "mount": "/trained"}}
        if rng.random() < 0.5:
            doc["volumes"]["scratch"] = {"size": "512Mi", "mount": "/scratch", "storage_class": "fast",
                                         "access": "ReadWriteOnce"}  # fmt: skip
    if rng.randint(0, 4) == 0:
        options["data_volume_size"] = "20Gi"
    if options:
        doc["targets"] = {"kfp": options}
    steps: dict[str, Any] = {}
    outputs: dict[str, dict[str, str]] = {}
    for i in range(rng.randint(min_steps, max_steps)):
        name = rng.choice(NAMES) + str(i // 9) if rng.randint(0, 3) == 0 else f"s{i}"
        if name not in steps:
            steps[name], outputs[name] = _step(rng, outputs, sorted(params))
    doc["steps"] = steps
    return doc


def flat_pipelines(max_steps: int = 12, min_steps: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    """Pipelines within the direct path's coverage, drawn from a seed (cheap to draw at 1,000 steps)."""
    return st.integers(0, 2**32).map(lambda seed: flat_pipeline(seed, max_steps, min_steps))


_SCALARS = st.one_of(
    st.text(st.sampled_from(list("ab '\"-:#?,[]{}&*!|>%@`\n\t\\é\x85\u2028\x00\ufeff🙂")), max_size=12),
    st.lists(st.sampled_from(["word", "x" * 30, "'q'", " ", "  ", "a:b", '{"k":1}', "\n", "é", "\t"]), max_size=40).map(
        "".join
    ),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(["", "-", "---x", "...", "on", "NO", "3.0", "1e5", "0x1f", "2024-01-01", "<<", "=", "~"]),
)
_KEYS = st.text(st.sampled_from(list("ab '\"-:#é\t1")), min_size=1, max_size=90)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)
yaml_documents = st.lists(
    st.one_of(st.dictionaries(_KEYS, _DATA, min_size=1, max_size=5), st.lists(_DATA, min_size=1, max_size=5)),
    min_size=1,
    max_size=2,
)
