"""Argo target, stage 4 (emit): template-level Prometheus metrics of a step (`target argo { prometheus = true }`).

Takes a `Plan` and a step; gives the template's `metrics.prometheus`: one gauge per metric the step
reports (`dmlc.semantics.metrics.names`), valued from its `metric-<name>` output parameter. The rules
are argo-workflows v4.1 (`workflow/controller/operator.go` computeMetrics, `steps.go` prepareMetricScope,
`workflow/metrics/metrics_custom.go` UpsertCustomMetric, `workflow/metrics/util.go`, `workflow/validate/
validate.go`):

- a name and every label key must pass `IsValidMetricName` (Prometheus' legacy rule, no `:`): the gauge
  is `dmlc_<metric>`, so the metric's own name must be `[A-Za-z_][A-Za-z0-9_]*` (`check.py`: DML106);
- `help` is required, and one name has one help: every step's gauge of a metric shares it;
- a realtime gauge may only read `{{workflow.duration}}` / `{{duration}}`, never an output: `realtime:
  false`, so the controller evaluates the value once the node is fulfilled, from its output parameters
  (`outputs.parameters.<name>` in the metric scope), and parses it with strconv.ParseFloat;
- a node that failed has no output parameters: the controller cannot substitute the value and skips
  the gauge (a MetricsError condition on the workflow), before any `when`, so none is set;
- one gauge per label set: the labels name the pipeline and the step, and, for a step that runs once per
  item (fanned out, or per instance in a loop body: `wait = "each"`), the instance's node name
  (`{{node.name}}`, which executeTemplate puts in the template's local scope and ProcessArgs substitutes
  before the node runs: `<workflow>.model(0:0.01)`), so that the instances do not overwrite each other.
"""

from __future__ import annotations

import re

import hera.workflows.models as m
from dmlc_targets.argo.plan import Plan

from dmlc.semantics import metrics as ui_metrics

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # prometheus/common model.LegacyValidation, less `:`
PREFIX = "dmlc_"


def metric_name(metric: str) -> str:
    return PREFIX + metric


def valid(metric: str) -> bool:
    return NAME.match(metric_name(metric)) is not None


def template_metrics(plan: Plan, step: str) -> m.Metrics | None:
    """The step template's `metrics`, None unless asked for and the step reports metrics."""
    if not plan.options.prometheus:
        return None
    names = ui_metrics.names(plan.steps[step])
    if not names:
        return None
    labels = [m.MetricLabel(key="pipeline", value=plan.pipeline.pipeline), m.MetricLabel(key="step", value=step)]
    if plan.fanned(step) or plan.scope(step) is not None:
        labels.append(m.MetricLabel(key="node", value="{{node.name}}"))
    return m.Metrics(prometheus=[_gauge(metric, labels) for metric in names])


def _gauge(metric: str, labels: list[m.MetricLabel]) -> m.Prometheus:
    value = f"{{{{outputs.parameters.{ui_metrics.param_name(metric)}}}}}"
    return m.Prometheus(
        name=metric_name(metric),
        help=f"{metric} reported by a dmlc step (train, evaluate, select)",
        labels=labels,
        gauge=m.Gauge(value=value, realtime=False),
    )
