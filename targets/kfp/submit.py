"""KFP runs through the KFP v2beta1 API with `kfp.Client` (`dmlc submit|status|logs` on the kfp target).

Takes the compiled PipelineSpec (+ PlatformSpec) YAML and where the API is: `--server` or kfp's own
KF_PIPELINES_ENDPOINT, a token from KF_PIPELINES_TOKEN or the file KF_PIPELINES_SA_TOKEN_PATH names
(read per command, never stored), `--namespace` for a multi-user install (the profile's namespace;
the pipeline's `namespace` is not applied on KFP, as its compile warning says).
One GET /apis/v2beta1/healthz first, so a wrong address, a refused connection or a rejected token is
one coded line (kfp.Client would retry its own healthz call for 25 s). Then
`Client.create_run_from_pipeline_package` (the experiment from KF_PIPELINES_DEFAULT_EXPERIMENT_NAME,
else "Default", as kfp does; `--param`s as run arguments) and `Client.get_run`. Logs come from the API
server's GET /apis/v1alpha1/runs/{run}/nodes/{pod}/log (backend/src/apiserver/main.go, KFP 2.17.0),
which the v2beta1 swagger does not list. Failures are DML208..DML211; no client exception escapes.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc_targets.kfp.runstate import pod_of, run_state, step_tasks

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

HOST_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH"
TIMEOUT = 60.0
HOW = f"pass --server http://HOST:PORT or set {HOST_ENV} (`kubectl -n kubeflow port-forward svc/ml-pipeline 8888`)"


@dataclass
class Settings:
    server: str
    namespace: str | None


def settings(conn: Connection, record: RunRecord | None = None, namespace: str | None = None) -> Settings:
    raw = conn.server or (record.server if record else "") or os.environ.get(HOST_ENV, "")
    if not raw:
        raise server_error(DML208, "no KFP API address", HOW)
    raw = raw if "://" in raw else "https://" + raw  # as kfp.Client reads a host without a scheme
    server = check_address(raw, "a KFP API server", HOW)
    return Settings(server, conn.namespace or (record.namespace if record else None) or namespace)


def _token() -> str | None:
    token = os.environ.get(TOKEN_ENV)
    path = os.environ.get(TOKEN_PATH_ENV)
    if not token and path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise server_error(
                DML208, f"cannot read the token file {TOKEN_PATH_ENV}={path}: {exc.strerror}", HOW
            ) from None
    return token or None


def _headers() -> dict[str, str]:
    token = _token()
    return {"authorization": f"Bearer {token}"} if token else {}


@contextmanager
def _errors(s: Settings, what: str) -> Iterator[None]:
    """Client failures -> DML2xx: no answer (DML208), an HTTP error (by status), an answer not KFP's."""
    import requests
    import urllib3
    from kfp_server_api.exceptions import ApiException

    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT)  # the generated client sets none: a silent server would hang it
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):  # kfp prints links and warns
            warnings.simplefilter("ignore")
            yield
    except DmlError:
        raise
    except ApiException as exc:
        raise http_error(exc.status or 0, what, s.server, server_message(exc.body), TOKEN_ENV) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # before OSError: requests' JSON error is both
        said = f"the answer is not the KFP API's ({type(exc).__name__}: {str(exc)[:120]})"
        raise unreachable(s.server, said, f"is {public(s.server)} a KFP API server? {HOW}") from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise unreachable(s.server, why(exc), HOW) from None
    finally:
        socket.setdefaulttimeout(before)


def _healthz(s: Settings) -> None:
    """One plain request first: its failure is clearer than what kfp.Client makes of it."""
    import requests

    with _errors(s, "checking the API (GET /apis/v2beta1/healthz)"):
        resp = requests.get(f"{s.server}/apis/v2beta1/healthz", headers=_headers(), timeout=(10.0, TIMEOUT))
        if not resp.ok:
            raise http_error(resp.status_code, "checking the API", s.server, server_message(resp.text), TOKEN_ENV)
        if not isinstance(resp.json(), dict):
            raise ValueError("healthz is not an object")


def _client(s: Settings, cache: dict[tuple[str, str | None], Any]) -> Any:
    """A kfp.Client for the server (one per command: a watch polls with the same one)."""
    import kfp

    key = (s.server, s.namespace)
    if key in cache:
        return cache[key]
    _healthz(s)
    with _errors(s, "connecting"):
        cache[key] = _new_client(kfp, s)
    return cache[key]


def _new_client(kfp: Any, s: Settings) -> Any:
    if s.namespace:
        return kfp.Client(host=s.server, existing_token=_token(), namespace=s.namespace)
    return kfp.Client(host=s.server, existing_token=_token())


def _arguments(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The `--param`s the compiled pipeline takes as inputs (its root inputDefinitions)."""
    import yaml

    spec = next(yaml.safe_load_all(text))
    declared = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return {k: v for k, v in params.items() if k in declared}


class KfpRuns:
    """The kfp target's `Runs`: submit, status, logs (see the module doc)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str | None], Any] = {}

    def find(self, run: str) -> RunRecord | None:
        return None  # KFP's runs are found through dmlc's record, or with --target kfp

    def submit(self, request: SubmitRequest) -> RunRecord:
        s = settings(request.conn)  # not the pipeline's `namespace`: KFP runs in the profile's (the target warns)
        client = _client(s, self.clients)
        stamp = time.strftime("%Y-%m-%d %H-%M-%S")
        with tempfile.TemporaryDirectory(prefix="dmlc-submit-") as tmp:
            package = Path(tmp) / f"{request.pipeline}.yaml"
            package.write_text(request.text, encoding="utf-8")
            with _errors(s, "creating the run"):
                result = client.create_run_from_pipeline_package(
                    str(package),
                    arguments=_arguments(request.text, request.params),
                    run_name=f"{request.pipeline} {stamp}",
                    namespace=s.namespace,
                )
                run_id = str(result.run_id)
        return RunRecord(
            run=run_id,
            target="kfp",
            server=public(s.server),
            namespace=s.namespace,
            pipeline=request.pipeline,
            file=request.file,
            submitted=time.time(),
            url=f"{public(s.server)}/#/runs/details/{run_id}",
            steps=request.steps,
        )

    def _run(self, record: RunRecord, conn: Connection) -> tuple[Settings, dict]:
        s = settings(conn, record)
        client = _client(s, self.clients)
        with _errors(s, f"reading run `{record.run}`"):
            return s, client.get_run(record.run).to_dict()

    def status(self, record: RunRecord, conn: Connection) -> RunState:
        return run_state(record, self._run(record, conn)[1])

    def logs(self, record: RunRecord, step: str | None, conn: Connection) -> Iterator[LogChunk]:
        s, run = self._run(record, conn)
        found = [(label, task) for name, label, task in step_tasks(record, run) if step is None or name == step]
        if step is not None and not found:
            raise no_step(record, step)
        for label, task in found:
            pod = pod_of(task)
            if pod:
                yield LogChunk(label, _pod_log(s, record.run, pod))


def _pod_log(s: Settings, run: str, pod: str) -> str:
    """The API server's log route: 200 with the text, or (it writes the status first) 200 with a JSON error."""
    import json

    import requests

    what = f"reading the log of pod `{pod}`"
    with _errors(s, what):
        url = f"{s.server}/apis/v1alpha1/runs/{run}/nodes/{pod}/log"
        resp = requests.get(url, headers=_headers(), timeout=(10.0, TIMEOUT))
        if not resp.ok:
            raise http_error(resp.status_code, what, s.server, server_message(resp.text), TOKEN_ENV)
        text = resp.text
    if text.startswith("{") and '"error_message"' in text[:200]:
        try:
            said = json.loads(text).get("error_message", "")
        except ValueError:
            return text
        help_ = "the pod may be gone: KFP keeps logs only where log archiving is configured"
        raise server_error(DML211, f"{public(s.server)} could not read the log {what}: {said}", help_)
    return text
