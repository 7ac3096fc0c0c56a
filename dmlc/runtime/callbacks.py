"""Training callbacks: fault tolerance (BackupAndRestore, ModelCheckpoint + keep), the epoch log, and
the test-only hook that kills a worker mid-training.

The epoch log (work_dir/train_log.jsonl, written by the chief) spans restarts, so the metrics can
report the first and last training loss of the whole job, the epoch a restarted job resumed from, and
the `history` of every epoch's training metrics (what `dmlc runs report` plots).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dmlc.ir.model import Train
from dmlc.runtime.tfenv import import_tf
from dmlc.semantics.spec import StepSpec, instance_key

LOG_NAME = "train_log.jsonl"
KILL_ENV = "DMLC_TEST_KILL_WORKER_AT_EPOCH"  # test hook: worker 1 dies at this epoch on the first attempt
KILL_EXIT_CODE = 17


def checkpoint_root(spec: StepSpec) -> Path:
    """Checkpoints live on a volume when the step mounts one (pods are ephemeral), else in work_dir;
    each instance of a fanned-out train step gets its own folder, named alike on every target."""
    if spec.volumes:
        base = Path(next(iter(spec.volumes.values())))
        key = instance_key(spec)
        return base / ".dmlc-checkpoints" / spec.pipeline / (spec.step if key is None else f"{spec.step}-{key}")
    return spec.work_dir / "checkpoints"


def make_callbacks(spec: StepSpec, role: Any, root: Path, steps: int, strategy_name: str) -> list[Any]:
    _, keras = import_tf()
    cfg: Train = spec.config(Train)
    checkpoint = cfg.checkpoint
    every = checkpoint.every if checkpoint is not None else 1
    freq: str | int = "epoch" if every == 1 else every * steps
    out: list[Any] = []
    if checkpoint or cfg.restarts or cfg.elastic:
        out.append(keras.callbacks.BackupAndRestore(backup_dir=str(root / "backup"), save_freq=freq))
    if checkpoint:
        path = str(root / "ckpt-{epoch:03d}")
        out.append(keras.callbacks.ModelCheckpoint(path, save_weights_only=True, save_freq=freq))
        if role.is_chief:
            out.append(_pruner(keras, root, checkpoint.keep))
    if role.is_chief:
        if "DMLC_TRAIN_ATTEMPT" not in os.environ:  # not launched: nobody else resets the log
            reset_log_if_fresh(spec.work_dir, root)
        out.append(_epoch_logger(keras, spec.work_dir, role))
    if os.environ.get(KILL_ENV) and role.task_type == "worker" and role.index == 1:
        out.append(_killer(keras, int(os.environ[KILL_ENV])))
    return out


def _pruner(keras: Any, root: Path, keep: int) -> Any:
    class PruneCheckpoints(keras.callbacks.Callback):
        """Keep only the newest `keep` ModelCheckpoint files (ckpt-NNN.*)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            stems = sorted({p.name.split(".")[0] for p in root.glob("ckpt-*")})
            for stem in stems[:-keep]:
                for path in root.glob(f"{stem}.*"):
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    return PruneCheckpoints()


def _epoch_logger(keras: Any, work_dir: Path, role: Any) -> Any:
    attempt = int(os.environ.get("DMLC_TRAIN_ATTEMPT", "0"))
    path = Path(work_dir) / LOG_NAME

    class EpochLog(keras.callbacks.Callback):
        """Append one JSON line per epoch begin/end (epochs counted across restarts)."""

        def _write(self, record: dict[str, Any]) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(json.dumps({"attempt": attempt, "workers": role.num_workers, **record}) + "\n")

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._write({"event": "begin", "epoch": epoch, "time": time.time()})

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items()}
            self._write({"event": "end", "epoch": epoch, "time": time.time(), **values})

    return EpochLog()


def _killer(keras: Any, at_epoch: int) -> Any:
    class KillWorker(keras.callbacks.Callback):
        """Test hook: simulate a lost worker (first attempt only, so the restarted job can finish)."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == at_epoch and os.environ.get("DMLC_TRAIN_ATTEMPT", "0") == "0":
                print(f"train: test hook kills worker 1 at epoch {epoch}", flush=True)
                time.sleep(1.0)  # let the chief finish writing the previous epoch's backup
                os._exit(KILL_EXIT_CODE)

    return KillWorker()


def reset_log_if_fresh(work_dir: Path, root: Path) -> None:
    """A job that starts without a backup starts a new epoch log."""
    backup = root / "backup"
    if not (backup.is_dir() and any(backup.iterdir())):
        (Path(work_dir) / LOG_NAME).unlink(missing_ok=True)


def read_log(work_dir: Path) -> list[dict[str, Any]]:
    path = Path(work_dir) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize_log(log: list[dict[str, Any]]) -> dict[str, Any]:
    """First/last training loss over the job, where the final attempt started, and every epoch's metrics."""
    ends = [r for r in log if r.get("event") == "end"]
    begins = [r for r in log if r.get("event") == "begin"]
    last_attempt = max((r["attempt"] for r in log), default=0)
    final_begins = [r["epoch"] for r in begins if r["attempt"] == last_attempt]
    return {
        "train_loss_first": ends[0].get("loss") if ends else None,
        "train_loss_last": ends[-1].get("loss") if ends else None,
        "resumed_from_epoch": min(final_begins) if final_begins else 0,
        "epochs_run": [[r["attempt"], r["epoch"]] for r in ends],
        "history": history(ends),
    }


NOT_METRICS = ("attempt", "workers", "event", "epoch", "time")


def history(ends: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every training metric per epoch: {"epoch": [1, 2, ...], name: [value at each of those epochs]};
    an epoch run again after a restart counts once, with its last value (the one the model kept)."""
    by_epoch = {int(r["epoch"]) + 1: r for r in ends}  # epochs counted from 1; later records win
    epochs = sorted(by_epoch)
    names = sorted({k for r in by_epoch.values() for k in r if k not in NOT_METRICS})
    out: dict[str, list[Any]] = {"epoch": epochs} if epochs else {}
    for name in names:
        values = [by_epoch[e].get(name) for e in epochs]
        if all(isinstance(v, (int, float)) for v in values):
            out[name] = [float(v) for v in values]
    return out
