"""An engine host on a thread of its own, with its own event loop.

The console's event loop then runs only the console: engine work (ticks, backtests, state
writes and their fsyncs) never holds up a key press. Commands cross with
``asyncio.run_coroutine_threadsafe``; batches come back with ``call_soon_threadsafe`` on the
loop that started the thread. Everything the engine does happens on its thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .host import EngineHost
from .messages import EventBatch

STOP_TIMEOUT_S = 30.0
# The engine's share of the interpreter while it is busy: after this long of work it rests (the
# lock free for the console's thread) for the rest of the window. Most of it: a backtest in the
# console runs nearly as fast as from the CLI (benchmarks/user_paths.py), and a key still gets the
# lock within Python's switch interval, then the hushed share below.
WORK_WINDOW_S = 0.010
WORK_SHARE = 0.75
# Right after a key the console has a screen to draw: the engine's share drops to this for a moment.
HUSHED_SHARE = 0.15


class PacedLoop(asyncio.SelectorEventLoop):
    """An event loop that holds the interpreter for at most ``share`` of each ``window`` of work:
    the console's thread shares the lock with it, and its keys are answered between the
    engine's steps. Time spent waiting for I/O or timers is not work."""

    def __init__(self, window: float = WORK_WINDOW_S, share: float = WORK_SHARE,
                 hushed_share: float = HUSHED_SHARE) -> None:
        super().__init__()
        self._window = window
        self._budget, self._rest = window * share, window * (1 - share)
        self._hushed_budget = window * hushed_share
        self._hushed_until = 0.0
        self._busy = 0.0
        self._waited = 0.0
        selector = self._selector      # type: ignore[has-type]

        def select(timeout: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return real_select(timeout)
            finally:
                self._waited += time.perf_counter() - started

        real_select = selector.select
        selector.select = select       # type: ignore[method-assign]

    def hush(self, seconds: float) -> None:
        """Work at the hushed share for ``seconds`` (any thread may call it: one float is set)."""
        self._hushed_until = time.perf_counter() + seconds

    @property
    def hushed(self) -> bool:
        return time.perf_counter() < self._hushed_until

    def _run_once(self) -> None:
        started = time.perf_counter()
        self._waited = 0.0
        super()._run_once()  # type: ignore[misc]
        now = time.perf_counter()
        self._busy += now - started - self._waited
        budget = self._hushed_budget if now < self._hushed_until else self._budget
        if self._busy >= budget:
            self._busy = 0.0
            time.sleep(self._window - budget)


class EngineThread:
    """``EngineThread(make_host)`` with ``make_host(deliver) -> EngineHost``; ``start(on_batch)``
    from a running loop, then ``await call("start_live", ...)``; ``stop()`` at the end."""

    def __init__(self, make_host: Callable[[Callable[[EventBatch], None]], EngineHost]) -> None:
        self._make_host = make_host
        self.host: EngineHost | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._on_batch: Callable[[EventBatch], None] | None = None
        self._caller: asyncio.AbstractEventLoop | None = None

    def start(self, on_batch: Callable[[EventBatch], None]) -> None:
        """Start the thread and the host on it (returns once the host listens)."""
        self._caller = asyncio.get_running_loop()
        self._on_batch = on_batch
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="btk-engine", daemon=True)
        self._thread.start()
        ready.result()

    def _main(self, ready: Future[None]) -> None:
        loop = self.loop = PacedLoop()
        asyncio.set_event_loop(loop)
        try:
            self.host = self._make_host(self._deliver)
            loop.run_until_complete(self.host.start())
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _deliver(self, batch: EventBatch) -> None:
        caller, on_batch = self._caller, self._on_batch
        if caller is not None and on_batch is not None and not caller.is_closed():
            caller.call_soon_threadsafe(on_batch, batch)

    def submit(self, name: str, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run the host's command ``name`` on the engine's loop; a concurrent future of its result."""
        assert self.loop is not None and self.host is not None, "the engine thread is not started"
        return asyncio.run_coroutine_threadsafe(self._invoke(name, args, kwargs), self.loop)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The same from the caller's loop: await the command's result (its exception re-raised)."""
        return await asyncio.wrap_future(self.submit(name, *args, **kwargs))

    async def _invoke(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self.host is not None
        result = getattr(self.host, name)(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def hush(self, seconds: float) -> None:
        """Give the console most of the interpreter for ``seconds`` (a key was pressed)."""
        if isinstance(self.loop, PacedLoop):
            self.loop.hush(seconds)

    @property
    def hushed(self) -> bool:
        """Whether the engine works at the hushed share now."""
        return isinstance(self.loop, PacedLoop) and self.loop.hushed

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Close the host (live runs stop with their state saved) and end the thread."""
        if self.loop is None or self._thread is None or not self._thread.is_alive():
            return
        try:
            self.submit("close").result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
