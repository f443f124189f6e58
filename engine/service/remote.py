"""A console's side of an engine server: the same interface as ``EngineThread`` (``start``,
``submit``, ``call``, ``hush``, ``stop``), over the server's Unix socket.

The connection lives on a thread of its own with its own event loop, as the in-process engine
does: the console's loop only draws. ``start`` attaches (the first batch says where everything
stands); every batch the server pushes goes to ``on_batch`` on the console's loop. ``stop``
detaches: the server's runs go on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .messages import CommandError, EventBatch, Note
from .wire import Bye, ProtocolError, Push, Reply, Request, decode_result, frame, read_message

CONNECT_TIMEOUT_S = 5.0


class ServerGone(ConnectionError):
    """The connection to the engine server is closed."""


class RemoteEngine:
    remote = True

    def __init__(self, socket_path: str | os.PathLike[str]):
        self.socket_path = str(socket_path)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._on_batch: Callable[[EventBatch], None] | None = None
        self._caller: asyncio.AbstractEventLoop | None = None
        self.gone: str | None = None         # why the connection ended (None while it lives)

    # --- life ----------------------------------------------------------------------------------

    def start(self, on_batch: Callable[[EventBatch], None]) -> None:
        """Connect and attach (returns once the first batch is delivered); ``ServerGone`` when no
        server answers."""
        try:
            self._caller = asyncio.get_running_loop()
        except RuntimeError:
            self._caller = None
        self._on_batch = on_batch
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="btk-remote", daemon=True)
        self._thread.start()
        ready.result()
        self.submit("attach").result()      # its answer, where everything stands, is the first batch

    def _main(self, ready: Future[None]) -> None:
        loop = self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            reader, self._writer = loop.run_until_complete(asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path, limit=2 ** 20), CONNECT_TIMEOUT_S))
        except (OSError, asyncio.TimeoutError) as exc:
            ready.set_exception(ServerGone(f"no btk server answers on {self.socket_path}: {exc}"))
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_until_complete(self._read(reader))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "the server closed the connection"
        try:
            while True:
                try:
                    message = await read_message(reader)
                except ProtocolError as e:
                    why = f"the server sent what is not a message ({e})"
                    break
                if message is None:
                    break
                if isinstance(message, Push):
                    self._deliver(message.batch)
                elif isinstance(message, Reply):
                    self._settle(message)
                elif isinstance(message, Bye):
                    why = message.reason
                    break
        except (ConnectionError, OSError) as e:
            why = f"the connection broke: {e}"
        except asyncio.CancelledError:
            why = "detached"
        self.gone = why
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ServerGone(f"btk server at {self.socket_path}: {why}"))
        self._pending.clear()
        if why != "detached":
            self._deliver(EventBatch(events=[Note(f"engine server at {self.socket_path}: {why}", "error")]))

    def _settle(self, reply: Reply) -> None:
        command, future = self._pending.pop(reply.id, ("", None))
        if future is None or future.done():
            return
        if reply.error is not None:
            future.set_exception(CommandError(reply.error) if reply.refused else RuntimeError(reply.error))
            return
        try:
            result = decode_result(command, reply.result)
        except Exception as e:     # an answer that is not of its command's type
            future.set_exception(ServerGone(f"btk server at {self.socket_path} answered {command} wrongly: {e}"))
            return
        if command == "attach":
            self._deliver(result)   # before any batch pushed after it: they come in order
        future.set_result(result)

    def _deliver(self, batch: EventBatch) -> None:
        on_batch = self._on_batch
        if on_batch is None:
            return
        caller = self._caller
        if caller is not None and not caller.is_closed():
            caller.call_soon_threadsafe(on_batch, batch)
        else:
            on_batch(batch)

    # --- commands ------------------------------------------------------------------------------

    def submit(self, name: str, *args: Any, **kwargs: Any) -> Future[Any]:
        """Send the command ``name``; a concurrent future of its result."""
        assert self.loop is not None, "the remote engine is not started"
        return asyncio.run_coroutine_threadsafe(self._request(name, list(args), kwargs), self.loop)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self.submit(name, *args, **kwargs))

    async def _request(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.gone is not None or self._writer is None:
            raise ServerGone(f"btk server at {self.socket_path}: {self.gone or 'not connected'}")
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (name, future)
        self._writer.write(frame(Request(ident, name, [list(a) if isinstance(a, tuple) else a for a in args],
                                         kwargs)))
        await self._writer.drain()
        return await future

    def hush(self, seconds: float) -> None:
        """Nothing to hush: the engine runs in another process."""

    def stop(self, timeout: float = 5.0) -> None:
        """Detach: the connection closes; the server and its runs go on."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        def close() -> None:
            if self._writer is not None:
                self._writer.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
        loop.call_soon_threadsafe(close)
        thread.join(timeout)
