"""Request batching (issue 15): joined model calls answer each request what it would get alone, and a
bad request never poisons the batch it would have joined. No TensorFlow: a numpy stand-in model."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from dmlc.ir.model import Serve
from dmlc.runtime.batching import Batcher, batching_options
from dmlc.runtime.predictor import instances_array
from dmlc.runtime.serve import server_argv
from dmlc.runtime.server_apps import model_app

SHAPE = [4, 4, 1]
WEIGHTS = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)


def model(x: np.ndarray) -> np.ndarray:
    """A stand-in that, like a kernel that checks its input, fails a whole call holding one negative row."""
    if (x < 0).any():
        raise ValueError("a negative pixel")
    return x.reshape(len(x), -1) @ WEIGHTS


class StandIn:
    input_name, input_shape, output_name = "x", SHAPE, "y"

    def __init__(self) -> None:
        self.calls = 0

    def instances_to_array(self, instances: Any) -> np.ndarray:
        return instances_array(instances, "x", SHAPE, np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return model(x)


def requests(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((1 + i % 5, *SHAPE), dtype=np.float32) for i in range(n)]


def test_joined_calls_answer_what_one_by_one_calls_do() -> None:
    xs = requests(40)

    async def run() -> tuple[list[np.ndarray], int]:
        batcher = Batcher(model, max_batch=16, timeout=0.05)
        batcher.arriving = 1  # a request on its way: the batcher waits for the batch to fill
        try:
            out = await asyncio.gather(*(batcher.predict(x) for x in xs))
        finally:
            batcher.close()
        return out, batcher.calls

    got, calls = asyncio.run(run())
    for x, y in zip(xs, got, strict=True):
        np.testing.assert_allclose(y, model(x), rtol=1e-6)
    assert calls < len(xs) / 3  # joined: 40 requests of 1..5 rows in batches of at most 16


def test_a_bad_neighbour_fails_alone() -> None:
    xs = requests(12)
    xs[5] = -xs[5]  # the model refuses this one, and any call it is part of

    async def run() -> list[Any]:
        batcher = Batcher(model, max_batch=64, timeout=0.05)
        batcher.arriving = 1
        try:
            return await asyncio.gather(*(batcher.predict(x) for x in xs), return_exceptions=True)
        finally:
            batcher.close()

    got = asyncio.run(run())
    assert isinstance(got[5], ValueError)
    for i, (x, y) in enumerate(zip(xs, got, strict=True)):
        if i != 5:
            np.testing.assert_allclose(y, model(x), rtol=1e-6)


def test_requests_of_other_shapes_are_not_joined_and_a_big_one_runs_alone() -> None:
    seen: list[tuple[int, ...]] = []

    def flat(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        return x.reshape(len(x), -1).sum(axis=1)

    xs = [np.ones((2, 3)), np.ones((1, 5)), np.ones((40, 3)), np.ones((2, 3))]

    async def run() -> list[np.ndarray]:
        batcher = Batcher(flat, max_batch=8, timeout=0.05)
        batcher.arriving = 1
        try:
            return await asyncio.gather(*(batcher.predict(x) for x in xs))
        finally:
            batcher.close()

    got = asyncio.run(run())
    assert [list(y) for y in got] == [[3, 3], [5], [3] * 40, [3, 3]]
    assert all(shape[0] <= 8 or shape == (40, 3) for shape in seen)
    assert len(seen) == 3  # the two 2x3 requests together, the 1x5 one and the 40-row one alone


def test_a_lone_request_does_not_wait_for_the_timeout() -> None:
    async def run() -> float:
        batcher = Batcher(model, max_batch=32, timeout=5.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.predict(requests(1)[0])
        batcher.close()
        return loop.time() - started

    assert asyncio.run(run()) < 2.0


def test_the_server_answers_each_request_of_a_batch_its_own_and_refuses_the_bad_one() -> None:
    stand_in = StandIn()
    app = model_app("unused", "m", stand_in, {"max_batch": 64, "timeout": "20ms"})
    xs = requests(16)
    bodies: list[Any] = [{"instances": x.tolist()} for x in xs]
    bodies[3] = {"instances": [[[1.0]]]}  # the wrong shape: refused before the model
    bodies[7] = {"instances": (-xs[7]).tolist()}  # fits the signature, but the model refuses it

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                posts = (client.post("/v1/models/m:predict", json=body) for body in bodies)
                return list(await asyncio.gather(*posts))

    replies = asyncio.run(run())
    assert replies[3].status_code == 400 and "shape" in replies[3].json()["error"]
    assert replies[7].status_code == 400 and "prediction failed" in replies[7].json()["error"]
    for i, (x, reply) in enumerate(zip(xs, replies, strict=True)):
        if i not in (3, 7):
            assert reply.status_code == 200, reply.text
            np.testing.assert_allclose(reply.json()["predictions"], model(x), rtol=1e-5)
    assert stand_in.calls < 14 + 14  # joined calls (+ the one-by-one retries of the batch with the bad one)


def test_max_batch_1_calls_the_model_per_request() -> None:
    stand_in = StandIn()
    app = model_app("unused", "m", stand_in, {"max_batch": 1})
    xs = requests(4)

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                posts = (client.post("/v1/models/m:predict", json={"instances": x.tolist()}) for x in xs)
                return list(await asyncio.gather(*posts))

    replies = asyncio.run(run())
    assert [r.status_code for r in replies] == [200] * 4 and stand_in.calls == 4


def test_the_serve_step_batching_block_reaches_the_server() -> None:
    step = Serve.model_validate(
        {"kind": "serve", "model": "m", "batching": {"max_batch": 16, "timeout": "3ms"}}, context={"resolved": True}
    )
    assert step.batching is not None
    spec = step.batching.model_dump(mode="json")
    assert batching_options(spec) == (16, pytest.approx(0.003))
    argv = server_argv("m", "serve", 8501, batching=spec)
    assert argv[argv.index("--batching") + 1] == '{"max_batch": 16, "timeout": "3ms"}'
    assert batching_options(None) == (32, 0.002)
    with pytest.raises(ValueError):
        Serve.model_validate({"kind": "serve", "model": "m", "batching": {"max_batch": 0}}, context={"resolved": True})
