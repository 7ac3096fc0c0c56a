"""Argo runs through the Argo Server API (`dmlc submit|status|logs` on the argo target).

Takes the compiled Workflow (or CronWorkflow) and where the server is: `--server` or ARGO_SERVER
(`host:port` gets https://, or http:// with ARGO_SECURE=false; ARGO_BASE_HREF is a path prefix), the
token from ARGO_TOKEN (read per request, never stored), ARGO_INSECURE_SKIP_VERIFY, and the namespace
from `--namespace`, the pipeline's `namespace`, ARGO_NAMESPACE, else `argo`. Creates and reads
workflows with hera's `WorkflowsService` (POST /api/v1/workflows/{ns}, GET .../{name}); reads logs from
GET .../{name}/log itself, because that answer is a stream of JSON lines and hera 7.1 parses it as
one document. Every failure is a DML208..DML211 naming the server; no client exception escapes.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dmlc_targets.argo.runstate import instances, run_state

from dmlc.diagnostics.catalogue import DML208, DML211
from dmlc.diagnostics.model import DmlError
from dmlc.runs import (
    Connection,
    LogChunk,
    RunRecord,
    RunState,
    SubmitRequest,
    check_address,
    http_error,
    no_step,
    public,
    server_error,
    server_message,
    unreachable,
    why,
)

TOKEN_ENV = "ARGO_TOKEN"
TIMEOUT = (10.0, 60.0)  # seconds to connect, to wait for an answer
DEFAULT_NAMESPACE = "argo"  # the namespace of Argo's quick-start install
HOW = "pass --server https://HOST:2746 or set ARGO_SERVER (`kubectl -n argo port-forward svc/argo-server 2746`)"


@dataclass
class Settings:
    server: str
    namespace: str
    verify: bool


def settings(conn: Connection, record: RunRecord | None = None, namespace: str | None = None) -> Settings:
    """Server (flag, else the run's record, else ARGO_SERVER), namespace and TLS checking; DML208 if no address."""
    raw = conn.server or (record.server if record else "")
    if not raw:
        raw = os.environ.get("ARGO_SERVER", "")
        raw = _with_scheme(raw) + os.environ.get("ARGO_BASE_HREF", "").rstrip("/") if raw else ""
    if not raw:
        raise server_error(DML208, "no Argo Server address", HOW)
    server = check_address(_with_scheme(raw), "an Argo Server", HOW)
    ns = conn.namespace or (record.namespace if record else None) or namespace
    ns = ns or os.environ.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE
    verify = os.environ.get("ARGO_INSECURE_SKIP_VERIFY", "").lower() not in ("true", "1", "yes")
    return Settings(server, ns, verify)


def _with_scheme(raw: str) -> str:
    """`host:port` as the argo CLI reads it: https://, or http:// when ARGO_SECURE=false."""
    if "://" in raw:
        return raw
    secure = os.environ.get("ARGO_SECURE", "true").lower() not in ("false", "0", "no")
    return ("https://" if secure else "http://") + raw


def _session() -> Any:
    """A requests.Session with a default timeout that remembers the last answer (for its status code)."""
    import requests

    class Session(requests.Session):
        last: Any = None

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", TIMEOUT)
            self.last = None
            self.last = super().request(method, url, *args, **kwargs)
            return self.last

    return Session()


def _service(s: Settings) -> Any:
    from hera.workflows import WorkflowsService

    token = os.environ.get(TOKEN_ENV) or None
    return WorkflowsService(
        host=s.server + "/", token=token, verify_ssl=s.verify, namespace=s.namespace, session=_session()
    )


@contextmanager
def _errors(svc: Any, s: Settings, what: str) -> Iterator[None]:
    """Client failures -> DML2xx: no answer (DML208), an HTTP error (by status), an answer not Argo's."""
    import requests

    no_answer = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hera serializes with pydantic's deprecated .json()
            yield
    except DmlError:
        raise
    except no_answer as exc:  # SSLError is a ConnectionError
        raise _unanswered(s, exc) from None
    except Exception as exc:  # HeraException (by status); JSON/KeyError/ValueError on an answer not Argo's
        resp = getattr(svc.session, "last", None)
        if resp is None:
            raise unreachable(s.server, why(exc), HOW) from None
        if resp.ok:
            said = f"the answer is not the Argo Server API's ({type(exc).__name__})"
            raise unreachable(s.server, said, f"is {public(s.server)} an Argo Server? {HOW}") from None
        raise http_error(resp.status_code, what, s.server, server_message(resp.text), TOKEN_ENV) from None


def _unanswered(s: Settings, exc: Exception) -> DmlError:
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        help_ = "check the certificate, or set ARGO_INSECURE_SKIP_VERIFY=true for a self-signed one"
        return unreachable(s.server, f"TLS failed ({why(exc)})", help_)
    if isinstance(exc, requests.exceptions.Timeout) and not isinstance(exc, requests.exceptions.ConnectTimeout):
        return unreachable(s.server, f"no answer within {TIMEOUT[1]:g}s", HOW)
    return unreachable(s.server, why(exc), HOW)


def _document(text: str) -> dict:
    import yaml

    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return next(d for d in reversed(docs) if d.get("kind") in ("Workflow", "CronWorkflow"))


class ArgoRuns:
    """The argo target's `Runs`: submit, status, logs (see the module doc)."""

    def find(self, run: str) -> RunRecord | None:
        return None  # Argo's runs are found through dmlc's record, or with --target argo

    def submit(self, request: SubmitRequest) -> RunRecord:
        from hera.workflows.models import CreateCronWorkflowRequest, CronWorkflow, Workflow, WorkflowCreateRequest

        s = settings(request.conn, namespace=request.namespace)
        doc = _document(request.text)
        doc.setdefault("metadata", {})["namespace"] = s.namespace
        svc = _service(s)
        cron = doc["kind"] == "CronWorkflow"
        with _errors(svc, s, "creating the workflow"):
            if cron:
                created = svc.create_cron_workflow(CreateCronWorkflowRequest(cron_workflow=CronWorkflow(**doc)))
            else:
                created = svc.create_workflow(WorkflowCreateRequest(workflow=Workflow(**doc)))
            name = created.metadata.name
        where = "cron-workflows" if cron else "workflows"
        return RunRecord(
            run=name,
            target="argo",
            server=public(s.server),
            namespace=s.namespace,
            pipeline=request.pipeline,
            file=request.file,
            kind="schedule" if cron else "run",
            submitted=time.time(),
            url=f"{public(s.server)}/{where}/{s.namespace}/{name}",
            steps=request.steps,
        )

    def _workflow(self, record: RunRecord, conn: Connection) -> tuple[Settings, Any, dict]:
        s = settings(conn, record)
        svc = _service(s)
        with _errors(svc, s, f"reading workflow `{record.run}`"):
            get = svc.get_cron_workflow if record.kind == "schedule" else svc.get_workflow
            got = get(record.run)
            doc = json.loads(got.json(by_alias=True, exclude_none=True))
        return s, svc, doc

    def status(self, record: RunRecord, conn: Connection) -> RunState:
        _, _, doc = self._workflow(record, conn)
        if record.kind == "schedule":
            return _schedule_state(record, doc)
        return run_state(record, doc)

    def logs(self, record: RunRecord, step: str | None, conn: Connection) -> Iterator[LogChunk]:
        s, svc, doc = self._workflow(record, conn)
        found = [i for i in instances(record, doc) if step is None or i.state.step == step]
        if step is not None and not found:
            raise no_step(record, step)
        for inst in found:
            for attempt, pod in enumerate(inst.pods, 1):
                text = self._pod_log(svc, s, record, pod)
                yield LogChunk(inst.state.label, text, attempt if len(inst.pods) > 1 else 0)

    def _pod_log(self, svc: Any, s: Settings, record: RunRecord, pod: str) -> str:
        url = f"{s.server}/api/v1/workflows/{s.namespace}/{record.run}/log"
        params = {"podName": pod, "logOptions.container": "main"}
        headers = {"Authorization": svc.token} if svc.token else {}
        what = f"reading the log of pod `{pod}`"
        with _errors(svc, s, what):
            resp = svc.session.get(url, params=params, headers=headers, verify=s.verify)
            if not resp.ok:
                raise RuntimeError(resp.status_code)
            lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
        text = []
        for entry in lines:  # {"result": {"content", "podName"}} per log line, or {"error": {...}} (StreamError)
            if "error" in entry and "result" not in entry:
                said = (entry["error"] or {}).get("message", "") if isinstance(entry["error"], dict) else entry["error"]
                help_ = "the pod may be gone (pod GC deletes succeeded pods): keep logs with an artifact repository"
                raise server_error(DML211, f"{public(s.server)} could not stream the log {what}: {said}", help_)
            text.append(((entry.get("result") or {}).get("content") or "") + "\n")
        return "".join(text)


def _schedule_state(record: RunRecord, doc: dict) -> RunState:
    spec, status = doc.get("spec") or {}, doc.get("status") or {}
    when = spec.get("schedules") or [spec.get("schedule", "")]
    active = ", ".join(a.get("name", "") for a in status.get("active") or [])
    last = status.get("lastScheduledTime") or "never"
    message = f"schedule {' | '.join(w for w in when if w)}; last run {last}"
    message += f"; running: {active}" if active else ""
    return RunState(record, "scheduled", [], message)
