"""Where cells run: ``inline`` (one by one on the caller's event loop, the default), ``process``
(a spawn pool sized to the cores) or ``dask`` (a Dask ``distributed`` cluster: the scheduler at
``scheduler``, or a LocalCluster started for the run).

``process`` and ``dask`` go through a ``concurrent.futures.Executor`` (a ProcessPoolExecutor,
or the Dask client's ``get_executor()``): a cell goes out as names and parameters, its result
comes back as it finishes. Dask takes cells in batches (a few per worker: each task costs the
scheduler milliseconds, a vectorised cell takes tens) and keeps its cluster and client for the
process, so a second walk starts at once; its workers import the engine as they start. The
process pool is kept the same way.
``inline`` needs no executor: the cell runs in this process with what is registered here
(lambdas and closures too), and its events reach this process's listeners.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .cells import Cell, CellResult, run_cell, run_cell_async, run_cells
from .log import describe_error

EXECUTORS = ("inline", "process", "dask")
DASK_CONNECT_TIMEOUT_S = 10.0
BATCHES_PER_WORKER = 4       # Dask: cells go in this many batches per worker (enough to balance the load)
# The LocalCluster (and its client) of each size started in this process: kept between walks.
_dask: dict[int, tuple[Any, Any]] = {}
# Likewise the process pool of each size: a second walk (the console's) starts at once.
_pools: dict[int, ProcessPoolExecutor] = {}
PARENT_CHECK_S = 1.0          # how often a pool's worker checks that its parent is alive


def ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with a real stderr. It passes ``sys.stderr``'s
    descriptor to its process; inside a terminal UI (the console) ``sys.stderr`` is a capture
    without one, and a process pool then fails with "bad value(s) in fds_to_keep"."""
    from multiprocessing import resource_tracker
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable:
        resource_tracker.ensure_running()
        return
    captured = sys.stderr
    sys.stderr = sys.__stderr__
    try:
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class CellRunner:
    """``async with CellRunner(kind, scheduler=...) as runner: await runner.run(cell)``."""

    def __init__(self, kind: str = "inline", *, scheduler: str | None = None, workers: int | None = None):
        if kind not in EXECUTORS:
            raise ValueError(f"unknown executor {kind!r}: expected one of {', '.join(EXECUTORS)}")
        if scheduler is not None and kind != "dask":
            raise ValueError(f"--scheduler is for the dask executor, not {kind}")
        self.kind, self.scheduler = kind, scheduler
        self.workers = workers or core_count()
        self.executor: Executor | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._inline_lock = asyncio.Lock()

    @property
    def portable(self) -> bool:
        """Whether cells leave this process (and so must be rebuilt from module paths)."""
        return self.kind != "inline"

    @property
    def describe(self) -> str:
        if self.kind == "inline":
            return "inline (this process)"
        if self.kind == "process":
            return f"process pool, {self.workers} workers (spawn)"
        return f"dask {self.scheduler}" if self.scheduler else f"dask LocalCluster, {self.workers} workers"

    async def __aenter__(self) -> CellRunner:
        if self.kind == "process":
            self.executor = _pool(self.workers)
        elif self.kind == "dask":
            await asyncio.to_thread(self._start_dask)
        return self

    def _start_dask(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency of btk
            raise RuntimeError("the dask executor needs `distributed` (pip install distributed)") from exc
        kept = None if self.scheduler else _dask.get(self.workers)
        if kept is not None and kept[1].status == "running":
            self._cluster, self._client = kept
        elif self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
            except Exception as exc:    # OSError, or whatever a peer that is not a scheduler answered
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler}: "
                                      f"{describe_error(exc)}") from exc
        else:
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR,
                                         preload=["engine.cells"])
            self._client = Client(self._cluster)
        if self._cluster is not None:        # our own cluster: kept for the next walk
            if not _dask:
                atexit.register(close_dask)
            _dask[self.workers] = (self._cluster, self._client)
        self.executor = self._client.get_executor()

    async def __aexit__(self, *exc: Any) -> None:
        # A process pool is kept for the next walk (close_pools at exit; replaced if a worker died).
        if self._client is not None and self._cluster is None:     # a scheduler's: not ours to keep
            await asyncio.to_thread(self._client.close)
        self.executor = None         # a LocalCluster is kept for the next walk (close_dask at exit)

    def run_all(self, cells: list[Cell], skip: Callable[[], bool] = lambda: False
                ) -> list[Awaitable[CellResult | None]]:
        """One awaitable per cell, as ``run`` gives; Dask takes them in batches."""
        if self._client is None:
            return [self.run(cell, skip) for cell in cells]
        out: list[Awaitable[CellResult | None]] = []
        assert self.executor is not None
        for batch in batches(cells, self.workers):
            done = asyncio.wrap_future(self.executor.submit(run_cells, batch))
            out += [_pick(done, i) for i in range(len(batch))]
        return out

    def run(self, cell: Cell, skip: Callable[[], bool] = lambda: False) -> Awaitable[CellResult | None]:
        """The cell's result once it finishes; None when ``skip()`` said so before it started
        (inline cells wait their turn; a cell already handed to a worker runs to its end)."""
        if self.executor is None:
            return self._run_inline(cell, skip)
        if self._client is None:
            return self._run_pooled(cell)
        return asyncio.wrap_future(self.executor.submit(run_cell, cell))

    async def _run_pooled(self, cell: Cell) -> CellResult:
        """The cell on the kept process pool; if a worker died (since the last walk, or now), once
        more on a new pool."""
        pool = self.executor
        assert isinstance(pool, ProcessPoolExecutor)
        try:
            return await asyncio.wrap_future(pool.submit(run_cell, cell))
        except BrokenProcessPool:
            self.executor = _pool(self.workers)          # a new one, once per broken pool
            return await asyncio.wrap_future(self.executor.submit(run_cell, cell))

    async def _run_inline(self, cell: Cell, skip: Callable[[], bool]) -> CellResult | None:
        async with self._inline_lock:    # one at a time: events of one cell are not interleaved with another's
            if skip():
                return None
            return await run_cell_async(cell)


def batches(cells: list[Any], workers: int) -> list[list[Any]]:
    """Cells in consecutive batches, about ``BATCHES_PER_WORKER`` per worker (one cell each when
    there are no more cells than that)."""
    size = max(1, -(-len(cells) // (workers * BATCHES_PER_WORKER)))
    return [cells[a:a + size] for a in range(0, len(cells), size)]


async def _pick(batch: Awaitable[list[CellResult]], i: int) -> CellResult:
    return (await batch)[i]


def _pool(workers: int) -> ProcessPoolExecutor:
    """The spawn pool of ``workers`` processes kept for this process (started on first use, again
    after a worker died)."""
    pool = _pools.get(workers)
    if pool is None or _broken(pool):
        ensure_resource_tracker()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_follow_parent, initargs=(os.getpid(),))
        if not _pools:
            atexit.register(close_pools)
        _pools[workers] = pool
    return pool


def _follow_parent(parent: int) -> None:
    """In a pool's worker: end when the process that started the pool is gone. A kept pool's idle
    workers would otherwise outlive a console killed or hung up (they hold their own queue open,
    so they never read its end)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)
    threading.Thread(target=watch, name="btk-follow-parent", daemon=True).start()


def _broken(pool: ProcessPoolExecutor) -> bool:
    """Whether a worker of ``pool`` died (the pool then refuses work: BrokenProcessPool)."""
    return bool(getattr(pool, "_broken", False))


def close_pools() -> None:
    """Shut the process pools kept for this process (their queued cells are dropped)."""
    for pool in list(_pools.values()):
        pool.shutdown(wait=False, cancel_futures=True)
    _pools.clear()


def close_dask() -> None:
    """Close the Dask clients (and local clusters) kept for this process."""
    for cluster, client in list(_dask.values()):
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - at exit, whatever a closing cluster says
            pass
    _dask.clear()
