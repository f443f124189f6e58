"""``btk serve``: an engine host in a process of its own that consoles attach to over a Unix socket.

The server owns the live runs of one state dir; it outlives every console. Consoles (and the
``btk status`` / ``start`` / ``stop`` commands) connect to its socket, send commands and, once
attached, receive every batch of events; several may be attached at once, and any may act.

* The socket is created private (0600, in the state dir or a 0700 folder of the user's own), and a
  peer of another user is refused (``SO_PEERCRED``) even if the file's mode was changed.
* A frame that is not a message, an unknown command, wrong arguments: an error reply, never a
  crash. A console that disappears, even mid-frame, is dropped; one that reads too slowly is too.
* The runs it was asked to run are kept in ``serve.json`` in the state dir; a server started
  again (after SIGKILL, a reboot) starts them again, and each resumes from its saved state (on
  the wall clock, first re-ticking the minutes it missed).
* SIGTERM or SIGINT: every run stops with its state saved, then the server exits. SIGHUP is
  ignored: an SSH drop or a closed terminal never stops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import signal
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from ..log import describe_error, get_logger
from ..persistence.state import atomic_write
from .host import CLOSED_WITH_ENGINE, EngineHost
from .messages import CommandError, EventBatch
from .wire import RESULTS, Bye, FrameTooLong, ProtocolError, Push, Reply, Request, encode_result, frame, read_message

SOCKET_NAME = ".btk.sock"
SERVE_FILE = "serve.json"
LOG_NAME = "serve.log"
SEND_QUEUE = 256            # frames waiting for a slow console before it is dropped
SOCKET_PATH_MAX = 100       # a Unix socket's path is at most about 107 bytes


class ServerBusy(RuntimeError):
    """Another server already serves this state dir (or socket)."""


class WantedRun(msgspec.Struct, frozen=True):
    strategy_name: str
    symbol: str
    exchange: str


def socket_for(state_dir: str | os.PathLike[str]) -> Path:
    """Where the server of ``state_dir`` listens: in the state dir, or (a path too long for a Unix
    socket) in a private folder under the temp dir named after it."""
    path = Path(state_dir).resolve() / SOCKET_NAME
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(Path(state_dir).resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"btk-{os.getuid()}" / f"{digest}.sock"


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux), None if unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _, uid, _ = struct.unpack("3i", creds)
    return uid


async def reachable(path: str | os.PathLike[str], timeout: float = 2.0) -> bool:
    """Whether a server answers on ``path`` (a stale socket file does not)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class _Console:
    """One connection: its frames go out in order through a bounded queue."""

    def __init__(self, writer: asyncio.StreamWriter, name: str):
        self.writer, self.name = writer, name
        self.attached = False
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(SEND_QUEUE)
        self.sender = asyncio.get_running_loop().create_task(self._send(), name=f"btk-serve-send-{name}")

    def send(self, data: bytes) -> bool:
        try:
            self.queue.put_nowait(data)
            return True
        except asyncio.QueueFull:
            return False

    async def _send(self) -> None:
        try:
            while (data := await self.queue.get()) is not None:
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    def close(self) -> None:
        self.attached = False
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.sender.cancel()
            self.writer.close()


class EngineServer:
    def __init__(self, *, store: str | os.PathLike[str], state_dir: str | os.PathLike[str], speed: float,
                 socket_path: str | os.PathLike[str] | None = None, catch_up: bool = True):
        self.state_dir = Path(state_dir)
        self.socket_path = Path(socket_path) if socket_path is not None else socket_for(state_dir)
        self.host = EngineHost(store=store, state_dir=state_dir, speed=speed, deliver=self._broadcast,
                               catch_up=catch_up)
        self.consoles: dict[int, _Console] = {}
        self._next_console = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.wanted: dict[tuple[str, str], WantedRun] = {}
        self.log = get_logger()

    # --- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if await reachable(self.socket_path):
            raise ServerBusy(f"a btk server already listens on {self.socket_path}")
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)      # a stale socket of a server that died
        await self.host.start()
        previous = os.umask(0o177)                     # the socket is born private (0600)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path),
                                                           limit=2 ** 20)
        finally:
            os.umask(previous)
        os.chmod(self.socket_path, 0o600)
        self.log.info("btk: serving %s on %s (pid %d)", self.state_dir, self.socket_path, os.getpid())
        await self._resume_wanted()

    async def close(self) -> None:
        """Stop listening, stop every run with its state saved (the wanted list stays: a server
        started again starts them again), drop the consoles."""
        if self._server is not None:
            self._server.close()
        await self.host.close()
        for console in list(self.consoles.values()):
            console.send(frame(Bye("the server is shutting down; its runs' state is saved")))
            console.close()
        for task in list(self._tasks):
            task.cancel()
        self.socket_path.unlink(missing_ok=True)
        self.log.info("btk: server of %s stopped", self.state_dir)

    async def _resume_wanted(self) -> None:
        path = self.state_dir / SERVE_FILE
        try:
            wanted = msgspec.json.decode(path.read_bytes(), type=list[WantedRun]) if path.exists() else []
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            self.log.error("btk: %s could not be read (%s): no run is started again", path, e)
            wanted = []
        for run in wanted:
            try:
                await self.host.start_live(run.strategy_name, run.symbol, run.exchange)
                self.wanted[(run.symbol, run.strategy_name)] = run
                self.host.note(f"started again after the server restarted: {run.strategy_name} on {run.symbol}")
            except CommandError as e:
                self.host.note(f"could not start {run.strategy_name} on {run.symbol} again: {e}", "error")
        self._save_wanted()

    def _save_wanted(self) -> None:
        try:
            atomic_write(self.state_dir / SERVE_FILE, msgspec.json.encode(list(self.wanted.values())))
        except OSError as e:
            self.log.error("btk: could not save the runs to start again to %s: %s", self.state_dir / SERVE_FILE, e)

    # --- consoles ------------------------------------------------------------------------------

    def _broadcast(self, batch: EventBatch) -> None:
        self._forget_ended(batch)
        attached = [c for c in self.consoles.values() if c.attached]
        if not attached:
            return
        data = frame(Push(batch))
        for console in attached:
            if not console.send(data):
                self.log.warning("btk: console %s reads too slowly: dropped (it may attach again)", console.name)
                console.close()

    def _forget_ended(self, batch: EventBatch) -> None:
        """A run that ended on its own (its span, a stop, an error) is not started again."""
        if not batch.runs:
            return
        changed = False
        for run in batch.runs:
            key = (run.symbol, run.strategy_name)
            if run.state == "ended" and key in self.wanted and run.ended != CLOSED_WITH_ENGINE:
                del self.wanted[key]
                changed = True
        if changed:
            self._save_wanted()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._next_console += 1
        name = str(self._next_console)
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            self.log.warning("btk: refused a connection of user %d on %s", uid, self.socket_path)
            try:
                writer.write(frame(Bye(f"refused: this server belongs to user {os.getuid()}, not {uid}")))
                await writer.drain()
            except (ConnectionError, OSError):
                pass
            writer.close()
            return
        console = self.consoles[id(writer)] = _Console(writer, name)
        try:
            while True:
                try:
                    message = await read_message(reader)
                except FrameTooLong as e:
                    console.send(frame(Reply(-1, error=f"{e}; the connection is closed")))
                    break
                except ProtocolError as e:
                    console.send(frame(Reply(-1, error=str(e))))
                    continue
                if message is None:
                    break
                if not isinstance(message, Request):
                    console.send(frame(Reply(-1, error=f"a console sends requests, not {type(message).__name__}")))
                    continue
                task = asyncio.get_running_loop().create_task(self._answer(console, message),
                                                              name=f"btk-serve-{message.command}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, OSError):
            pass
        finally:
            self.consoles.pop(id(writer), None)
            console.close()

    async def _answer(self, console: _Console, request: Request) -> None:
        command = request.command
        reply: Reply
        try:
            if command not in RESULTS:
                raise CommandError(f"unknown command {command!r} (known: {', '.join(sorted(RESULTS))})")
            if command == "attach":
                result: Any = await self.host.attach()
                console.attached = True
            elif command == "status":
                result = await self.host.status()
                result.consoles = sum(c.attached for c in self.consoles.values())
            else:
                result = getattr(self.host, command)(*request.args, **request.kwargs)
                if inspect.isawaitable(result):
                    result = await result
                self._remember(command, request)
            reply = Reply(request.id, result=encode_result(command, result))
        except CommandError as e:
            reply = Reply(request.id, error=str(e), refused=True)
        except TypeError as e:          # arguments of the wrong number or kind
            reply = Reply(request.id, error=f"{command}: {e}")
        except Exception as e:
            self.log.error("btk: command %s failed: %s", command, describe_error(e))
            reply = Reply(request.id, error=f"{command} failed: {describe_error(e)}")
        console.send(frame(reply))

    def _remember(self, command: str, request: Request) -> None:
        """The runs to start again if the server restarts: what ``start_live`` started, less what
        ``stop_live`` stopped."""
        if command == "start_live":
            args = {**dict(zip(("strategy_name", "symbol", "exchange"), request.args)), **request.kwargs}
            run = WantedRun(args["strategy_name"], args["symbol"], args.get("exchange", "replay"))
            self.wanted[(run.symbol, run.strategy_name)] = run
            self._save_wanted()
        elif command == "stop_live":
            args = {**dict(zip(("strategy_name", "symbol"), request.args)), **request.kwargs}
            if self.wanted.pop((args.get("symbol"), args.get("strategy_name")), None) is not None:
                self._save_wanted()


def log_to(path: Path) -> None:
    """The engine's log (and the server's) goes to ``path``, with times."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = get_logger()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


async def serve(server: EngineServer, ready: Any = None) -> None:
    """Run ``server`` until SIGTERM or SIGINT (SIGHUP is ignored)."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    await server.start()
    if ready is not None:
        ready(server)
    try:
        await done.wait()
    finally:
        await server.close()
