"""Argo target, stage 4 (emit): the workflow's YAML text, written one template and one DAG task at a time.

Takes a `Plan`; gives the same text as dumping the whole `Workflow` model at once (`workflow.build`, kept
as the reference: the golden files and `tests/targets/test_argo_stream.py` compare them), but each
template, and each task of the entrypoint DAG, is built, dumped and dropped before the next: held as
hera models plus their `model_dump`, a 100,000-step workflow took 2.8 GB (`bench/bench_scale.py`).
The document around them is dumped with a stand-in template and a stand-in task in their places.
"""

from __future__ import annotations

from typing import Any

import hera.workflows.models as m
from dmlc_targets.argo import dag, fastyaml, workflow
from dmlc_targets.argo.plan import Plan

STAND_IN = "dmlc-stream-stand-in"


def _dump(obj: Any, indent: int) -> str:
    data = obj if isinstance(obj, dict) else obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    return fastyaml.dump_item(data, indent)


def _split(text: str, indent: int) -> tuple[str, str]:
    """The text before and after the stand-in item (`- name: <stand-in>` and its `template:` line)."""
    line = " " * indent + f"- name: {STAND_IN}\n"
    head, found, rest = text.partition(line)
    assert found, "the stand-in item is missing"
    return head, rest.split("\n", 1)[1] if rest.startswith(" " * (indent + 2) + "template:") else rest


def workflow_text(plan: Plan, prefix: str = "") -> str:
    """`prefix` + the Workflow (or CronWorkflow) document, as `fastyaml.dump(to_plain(build(plan)))` writes
    it. One join of all the pieces: concatenating the big parts would copy the whole text once more each."""
    indent = 4 if plan.pipeline.schedule is not None else 2  # spec.templates / spec.workflowSpec.templates
    templates, names = [], set()
    for template in workflow.step_side_templates(plan):
        if template.name:
            names.add(template.name)
        templates.append(_dump(template, indent))
    gate, main = workflow.entry_names(plan, names)
    if dag.needs_gates(plan):
        templates.append(_dump(dag.gate_template(plan, gate), indent))
    spec = workflow.workflow_spec(plan, [m.Template(name=STAND_IN)], main)
    shell = workflow.to_plain(workflow.build(plan, spec), plan.options.version)
    head, tail = _split(fastyaml.dump(shell), indent)
    pieces = [prefix, head, *_main_template(plan, main, gate, indent), *templates, tail]
    del templates
    return "".join(pieces)


def _main_template(plan: Plan, name: str, gate: str, indent: int) -> list[str]:
    shell = m.Template(name=name, dag=m.DAGTemplate(tasks=[m.DAGTask(name=STAND_IN, template=STAND_IN)]))
    task_indent = indent + 4  # - name: / dag: / tasks: (a sequence in a mapping is not indented)
    head, tail = _split(_dump(shell, indent), task_indent)
    return [head, *(_dump(task, task_indent) for task in dag.main_tasks(plan, gate)), tail]
