"""Questions that arrive together are generated together: one model, one batch at a time.

Each request awaits a future; a single worker task takes the first waiting question, gathers more
for up to `wait_s` (or until `max_batch`), and runs the whole batch in one thread, so the event loop
keeps serving health checks, schema lookups and SQL execution meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class Busy(Exception):
    """More questions are waiting than the server accepts; the client should retry later."""


class Batcher:
    def __init__(self, generate: Callable[[list[tuple[str, str]]], list[str]], *, max_batch: int = 16,
                 max_pending: int = 64, wait_s: float = 0.01):
        self.generate, self.max_batch, self.max_pending, self.wait_s = generate, max_batch, max_pending, wait_s
        self.pending = 0
        self.batch_sizes: list[int] = []  # of every batch run, for the load test and the tests
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gemsql-generate")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, question: str, schema: str) -> str:
        """The SQL for one question; raises Busy when max_pending questions are already in."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not awaited")
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} questions are already waiting; try again shortly")
        self.pending += 1
        try:
            future = asyncio.get_running_loop().create_future()
            await self._queue.put((question, schema, future))
            return await future
        finally:
            self.pending -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            batch = [item for item in batch if not item[2].done()]  # a client that went away
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                sqls = await loop.run_in_executor(self._pool, self.generate, [(q, s) for q, s, _ in batch])
            except Exception as e:  # the model failed: every request of the batch hears why
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (*_, future), sql in zip(batch, sqls):
                if not future.done():
                    future.set_result(sql)
