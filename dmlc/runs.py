"""Runs on any target, as `dmlc submit`, `dmlc status` and `dmlc logs` see them (DESIGN §7.5).

Takes what a target reports about a run (its engine's phases mapped to dmlc's step states) and gives
the shared data the commands print: `RunRecord` (what dmlc keeps of a submitted run, one JSON line in
`.dmlc/submitted.jsonl`: target, server, namespace and the engine's run id; never a token or a
password), `RunState` / `StepState` (a run and its steps in dmlc's words: pending, running,
succeeded, failed, skipped, cached), and the DML208..DML211 errors a target raises when its server
cannot be reached, refuses the credentials, has no such thing, or rejects the request.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dmlc.diagnostics.catalogue import DML208, DML209, DML210, DML211
from dmlc.diagnostics.model import Diagnostic, DmlError, Label

RECORDS = Path(".dmlc") / "submitted.jsonl"
FINAL = ("succeeded", "failed", "scheduled")  # nothing more to watch (a schedule's runs come later)
STEP_STATES = ("pending", "running", "retrying", "succeeded", "failed", "skipped", "cached")


@dataclass
class Connection:
    """Where to reach a target's server, from the command line (`--server`, `--namespace`); a target
    completes it from its own environment variables. A token is never part of it: targets read their
    token from the environment at the moment of the request."""

    server: str | None = None
    namespace: str | None = None


@dataclass
class RunRecord:
    """A submitted run: enough to find it again on its server (no credentials)."""

    run: str  # the engine's id: an Argo workflow name, a KFP run id
    target: str
    server: str = ""  # without user:password@
    namespace: str | None = None
    pipeline: str = ""
    file: str = ""
    kind: str = "run"  # "run", or "schedule" for a cron workflow / recurring run
    submitted: float = 0.0
    url: str = ""  # where a person looks at it (the engine's UI)
    steps: list[str] = field(default_factory=list)  # the pipeline's step names, to label the engine's nodes

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> RunRecord | None:
        try:
            raw = json.loads(line)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError):
            return None  # a damaged line (an interrupted write): skipped, the others still count


@dataclass
class SubmitRequest:
    """What `dmlc submit` hands a target: its compiled output and the run's settings."""

    text: str  # the target's `emit` output for this pipeline and these params
    pipeline: str
    file: str
    params: dict[str, Any]
    steps: list[str]
    conn: Connection
    namespace: str | None = None  # the pipeline's own `namespace`, used when no --namespace is given


@dataclass
class StepState:
    """One step instance in dmlc's words (the local view's states)."""

    label: str  # `train[0]`, or the step name
    step: str
    state: str  # one of STEP_STATES
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    message: str = ""


@dataclass
class RunState:
    """A run as `dmlc status` and `--watch` show it."""

    record: RunRecord
    state: str  # pending | running | succeeded | failed (| scheduled)
    steps: list[StepState] = field(default_factory=list)
    message: str = ""
    started: float | None = None
    ended: float | None = None

    @property
    def over(self) -> bool:
        return self.state in FINAL


@dataclass
class LogChunk:
    """The log of one step instance (one attempt)."""

    label: str
    text: str
    attempt: int = 0


# --- the record of submitted runs ---------------------------------------------------------------------


def remember(record: RunRecord, path: Path = RECORDS) -> None:
    """Append the record (one short line, O_APPEND: concurrent submits do not mix their lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def recorded(path: Path = RECORDS) -> list[RunRecord]:
    """Every readable record, oldest first."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [r for r in (RunRecord.from_json(line) for line in lines if line.strip()) if r is not None]


def find_record(run: str, path: Path = RECORDS) -> RunRecord | None:
    """The record of `run`: its exact id, else the only one starting with it; DML210 when several do."""
    records = recorded(path)
    exact = [r for r in records if r.run == run]
    if exact:
        return exact[-1]
    prefixed = {r.run: r for r in records if run and r.run.startswith(run)}
    if len(prefixed) > 1:
        shown = ", ".join(sorted(prefixed)[:5]) + (", ..." if len(prefixed) > 5 else "")
        raise no_run(run, f"alone: `{run}` starts {len(prefixed)} submitted runs ({shown})", "give more of the id")
    return next(iter(prefixed.values()), None)


# --- addresses and errors --------------------------------------------------------------------------------


def public(url: str) -> str:
    """`url` without `user:password@` (what may be printed and recorded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable address>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_address(url: str, what: str, hint: str) -> str:
    """`url` if it is an http(s) address with a host (and a valid port), else DML208."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError on a port that is not a number in 0..65535
    except ValueError:
        ok = False
    if not ok:
        raise server_error(DML208, f"`{public(url)}` is not an address of {what}", hint)
    return url.rstrip("/")


def server_error(code: Any, message: str, help_: str) -> DmlError:
    return DmlError([Diagnostic(code, message, Label(None), help=help_)])


def http_error(status: int, what: str, server: str, detail: str, token_env: str) -> DmlError:
    """The DML2xx error for an HTTP error answer of `server` (`what`: the request, e.g. "creating the run")."""
    detail = " ".join(detail.split())[:300]
    said = f": {detail}" if detail else ""
    where = public(server)
    if status in (401, 403):
        verb = "did not accept the credentials" if status == 401 else "refused access"
        help_ = f"set {token_env} to a token this server accepts (it is read from the environment, never stored)"
        return server_error(DML209, f"{where} {verb} ({status}) {what}{said}", help_)
    if status == 404:
        help_ = "check the run id, --namespace and --server (a wrong address may answer 404 to every request)"
        return server_error(DML210, f"{where} has no such thing (404) {what}{said}", help_)
    help_ = "the server's message says why; fix that and submit again"
    return server_error(DML211, f"{where} rejected the request ({status}) {what}{said}", help_)


def server_message(body: str | bytes | None) -> str:
    """What an error answer says: the `message` (or `error`) of a JSON body, a short plain text, never HTML."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return "" if "<html" in text[:500].lower() else text[:300]
    return str(doc.get("message") or doc.get("error") or "") if isinstance(doc, dict) else ""


def unreachable(server: str, why: str, help_: str) -> DmlError:
    return server_error(DML208, f"cannot reach {public(server)}: {why}", help_)


def no_run(run: str, where: str, help_: str) -> DmlError:
    return server_error(DML210, f"no run `{run}` {where}", help_)


def no_step(record: RunRecord, step: str) -> DmlError:
    """DML210 for `dmlc logs RUN STEP` when no instance of STEP has a log, with a did-you-mean."""
    from dmlc.diagnostics.model import suggest

    near = suggest(step, record.steps)
    hint = f"did you mean `{near}`? " if near else ""
    help_ = f"{hint}steps of `{record.pipeline}`: {', '.join(record.steps)} (a step that has not started has no log)"
    return server_error(DML210, f"no step `{step}` with a log in run `{record.run}`", help_)


def why(exc: BaseException) -> str:
    """A connection failure in a few words (the well-known ones by name, else the first line)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "nodename nor servname", "timed out"):
        if marker in text:
            return marker.lower()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the certificate was not accepted"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def iso_time(text: str | None) -> float | None:
    """An RFC 3339 time (`2024-05-01T10:00:00Z`, with or without fractions) as seconds; None if absent or
    the zero time some engines send for "not yet"."""
    if not text or text.startswith(("0001-", "1970-01-01T00:00:00")):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
