"""The IR (stage 2 output): pydantic v2 models of a pipeline, one class per block and step kind.

The same models validate both syntaxes (a parsed `Document` is already in the YAML form's shape)
and generate the JSON Schema. Attribute docstrings are the schema's descriptions. Spans are kept
off the models (in the `Document`), so two twins with different layouts still compare equal.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from annotated_types import Ge, Gt, Le, MinLen
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints

from dmlc.ir.metric_names import EvalMetric, SelectMetric
from dmlc.ir.placement import K8sName, LabelKey, LabelValue, NodeAffinity, ResourceName, TaintToleration
from dmlc.ir.types import NAME_RE, REF_OR, UNIQUE, Cpu, Duration, Memory
from dmlc.ir.when import WHEN_FIELD, When

Name = Annotated[str, StringConstraints(pattern=NAME_RE)]
RefOrStr = Annotated[str, REF_OR]
RefOrPosInt = Annotated[int, Ge(1), REF_OR]  # constraints sit inside, so a Ref skips them
RefOrPosFloat = Annotated[float, Gt(0), REF_OR]
Scalar = Union[str, int, float, bool, None]
OutputKind = Literal["artifact", "param"]
DISTRIBUTED = ("allreduce", "parameter_server")
BUILTIN_MODELS = ("cnn", "dropout", "batch_norm", "mlp")
# scheme, a DNS-style bucket (3-63 chars), an optional prefix without empty or dot segments
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# a host (DNS name, IPv4, [IPv6]) and a port only: no user:password (a credential in the manifest), path,
# query, fragment or template text (`{{...}}` must never reach Argo)
ENDPOINT_RE = rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::{_PORT})?/?$"
# an image reference's characters (registry[:port]/name[:tag][@digest]): never braces, `$` or spaces, so no
# template text reaches an engine through it
IMAGE_RE = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$"
Image = Annotated[str, StringConstraints(pattern=IMAGE_RE)]
STORE_URL_RE = r"^(s3|gs)://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*)*/?$"
DEFAULT_IMAGE = "ghcr.io/dmlc/runtime:0.1"
GPU_IMAGE = DEFAULT_IMAGE + "-gpu"  # the runtime built with the `gpu` extra, for steps that ask for GPUs
ExitCode = Annotated[int, Ge(1), Le(255)]  # a failure's exit status (dmlc.semantics.retry): 0 is success


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True, arbitrary_types_allowed=True)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]


class Memoize(Node):
    key: str | None = None
    """Cache key template; default: digest of the resolved spec, image, input artifact digests and item."""
    max_age: Duration | None = None
    """A cached result older than this is a miss (e.g. 1h, 7d)."""


class Retry(Node):
    limit: int = Field(3, ge=0)
    """Retries after the first attempt."""
    backoff: Duration | None = None
    """Wait before the first retry (e.g. 10s)."""
    factor: float | None = Field(None, ge=1)
    """Multiply the wait by this after each retry."""
    max_backoff: Duration | None = None
    """Never wait longer than this between retries."""
    on: Literal["any", "failure", "transient"] | Annotated[list[ExitCode], MinLen(1), UNIQUE] = "any"
    """Which failures retry: transient = killed, OOM, timeout, exit 75; failure = non-zero exit; or a list
    of exit codes (1..255, a signal N as 128+N; a timeout names none), e.g. [75, 137]."""


class Resources(Node):
    model_config = ConfigDict(regex_engine="python-re")  # `accelerator`'s pattern has lookaheads
    cpu: Cpu | None = None
    """CPU request and limit (e.g. 500m, 2)."""
    memory: Memory | None = None
    """Memory request and limit (e.g. 512Mi, 2Gi)."""
    gpu: int | None = Field(None, ge=0)
    """Number of GPUs."""
    accelerator: ResourceName | None = None
    """Extended resource name of the GPUs (KFP's accelerator type), e.g. amd.com/gpu; default nvidia.com/gpu."""


class Checkpoint(Node):
    every: int = Field(1, ge=1)
    """Checkpoint every N epochs."""
    keep: int = Field(1, ge=1)
    """How many checkpoints to keep."""


class Elastic(Node):
    min_workers: int = Field(1, ge=1)
    """Fewest workers the job may continue with after a failure."""
    max_workers: int = Field(1, ge=1)
    """Most workers the job may use."""


class Autoscale(Node):
    min: int | None = Field(None, ge=0)
    """Fewest replicas."""
    max: int | None = Field(None, ge=1)
    """Most replicas."""
    metric: Literal["concurrency", "rps", "cpu", "memory"] = "concurrency"
    """What the autoscaler watches."""
    target: float = Field(1, gt=0)
    """Target value of the metric per replica."""


class Events(Node):
    max_concurrency: int = Field(1, ge=1)
    """In-flight requests per replica; past it the server answers HTTP 429."""
    rate_limit: float | None = Field(None, gt=0)
    """Requests per second accepted; past it HTTP 429."""
    idle_timeout: Duration = 60.0
    """Scale to zero after this long without requests."""


class Batching(Node):
    max_batch: int = Field(32, ge=1, le=4096)
    """Most instances the server joins into one model call (1: every request alone)."""
    timeout: Duration = 0.002
    """Longest a request waits for others to join its batch, e.g. 2ms."""


class Step(Node):
    """Attributes every step kind has."""

    OUTPUTS: ClassVar[dict[str, OutputKind]] = {}
    kind: str
    """The step kind."""
    after: list[Name] = Field(default_factory=list)
    """Run after these steps (ordering without data)."""
    for_each: Annotated[list[Any], REF_OR] | None = None
    """Fan-out: one instance per item of a static list or of a list output `${step.output}`."""
    wait: Literal["all", "each"] | None = None
    """On a consumer of a fanned-out step: all = once after every instance, each = once per instance."""
    min_success: int | None = Field(None, ge=1)
    """On a fanned-out step: downstream proceeds if at least this many instances succeeded."""
    when: Annotated[When, WHEN_FIELD] | None = None
    """Run only if this expression over params and outputs holds, e.g. "best.accuracy >= 0.8"."""
    memoize: Memoize | None = None
    """Skip the step when a fresh cached result exists."""
    retry: Retry | None = None
    """Retry policy."""
    timeout: Duration | None = None
    """Time limit per attempt."""
    resources: Resources | None = None
    """Resource requests (and limits)."""
    image: Image | None = None
    """Container image (default: the pipeline's image)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables."""
    secret_env: dict[str, Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]*/[A-Za-z0-9._-]+$")]] = Field(
        default_factory=dict
    )
    """Environment variables from secrets, as "secret-name/key"; never inlined."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels on the step's pods / metadata."""
    priority: int | None = None
    """Order among ready steps of this pipeline (higher first)."""
    node_selector: dict[LabelKey, LabelValue] | None = None
    """Node labels the step's pods require (Kubernetes nodeSelector); no effect locally."""
    tolerations: list[TaintToleration] | None = None
    """Node taints the step's pods tolerate; no effect locally."""
    affinity: NodeAffinity | None = None
    """Node affinity: `require` / `prefer` node labels with one of the listed values; no effect locally."""
    service_account: K8sName | None = None
    """Kubernetes service account of the step's pods (workload identity); no effect locally."""
    _refs: list[Any] | None = PrivateAttr(default=None)  # memo of graph.refs(); the IR is not mutated

    def outputs(self) -> dict[str, OutputKind]:
        return dict(self.OUTPUTS)


class Ingest(Step):
    OUTPUTS: ClassVar[dict[str, OutputKind]] = {"dataset": "artifact"}
    kind: Literal["ingest"]
    """Step kind: ingest."""
    dataset: Literal["fashion_mnist", "mnist", "digits"] | None = None
    """A built-in dataset."""
    path: RefOrStr | None = None
    """Read files from this path instead of a built-in dataset."""
    format: Literal["idx", "npz", "csv", "tfrecord"] | None = None
    """Format of the files at `path`."""
    split: float = Field(0.2, gt=0, lt=1)
    """Test fraction for datasets without a test split."""
    batch: RefOrPosInt = 32
    """Batching pattern: batch size per replica."""
    shard: Literal["off", "auto", "data", "file"] = "auto"
    """Sharding pattern: how workers split the data (tf.data auto-shard policy)."""
    num_shards: int | None = Field(None, ge=1)
    """Number of shards (default: one per worker)."""
    cache: Literal["none", "memory", "disk"] = "none"
    """Caching pattern: keep the decoded data in memory or on disk after the first epoch."""
    shuffle: bool | int = True
    """Shuffle (true, or a buffer size)."""
    normalize: bool = True
    """Scale pixel values to [0, 1]."""


class Train(Step):
    OUTPUTS: ClassVar[dict[str, OutputKind]] = {"model": "artifact", "metrics": "param"}
    kind: Literal["train"]
    """Step kind: train."""
    data: RefOrStr
    """The dataset, e.g. ${data.dataset}."""
    model: RefOrStr = "cnn"
    """cnn | dropout | batch_norm | mlp | "pkg.module:build"."""
    epochs: RefOrPosInt = 1
    """Training epochs."""
    steps_per_epoch: RefOrPosInt | None = None
    """Steps per epoch (default: one pass over the data)."""
    optimizer: Literal["adam", "sgd", "rmsprop", "adagrad"] = "adam"
    """Optimizer."""
    learning_rate: RefOrPosFloat | None = None
    """Learning rate (default: the optimizer's)."""
    strategy: Literal["single", "mirrored", "allreduce", "parameter_server"] = "single"
    """Distribution: single | mirrored | allreduce (collective) | parameter_server."""
    workers: int = Field(1, ge=1)
    """Worker processes."""
    ps: int = Field(0, ge=0)
    """Parameter server processes (parameter_server strategy)."""
    gang: bool = False
    """All workers start together or none do."""
    checkpoint: Checkpoint | None = None
    """Elasticity: checkpoint so a restarted job resumes."""
    restarts: int = Field(0, ge=0)
    """Fault tolerance: restart the job up to this many times."""
    elastic: Elastic | None = None
    """Restart with as many workers as are available within these bounds."""
    seed: int | None = None
    """Random seed."""

    @property
    def distributed(self) -> bool:
        """Runs as a cluster of processes (a TFJob on Kubernetes, local worker processes here)."""
        return self.strategy in DISTRIBUTED

    @property
    def slots(self) -> int:
        """Processes started together: workers, parameter servers and the chief of parameter_server."""
        if not self.distributed:
            return 1
        return self.workers + self.ps + (1 if self.strategy == "parameter_server" else 0)


class Evaluate(Step):
    OUTPUTS: ClassVar[dict[str, OutputKind]] = {"metrics": "param"}
    kind: Literal["evaluate"]
    """Step kind: evaluate."""
    model: RefOrStr
    """The model to evaluate."""
    data: RefOrStr
    """The dataset to evaluate on (its test split)."""
    metrics: list[EvalMetric] = Field(default_factory=lambda: ["accuracy"])
    """Metrics to compute."""


class Select(Step):
    kind: Literal["select"]
    """Step kind: select."""
    models: Annotated[list[str], REF_OR]
    """Candidates: a fan-in like ${model[*].model}."""
    metric: SelectMetric = "accuracy"
    """Metric to compare."""
    goal: Literal["max", "min"] = "max"
    """Pick the largest or the smallest."""
    top: int = Field(1, ge=1)
    """How many to keep."""
    threshold: float | None = None
    """Drop candidates that do not reach this value."""

    def outputs(self) -> dict[str, OutputKind]:
        return {"model" if self.top == 1 else "models": "artifact", "metrics": "param"}


class Serve(Step):
    OUTPUTS: ClassVar[dict[str, OutputKind]] = {"endpoint": "param"}
    kind: Literal["serve"]
    """Step kind: serve."""
    model: RefOrStr
    """The model to serve."""
    replicas: int = Field(1, ge=1)
    """Replicated services: server replicas."""
    shards: int | None = Field(None, ge=2)
    """Sharded services: split each request over this many shard servers."""
    shard_key: str | None = None
    """Field of an instance that picks its shard."""
    autoscale: Autoscale | None = None
    """Autoscaling."""
    events: Events | None = None
    """Event-driven: scale from zero, rate-limited."""
    batching: Batching | None = None
    """Adaptive request batching (TF Serving's): concurrent requests joined into one model call."""
    port: int | None = Field(None, ge=1, le=65535)
    """Port (local runs)."""


class Task(Step):
    kind: Literal["task"]
    """Step kind: task."""
    run: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")] | None = None
    """A Python function "pkg.module:function" run by the runtime."""
    command: list[str] | None = None
    """A command (argument list, no shell)."""
    args: list[Any] = Field(default_factory=list)
    """Arguments after the command; "${step.out}" interpolates."""
    inputs: dict[Name, Any] = Field(default_factory=dict)
    """Named inputs (keyword arguments of `run`)."""
    outputs_: dict[Name, OutputKind] = Field(default_factory=dict, alias="outputs")
    """Declared outputs: artifact (a file or folder) or param (a small value)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    def outputs(self) -> dict[str, OutputKind]:
        return dict(self.outputs_)


class Finally(Task):
    """The exit handler: a task that runs once after every other step has ended, whatever the result."""

    kind: Literal["finally"]  # type: ignore[assignment]
    """Step kind: finally (the exit handler; reads params, ${pipeline.status} and ${pipeline.failures})."""


AnyStep = Annotated[Union[Ingest, Train, Evaluate, Select, Serve, Task, Finally], Field(discriminator="kind")]
STEP_KINDS: dict[str, type[Step]] = {
    "ingest": Ingest,
    "train": Train,
    "evaluate": Evaluate,
    "select": Select,
    "serve": Serve,
    "task": Task,
    "finally": Finally,
}


class Volume(Node):
    size: Memory
    """Capacity (e.g. 1Gi)."""
    mount: str = Field(pattern=r"^/")
    """Where steps see it (an absolute path)."""
    storage_class: str | None = None
    """Kubernetes storage class."""
    access: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = "ReadWriteMany"
    """Access mode. ReadWriteMany by default: steps, TFJob workers and model servers on several nodes
    mount the same volume at once (ReadWriteOnce only works when they all land on one node)."""


class Scheduling(Node):
    priority: str | int | None = None
    """Priority class name (e.g. "high") or a number."""
    queue: str | None = None
    """Fair-share queue of the team (Kueue / Volcano queue)."""
    parallelism: int | None = Field(None, ge=1)
    """At most this many steps at once."""
    gang: bool = False
    """Gang-schedule distributed jobs."""
    preemptible: bool = False
    """Steps may be preempted by higher priority work."""


class Schedule(Node):
    cron: str = Field(pattern=r"^\s*\S+(\s+\S+){4}\s*$")
    """Cron expression with five fields."""
    timezone: str | None = None
    """IANA time zone of the cron expression."""
    concurrency: Literal["allow", "forbid", "replace"] = "allow"
    """What to do when the previous run is still going."""


class Defaults(Node):
    retry: Retry | None = None
    """Default retry policy of every step."""
    timeout: Duration | None = None
    """Default timeout per attempt."""
    resources: Resources | None = None
    """Default resources."""
    memoize: Memoize | None = None
    """Default memoization."""
    node_selector: dict[LabelKey, LabelValue] | None = None
    """Default node selector of every step."""
    tolerations: list[TaintToleration] | None = None
    """Default tolerations of every step."""
    affinity: NodeAffinity | None = None
    """Default node affinity of every step."""
    service_account: K8sName | None = None
    """Default service account of every step."""


class Metadata(Node):
    store: str | None = None
    """Local metadata store (SQLite path); default .dmlc/metadata.db."""


class Artifacts(Node):
    """The pipeline's object store: step artifacts are written there on every target."""

    store: Annotated[str, StringConstraints(pattern=STORE_URL_RE)]
    """Where artifacts live: "s3://bucket/prefix" (S3, MinIO) or "gs://bucket/prefix"."""
    endpoint: Annotated[str, StringConstraints(pattern=ENDPOINT_RE)] | None = None
    """S3 endpoint URL (MinIO, Ceph, ...): http(s)://host[:port]; default: the AWS endpoint of `region`."""
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] | None = None
    """S3 region of the bucket."""
    insecure: bool | None = None
    """Plain HTTP to the endpoint (default: true for an http:// endpoint)."""
    credentials: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")] | None = None
    """Kubernetes secret holding keys accessKey and secretKey (locally: DMLC_SECRET_<name>_accessKey...);
    default: the pods' and the environment's own identity (IRSA, workload identity)."""


class Pipeline(Node):
    pipeline: Name
    """Pipeline name."""
    description: str | None = None
    """What the pipeline does."""
    image: Image = DEFAULT_IMAGE
    """Default image of every step."""
    namespace: str | None = None
    """Kubernetes namespace."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels on every pod / run."""
    params: dict[Name, Any] = Field(default_factory=dict)
    """Pipeline parameters, overridable with --param k=v."""
    volumes: dict[Name, Volume] = Field(default_factory=dict)
    """Volumes (PVCs on Kubernetes, folders locally)."""
    scheduling: Scheduling | None = None
    """Priority, queue, parallelism, gang scheduling."""
    schedule: Schedule | None = None
    """Run on a cron schedule."""
    defaults: Defaults | None = None
    """Defaults for every step."""
    metadata: Metadata | None = None
    """Metadata store settings."""
    image_pull_secrets: list[K8sName] = Field(default_factory=list)
    """Secrets every pod pulls its images with (private registries); no effect locally."""
    artifacts: Artifacts | None = None
    """An object store for step artifacts (S3 / GCS), instead of the shared volume."""
    steps: dict[Name, AnyStep] = Field(default_factory=dict)
    """The steps, keyed by name, in pipeline order."""
    targets: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    """Target-only options (`target argo { ... }`), checked by each target."""
    _edges: dict[str, dict[str, str]] | None = PrivateAttr(default=None)  # memo of graph.edges()

    def step_names(self) -> list[str]:
        return list(self.steps)
