"""Adaptive request batching (TF Serving's `max_batch_size` + `batch_timeout_micros`).

Each request is checked on its own first (`predictor.instances_array`: a bad request is a 400 and never
joins a batch). Its checked rows then wait in a queue; one runner takes the queued requests up to
`max_batch` rows, waiting at most `timeout` after the first of them for others to join, and makes one
model call for all of them on its own thread, then hands each request its rows of the answer. While
the model runs, new requests queue up, so the batch grows with the load by itself (adaptive). The
server counts the requests it is still reading and checking (`arriving`): when none is, nothing is
about to join and the batch runs at once, so a lone request does not wait `timeout` for nobody.

A request of more rows than `max_batch` runs alone. Requests of different trailing shapes or dtypes
(a model with a variable-size input) are never joined. When a joined call fails (an error TensorFlow
raises for one request's values), every request of that batch is run again on its own, so a bad
neighbour only fails itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MAX_BATCH = 32
DEFAULT_TIMEOUT_S = 0.002


@dataclass
class _Pending:
    x: np.ndarray
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """`await batcher.predict(x)` -> `fn(x)`, with concurrent calls joined into one `fn` call."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        max_batch: int = DEFAULT_MAX_BATCH,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.fn, self.max_batch, self.timeout = fn, max(1, int(max_batch)), max(0.0, float(timeout))
        self._queue: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmlc-model")  # one model call at a time
        self.calls = 0  # model calls made (a test and the bench read it)
        self.arriving = 0  # requests read and checked now, which may join the next batch

    def arrive(self) -> None:
        """A request began: it may join the next batch (pair with `arrived`)."""
        self.arriving += 1

    def arrived(self) -> None:
        """The request is queued (`predict`) or answered without the model."""
        self.arriving -= 1
        if self._wake is not None:
            self._wake.set()

    async def predict(self, x: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._runner is None or self._runner.done():
            self._wake = asyncio.Event()
            self._runner = loop.create_task(self._run())
        future = loop.create_future()
        self._queue.append(_Pending(x, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._fill(self._queue[0].arrived)
            batch = self._take()
            try:
                await self._call(loop, batch)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # never leave a request waiting
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _fill(self, first: float) -> None:
        """Wait until `max_batch` rows are queued or `timeout` passed since the first request arrived."""
        deadline = first + self.timeout
        while self.arriving > 0 and sum(len(p.x) for p in self._queue) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(self._wake.wait(), left)  # type: ignore[union-attr]
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        """The queued requests that fit in one call: same trailing shape and dtype as the first, up to
        `max_batch` rows (the first always, even when it alone is larger)."""
        first = self._queue[0]
        key = (first.x.shape[1:], first.x.dtype)
        batch, rest, rows = [first], [], len(first.x)
        for item in self._queue[1:]:
            if (item.x.shape[1:], item.x.dtype) == key and rows + len(item.x) <= self.max_batch:
                batch.append(item)
                rows += len(item.x)
            else:
                rest.append(item)
        self._queue = rest
        return [item for item in batch if not item.future.done()]  # a client that went away is not run

    async def _call(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        if not batch:
            return
        if len(batch) == 1:
            await self._alone(loop, batch[0])
            return
        x = np.concatenate([item.x for item in batch])
        try:
            out = await loop.run_in_executor(self._pool, self._fn_counted, x)
            if len(out) != len(x):
                raise ValueError(f"the model answered {len(out)} rows for {len(x)}")
        except Exception:  # one request's values broke the joined call: each runs alone, a bad one fails alone
            for item in batch:
                await self._alone(loop, item)
            return
        start = 0
        for item in batch:
            end = start + len(item.x)
            if not item.future.done():
                item.future.set_result(out[start:end])
            start = end

    async def _alone(self, loop: asyncio.AbstractEventLoop, item: _Pending) -> None:
        try:
            out = await loop.run_in_executor(self._pool, self._fn_counted, item.x)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(out)

    def _fn_counted(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.fn(x)


def batching_options(spec: dict[str, Any] | None) -> tuple[int, float]:
    """(max_batch, timeout seconds) from a serve step's `batching` block (None: the defaults)."""
    from dmlc.units import parse_duration

    spec = spec or {}
    max_batch = int(spec.get("max_batch") or DEFAULT_MAX_BATCH)
    timeout = spec.get("timeout")
    return max_batch, DEFAULT_TIMEOUT_S if timeout is None else parse_duration(timeout)
