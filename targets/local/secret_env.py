"""Secrets of a local run (local executor, stage 4): `secret_env { K = "name/key" }` -> values.

Takes the pipeline, the file of `dmlc run --secrets FILE` and dmlc's own environment; gives, per step,
the values to put into its processes' environment. A value comes from the file (YAML or JSON shaped
like the Kubernetes Secrets the cluster targets reference: `{name: {key: value}}`), else from the
variable `K` of dmlc's environment (as `export K=...` before `dmlc run`); a missing one is DML207 before
anything runs. Values live only in the step's environment: specs, recipes, the store, cache entries
and compiled output hold the reference; logs are masked (`redact.py`); an output holding a value fails
its step (`leaked`), since outputs are written down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dmlc.diagnostics.catalogue import DML200, DML207
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.model import Pipeline

SHAPE = "a mapping of secret names to mappings of keys to text values, e.g. `creds: {token: abc}`"


MAX_FILE = 1 << 20  # a secrets file is small; a FIFO (`--secrets <(pass show ...)`) is read up to this


def load(path: str | None) -> dict[str, dict[str, str]]:
    """The secrets file, checked for shape; {} without one. Every value is taken as the text written
    (YAML's base loader: `0123` stays "0123", never the number 83). Its text never reaches a message."""
    if path is None:
        return {}
    import yaml

    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero cannot fill memory
            raw = handle.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise _bad_file(path, f"the secrets file {path} is larger than {MAX_FILE >> 20} MiB")
        data = yaml.load(raw, Loader=yaml.BaseLoader)  # the base loader builds only str, list and dict
    except OSError as exc:
        raise _bad_file(path, f"cannot read the secrets file {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        raise _bad_file(path, f"the secrets file {path} is not valid YAML or JSON") from None
    if not _well_formed(data):
        raise _bad_file(path, f"the secrets file {path} is not {SHAPE}")
    return data


def _well_formed(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    return all(
        isinstance(name, str) and isinstance(keys, dict) and all(isinstance(x, str) for kv in keys.items() for x in kv)
        for name, keys in data.items()
    )


def _bad_file(path: str, message: str) -> DmlError:
    help_ = f"write the file as {SHAPE} (YAML or JSON), readable by you only (chmod 600)"
    return DmlError([Diagnostic(DML200, message, Label(None), help=help_)])


def resolve(pipeline: Pipeline, file: Mapping[str, Mapping[str, str]], environ: Mapping[str, str]) -> dict:
    """{step: {env name: value}} for the steps with `secret_env`; DML207 naming every missing one."""
    values: dict[str, dict[str, str]] = {}
    missing: list[Diagnostic] = []
    for name, step in pipeline.steps.items():
        for env, ref in sorted(step.secret_env.items()):
            secret, _, key = ref.partition("/")
            value = file.get(secret, {}).get(key, environ.get(env))
            if value is None:
                missing.append(_missing(name, env, ref))
            else:
                values.setdefault(name, {})[env] = value
    if missing:
        raise DmlError(missing)
    return values


def _missing(step: str, env: str, ref: str) -> Diagnostic:
    secret, _, key = ref.partition("/")
    message = f"step `{step}` needs the secret `{ref}` (as ${env}), and this run has no value for it"
    help_ = (
        f"export {env}=... before `dmlc run`, or pass `--secrets FILE` with `{secret}: {{{key}: ...}}` in it;"
        " the value is only ever put into the step's environment"
    )
    return Diagnostic(DML207, message, Label(None), help=help_)


def names(secrets: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The variables that hold a secret in some step of the run."""
    return {env for values in secrets.values() for env in values}


def values(secrets: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Every secret value of the run (what every step's log is masked for)."""
    return sorted({v for vs in secrets.values() for v in vs.values() if v})


def by_name(secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """variable -> value over the run's steps (the variable names a leak in messages)."""
    return {env: v for vs in secrets.values() for env, v in vs.items() if v}


def leaked(values: Mapping[str, Any], secrets: Mapping[str, str], outputs: Path | None = None) -> str | None:
    """Which output holds a secret value (outputs are written down): a param's value, or a file of an
    artifact output under `outputs` (read in chunks, never whole); None when none does."""
    if not secrets:
        return None
    for output, value in values.items():
        for text in _texts(value):
            for env, secret in secrets.items():
                if secret in text:
                    return f"output `{output}` holds the value of the secret in ${env}"
    return _in_files(outputs, secrets) if outputs is not None else None


def _in_files(folder: Path, secrets: Mapping[str, str]) -> str | None:
    needles = {env: s.encode() for env, s in secrets.items()}
    keep = max(len(n) for n in needles.values()) - 1
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue  # the output checks refuse links and devices; only regular files hold bytes here
        env = _file_holds(path, needles, keep)
        if env is not None:
            return f"output `{path.relative_to(folder).parts[0]}` holds the value of the secret in ${env}"
    return None


def _file_holds(path: Path, needles: Mapping[str, bytes], keep: int) -> str | None:
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            data = tail + chunk
            for env, needle in needles.items():
                if needle in data:
                    return env
            tail = data[-keep:] if keep else b""
    return None


def _texts(value: Any) -> list[str]:
    """Every text inside a JSON value (keys too), numbers as written."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [value if isinstance(value, str) else json.dumps(value)]
