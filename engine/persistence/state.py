"""Live state on disk (SEMANTICS.md section 11): atomic files, adapters, the state-dir lock.

``atomic_write``: temp file in the same directory, write, fsync, ``os.replace``,
fsync(dir). A reader sees the complete old file or the complete new one, never
a mix, even if the process dies mid-write.

An adapter stores bytes per ``(domain, key)``; the domains are ``signal``,
``schedule``, ``risk``, ``partial`` (SEMANTICS.md) plus ``live`` (the loop's
cursor). ``FilePersistence`` (the default) keeps ``{domain}_{key}.json`` under
a state directory it locks for its lifetime; ``MemoryPersistence`` is for
tests. Plug another with ``set_persistence(lambda state_dir: MyAdapter(...))``.

``StateStore`` is the engine's side: typed reads and writes, a corrupt entry
moved aside and reported (never dropped silently), and a failed write (disk
full, permission denied, I/O error) reported once and retried every tick while
the loop runs on its in-memory state.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from ..log import get_logger

TEMP_SUFFIX = ".btk-tmp"
LOCK_NAME = ".btk.lock"
DOMAINS = ("signal", "schedule", "risk", "partial", "live")

T = TypeVar("T")


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def safe_name(name: str) -> str:
    """A file-name-safe form of a symbol or strategy name (``BTC/USDT`` -> ``BTC_USDT``)."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)


class PersistenceAdapter(Protocol):
    """Where live state lives. ``write`` must be durable and atomic when it returns."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def read(self, domain: str, key: str) -> bytes | None: ...
    def write(self, domain: str, key: str, data: bytes) -> None: ...
    def quarantine(self, domain: str, key: str) -> str:
        """Move an unreadable entry aside; returns where it went (for the error message)."""
        ...
    def describe(self, domain: str, key: str) -> str: ...


class StateDirBusy(RuntimeError):
    """Another process drives this state directory."""


class _DirLock:
    """flock on ``{dir}/.btk.lock``, shared by every live run of this process in that dir."""

    _held: dict[str, tuple[int, int]] = {}

    @classmethod
    def acquire(cls, directory: Path) -> None:
        key = str(directory.resolve())
        fd, count = cls._held.get(key, (-1, 0))
        if count:
            cls._held[key] = (fd, count + 1)
            return
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateDirBusy(f"state directory {directory} is in use by another btk process (pid {holder}); "
                                   "two processes must never drive the same live state") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        cls._held[key] = (fd, 1)

    @classmethod
    def release(cls, directory: Path) -> None:
        key = str(directory.resolve())
        fd, count = cls._held.get(key, (-1, 0))
        if count > 1:
            cls._held[key] = (fd, count - 1)
        elif count == 1:
            del cls._held[key]
            os.close(fd)  # closing the descriptor releases the flock


class FilePersistence:
    """``{state_dir}/{domain}_{key}.json`` written atomically; the directory is locked while open."""

    def __init__(self, state_dir: str | os.PathLike[str]):
        self.dir = Path(state_dir)
        self._open = False

    def open(self) -> None:
        if self._open:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"cannot create the state directory {self.dir}: {e.strerror}") from None
        _DirLock.acquire(self.dir)
        self._open = True
        for stale in self.dir.glob(f".*{TEMP_SUFFIX}"):
            # Left by a process killed mid-write; the real file is the old or the new version.
            get_logger().warning("btk: removing a temp file left by an interrupted write: %s", stale)
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        if self._open:
            self._open = False
            _DirLock.release(self.dir)

    def path(self, domain: str, key: str) -> Path:
        return self.dir / f"{domain}_{key}.json"

    def describe(self, domain: str, key: str) -> str:
        return str(self.path(domain, key))

    def read(self, domain: str, key: str) -> bytes | None:
        try:
            return self.path(domain, key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, domain: str, key: str, data: bytes) -> None:
        atomic_write(self.path(domain, key), data)

    def quarantine(self, domain: str, key: str) -> str:
        source = self.path(domain, key)
        target = source.with_name(f"{source.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9}")
        os.replace(source, target)
        return str(target)

    def history_path(self) -> str:
        return str(self.dir / "history.sqlite")


class MemoryPersistence:
    """Live state in a dict (tests; runs that must leave nothing behind)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}
        self.quarantined: dict[tuple[str, str], bytes] = {}

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self, domain: str, key: str) -> str:
        return f"memory:{domain}/{key}"

    def read(self, domain: str, key: str) -> bytes | None:
        return self.data.get((domain, key))

    def write(self, domain: str, key: str, data: bytes) -> None:
        self.data[(domain, key)] = data

    def quarantine(self, domain: str, key: str) -> str:
        self.quarantined[(domain, key)] = self.data.pop((domain, key))
        return f"memory:quarantine/{domain}/{key}"

    def history_path(self) -> str:
        return f":memory:{id(self)}"


_factory: Callable[[str], PersistenceAdapter] | None = None


def set_persistence(factory: Callable[[str], PersistenceAdapter] | None) -> None:
    """Use ``factory(state_dir)`` for live state from now on (``None``: the default files)."""
    global _factory
    if factory is not None and not callable(factory):
        raise TypeError(f"set_persistence: expected a callable state_dir -> adapter, got {type(factory).__name__}")
    _factory = factory


def persistence_for(state_dir: str) -> PersistenceAdapter:
    return _factory(state_dir) if _factory is not None else FilePersistence(state_dir)


class CorruptStateError(ValueError):
    """A state entry could not be read; it was moved aside and that state starts empty."""


class PersistError(OSError):
    """A state write failed; the loop goes on in memory and retries the write every tick."""


class StateStore:
    """Typed, reported access to one adapter. ``report(exc, where)`` goes to ``listen_error``."""

    def __init__(self, adapter: PersistenceAdapter, report: Callable[[BaseException, str], None]):
        self.adapter = adapter
        self.report = report
        self.failed: dict[tuple[str, str], bytes] = {}   # writes to retry, in the order they failed
        self._encoder = msgspec.json.Encoder()

    def load(self, domain: str, key: str, type_: Any) -> Any:
        data = self.adapter.read(domain, key)
        if data is None:
            return None
        try:
            return msgspec.json.decode(data, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            where = self.adapter.describe(domain, key)
            moved = self.adapter.quarantine(domain, key)
            self.report(CorruptStateError(f"{where} could not be read ({e}); moved aside to {moved}; "
                                          f"{domain} state for {key} starts empty"), "persist load")
            return None

    def save(self, domain: str, key: str, value: Any) -> bool:
        """Write now; on failure keep the value for ``flush`` and report (once per failing entry).

        While earlier writes wait to be retried, later ones wait behind them: the disk
        always sees the writes in the order they were made (an activated signal is saved
        before its schedule is cleared, a close is recorded before the signal is)."""
        data = self._encoder.encode(value)
        entry = (domain, key)
        first_failure = entry not in self.failed
        self.failed.pop(entry, None)
        if self.failed:
            self.failed[entry] = data
            return False
        try:
            self.adapter.write(domain, key, data)
            return True
        except OSError as e:
            self.failed[entry] = data
            if first_failure:
                self.report(PersistError(e.errno, f"could not save {domain} state to {self.adapter.describe(domain, key)}: "
                                         f"{e.strerror or e}; the previous file is intact, btk goes on with the state "
                                         "in memory and retries the write every tick"), "persist save")
            return False

    def defer(self, domain: str, key: str, value: Any) -> None:
        """Queue a write behind the ones waiting (used while a close waits to be recorded)."""
        entry = (domain, key)
        self.failed.pop(entry, None)
        self.failed[entry] = self._encoder.encode(value)

    def flush(self) -> bool:
        """Retry failed writes, oldest first. True when nothing is left to write."""
        for entry, data in list(self.failed.items()):
            try:
                self.adapter.write(*entry, data)
            except OSError:
                return False
            del self.failed[entry]
            get_logger().warning("btk: saved %s state to %s after earlier failures", entry[0],
                                 self.adapter.describe(*entry))
        return True
