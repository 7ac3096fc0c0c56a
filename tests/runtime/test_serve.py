"""Serving: TF-Serving REST answers equal to model.predict for replicas 1 and 2, the sharded router
keeps request order, and the event-driven front answers 429 past max_concurrency / the rate limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from dmlc.runtime.events import TokenBucket
from dmlc.runtime.router import shard_of
from tests.runtime.conftest import check, run_step, spec_data, step_env


def test_shard_hash_is_stable_and_spreads() -> None:
    picks = [shard_of({"id": f"user-{i}"}, i, "id", 3) for i in range(60)]
    assert picks == [shard_of({"id": f"user-{i}"}, 0, "id", 3) for i in range(60)]  # the key decides, not position
    assert set(picks) == {0, 1, 2}
    assert [shard_of([0.0], i, None, 2) for i in range(4)] == [shard_of([1.0], i, "id", 2) for i in range(4)]


def test_token_bucket() -> None:
    bucket = TokenBucket(2.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    assert TokenBucket(None).take()


@pytest.fixture(scope="module")
def sample(trained_model: Path, digits_dir: Path) -> tuple[list, np.ndarray]:
    """16 test images and what model.predict says about them."""
    import tf_keras

    x = np.load(digits_dir / "test.npz")["x"][:16]
    expected = tf_keras.models.load_model(str(trained_model)).predict(x, verbose=0)
    return x.tolist(), expected


def predict(endpoint: str, instances: list) -> tuple[int, dict]:
    import httpx

    reply = httpx.post(f"{endpoint}:predict", json={"instances": instances}, timeout=120)
    return reply.status_code, reply.json()


def pgid_members(pgid: int) -> int:
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            count += os.getpgid(int(pid)) == pgid
        except ProcessLookupError:
            pass
    return count


@contextmanager
def server(model: Path, *args: str) -> Iterator[str]:
    """A detached `python -m dmlc.runtime.serve` on a free port; its process group is killed after."""
    from dmlc.runtime.local_cluster import free_ports
    from dmlc.runtime.serve import server_argv, wait_ready

    port = free_ports(1)[0]
    argv = [*server_argv(str(model), "m", port), *args]
    proc = subprocess.Popen(argv, env=step_env(), start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}/v1/models/m"
        wait_ready(endpoint, proc)
        yield endpoint
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.tf
@pytest.mark.parametrize("replicas", [1, 2])
def test_serve_step_replicas(trained_model: Path, sample, tmp_path: Path, replicas: int) -> None:
    import httpx

    pidfile = tmp_path / "serve.pid"
    attrs = {"model": str(trained_model), "replicas": replicas}
    check(run_step("serve", attrs, tmp_path, env={"DMLC_SERVE_PIDFILE": str(pidfile)}, step="classifier"))
    record = json.loads(pidfile.read_text())
    try:
        endpoint = json.loads((tmp_path / "outputs" / "endpoint").read_text())
        assert endpoint == record["endpoint"] and endpoint.endswith("/v1/models/classifier")
        status = httpx.get(endpoint, timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        assert pgid_members(record["pgids"][0]) >= 1 + (replicas if replicas > 1 else 0)
        code, body = predict(endpoint, sample[0])
        assert code == 200
        np.testing.assert_allclose(np.array(body["predictions"]), sample[1], rtol=1e-4, atol=1e-5)
        assert (
            httpx.post(endpoint.replace("classifier", "other") + ":predict", json={"instances": []}).status_code == 404
        )
    finally:
        for pgid in record["pgids"]:
            os.killpg(pgid, signal.SIGKILL)


@pytest.mark.tf
def test_sharded_router_keeps_order(trained_model: Path, sample) -> None:
    x, expected = sample
    with server(trained_model, "--shards", "2", "--shard-key", "user") as endpoint:
        keyed = [{"user": f"u{i}", "image_bytes": img} for i, img in enumerate(x)]
        assert len({shard_of(inst, i, "user", 2) for i, inst in enumerate(keyed)}) == 2  # both shards answer
        code, body = predict(endpoint, keyed)
        assert code == 200
        np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-4, atol=1e-5)
        code, body = predict(endpoint, x[::-1])  # plain arrays: split by position
        np.testing.assert_allclose(np.array(body["predictions"]), expected[::-1], rtol=1e-4, atol=1e-5)


@pytest.mark.tf
def test_events_front_429_and_scale_to_zero(trained_model: Path, sample) -> None:
    import httpx

    x, expected = sample
    events = {"max_concurrency": 1, "rate_limit": 2, "idle_timeout": 1.5}
    with server(trained_model, "--events", json.dumps(events)) as endpoint:
        assert httpx.get(endpoint).json()["dmlc"]["backend_running"] is False  # scaled to zero at start
        with ThreadPoolExecutor(4) as pool:  # the first request starts the model server; the rest are refused
            replies = list(pool.map(lambda _: predict(endpoint, x), range(4)))
        codes = sorted(code for code, _ in replies)
        assert codes.count(200) >= 1 and 429 in codes, codes
        ok = next(body for code, body in replies if code == 200)
        np.testing.assert_allclose(np.array(ok["predictions"]), expected, rtol=1e-4, atol=1e-5)
        burst = [predict(endpoint, x[:1]) for _ in range(4)]  # sequential, faster than 2/s
        assert any(code == 429 and "rate limit" in body["error"] for code, body in burst)
        time.sleep(3.5)
        status = httpx.get(endpoint).json()["dmlc"]
        assert status["backend_running"] is False and status["starts"] == 1
        code, body = predict(endpoint, x[:2])  # started again on demand
        assert code == 200 and len(body["predictions"]) == 2


@pytest.mark.tf
def test_foreground_shard_server_as_in_a_pod(trained_model: Path, sample, tmp_path: Path) -> None:
    """A KServe shard spec (`"shard": 0`) serves in the foreground on its port instead of detaching."""
    import sys

    from dmlc.runtime.local_cluster import free_ports
    from dmlc.runtime.serve import wait_ready

    port = free_ports(1)[0]
    spec = spec_data("serve", {"model": str(trained_model), "port": port}, tmp_path, step="classifier", shard=0)
    argv = [sys.executable, "-m", "dmlc.runtime", "serve", "--spec-json", json.dumps(spec)]
    proc = subprocess.Popen(argv, env=step_env(), start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}/v1/models/classifier"
        wait_ready(endpoint, proc)
        code, body = predict(endpoint, sample[0][:3])
        assert code == 200
        np.testing.assert_allclose(np.array(body["predictions"]), sample[1][:3], rtol=1e-4, atol=1e-5)
        assert proc.poll() is None  # still serving: the step did not return
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
