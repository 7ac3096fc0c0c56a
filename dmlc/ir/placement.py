"""IR blocks of placement and identity (stage 2): where a step's pods may run and as whom.

`node_selector`, `tolerations`, `affinity` and `service_account` sit on every step and in `defaults`;
`accelerator` in `resources`; `image_pull_secrets` on the pipeline. The value types carry Kubernetes'
own formats as patterns (label keys and values, DNS-1123 names, extended resource names), so the JSON
Schema refuses what the API server would; relations between fields are `dmlc.validate.placement`'s
(DML028). How each target writes them: `dmlc.placement`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_SUBDOMAIN = rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*"
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
# apimachinery validation.IsQualifiedName (label keys) / IsValidLabelValue, and IsDNS1123Subdomain
LabelKey = Annotated[str, StringConstraints(pattern=rf"^(?:{_SUBDOMAIN}/)?{_NAME}$"), MaxLen(317)]
LabelValue = Annotated[str, StringConstraints(pattern=rf"^(?:{_NAME})?$")]
K8sName = Annotated[str, StringConstraints(pattern=rf"^{_SUBDOMAIN}$"), MaxLen(253)]
# an extended resource is fully qualified (`vendor.com/gpu`) and neither native nor a quota name:
# k8s.io/kubernetes pkg/apis/core/helper/helpers.go (v1.31) IsExtendedResourceName refuses a name that
# contains "kubernetes.io/" (IsPrefixedNativeResource: no device plugin may advertise it, the kubelet
# refuses to register one, so the pod never schedules) or starts with "requests." (the quota prefix,
# DefaultResourceRequestsPrefix: the API server refuses it as a container resource). The lookaheads need
# Python's regex engine (the model sets regex_engine); the JSON Schema's ECMA regex has them too.
_EXTENDED = r"(?![^/]*kubernetes\.io/)(?!requests\.)"
ResourceName = Annotated[str, StringConstraints(pattern=rf"^{_EXTENDED}{_SUBDOMAIN}/{_NAME}$"), MaxLen(317)]
PATTERN_WORDS = {  # the JSON Schema's messages (editors) for these patterns
    rf"^(?:{_SUBDOMAIN}/)?{_NAME}$": "a Kubernetes label key: [DNS-subdomain/]name, e.g. cloud.google.com/gke-nodepool",
    rf"^(?:{_NAME})?$": "a Kubernetes label value: up to 63 letters, digits, -, _ and . (alphanumeric at both ends)",
    rf"^{_SUBDOMAIN}$": "a Kubernetes name: lower-case letters, digits, - and . (e.g. trainer, regcred)",
    rf"^{_EXTENDED}{_SUBDOMAIN}/{_NAME}$": "an extended resource name such as nvidia.com/gpu or amd.com/gpu "
    "(not in the kubernetes.io domain, not starting with requests.)",
}
DEFAULT_ACCELERATOR = "nvidia.com/gpu"
PLACEMENT = ("node_selector", "tolerations", "affinity", "service_account")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class TaintToleration(_Block):
    key: LabelKey | None = None
    """Taint key it tolerates (absent: every key, with operator Exists)."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal: the taint's value must be `value`; Exists: any value."""
    value: LabelValue | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect it tolerates (absent: every effect)."""
    toleration_seconds: int | None = Field(None, ge=0)
    """With effect NoExecute: stay this many seconds after the taint appears, then be evicted."""


class NodeAffinity(_Block):
    """Node affinity with `In` expressions: a node label must have one of the listed values."""

    require: dict[LabelKey, Annotated[list[LabelValue], MinLen(1)]] = Field(default_factory=dict)
    """Labels a node must have, each with one of its values (all must hold)."""
    prefer: dict[LabelKey, Annotated[list[LabelValue], MinLen(1)]] = Field(default_factory=dict)
    """Labels the scheduler prefers (each one a node matches adds weight 1)."""
