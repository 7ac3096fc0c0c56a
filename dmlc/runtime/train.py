"""The `train` step: build a model, fit it under a tf.distribute strategy, export a SavedModel.

Strategies: single (default strategy), mirrored (MirroredStrategy), allreduce
(MultiWorkerMirroredStrategy) and parameter_server (ParameterServerStrategy: chief + workers + ps).
With allreduce / parameter_server and no TF_CONFIG this process is the local launcher (launcher.py);
with TF_CONFIG set (a TFJob pod or a launched subprocess) it runs its role. Only the chief (worker 0
for allreduce, the chief for parameter_server) writes the outputs: it copies the trained weights into a
plain model, evaluates it on the test split and saves it, so no other worker has to take part in saving.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from dmlc.ir.model import Train
from dmlc.runtime import callbacks as cb
from dmlc.runtime.data import load_info, make_dataset
from dmlc.runtime.local_cluster import launch, watch_launcher
from dmlc.runtime.models import build_model, compile_model
from dmlc.runtime.step_io import artifact_dir, write_json_file, write_metrics
from dmlc.runtime.tfenv import import_tf, set_seed
from dmlc.semantics.spec import StepSpec, instance_seed


@dataclass
class Role:
    """This process's place in the cluster (from TF_CONFIG)."""

    task_type: str = "worker"
    index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0)


def run(spec: StepSpec) -> None:
    cfg: Train = spec.config(Train)
    load_info(cfg.data)  # fail fast on a bad data path, before any process starts
    if cfg.distributed and not os.environ.get("TF_CONFIG"):
        launch(spec)
        return
    watch_launcher()
    role = role_from_env()
    if cfg.strategy == "parameter_server" and role.task_type in ("worker", "ps"):
        serve_ps_role(role)
        return
    train(spec, cfg, role)


def role_from_env() -> Role:
    """The task of this process from TF_CONFIG; a lone worker 0 without it."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    workers = len((config.get("cluster") or {}).get("worker") or []) or 1
    return Role(task.get("type", "worker"), int(task.get("index", 0)), workers)


def serve_ps_role(role: Role) -> None:
    """A parameter_server worker or ps: an in-process gRPC server the chief drives; runs until killed."""
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    tf, _ = import_tf()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    print(f"train: {role.task_type} {role.index} serving for the chief", flush=True)
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    server.join()


def make_strategy(name: str) -> Any:
    tf, _ = import_tf()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "allreduce":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.experimental.ParameterServerStrategy(resolver)
    return tf.distribute.get_strategy()


def train(spec: StepSpec, cfg: Train, role: Role) -> None:
    """Fit the model in this process (one worker of the cluster, or the only process)."""
    started = time.monotonic()
    set_seed(instance_seed(spec))
    strategy_name = cfg.strategy
    strategy = make_strategy(strategy_name)
    data = cfg.data
    info = load_info(data)
    name = cfg.model
    with strategy.scope():
        model = build_model(name, info["input_shape"], info["num_classes"])
        compile_model(model, cfg.optimizer, cfg.learning_rate)
    workers = role.num_workers
    replicas = strategy.num_replicas_in_sync if strategy_name != "parameter_server" else workers
    steps = cfg.steps_per_epoch or max(1, math.ceil(info["n_train"] / (info["batch"] * replicas)))
    epochs = cfg.epochs
    dataset = _train_input(spec, strategy_name, strategy, role, data)
    callbacks = cb.make_callbacks(spec, role, cb.checkpoint_root(spec), steps, strategy_name)
    print(f"train: {name} with {strategy_name} ({workers} worker(s)), {epochs} epoch(s) x {steps} step(s)", flush=True)
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=2)
    # Every worker reads the weights: batch-norm statistics are sync-on-read variables, so reading
    # them is an all-reduce that hangs up (or aborts) if only the chief takes part.
    weights = model.get_weights()
    if role.is_chief:
        export(spec, weights, name, info, data, workers, time.monotonic() - started)


def _train_input(spec: StepSpec, strategy_name: str, strategy: Any, role: Role, data: str) -> Any:
    cache_dir = cb.checkpoint_root(spec).parent / "data-cache"
    if strategy_name == "parameter_server":
        _, keras = import_tf()

        def dataset_fn(ctx: Any) -> Any:
            return make_dataset(data, "train", input_context=ctx, cache_dir=cache_dir / f"pipe{ctx.input_pipeline_id}")

        return keras.utils.experimental.DatasetCreator(dataset_fn)
    return make_dataset(
        data,
        "train",
        replicas=strategy.num_replicas_in_sync,
        cache_dir=cache_dir / f"{role.task_type}{role.index}",
        seed=instance_seed(spec),
    )


def export(spec: StepSpec, weights: list[Any], name: str, info: dict, data: str, workers: int, seconds: float) -> None:
    """Chief only: evaluate a plain copy of the model, save it as a SavedModel, write the metrics."""
    cfg: Train = spec.config(Train)
    plain = build_model(name, info["input_shape"], info["num_classes"])
    plain.set_weights(weights)
    compile_model(plain, cfg.optimizer, cfg.learning_rate)
    loss, accuracy = plain.evaluate(make_dataset(data, "test", repeat=False), verbose=0)
    log = cb.read_log(spec.work_dir)
    metrics = {
        "accuracy": float(accuracy),
        "loss": float(loss),
        **cb.summarize_log(log),
        "epochs": cfg.epochs,
        "workers": workers,
        "restarts_used": int(os.environ.get("DMLC_TRAIN_ATTEMPT", "0")),
        "strategy": cfg.strategy,
        "model": name,
        "seconds": round(seconds, 3),
    }
    with artifact_dir(spec.outputs_dir, "model") as out:
        plain.save(str(out), save_format="tf")
        meta = {**metrics, "input_shape": info["input_shape"], "num_classes": info["num_classes"]}
        write_json_file(out / "dmlc_metrics.json", meta)
    write_metrics(spec, metrics)
    print(f"train: test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}", flush=True)
