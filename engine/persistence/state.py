"""Live state on disk (SEMANTICS.md section 11): atomic files, adapters, the state-dir lock.

``atomic_write``: temp file in the same directory, write, fsync, ``os.replace``,
fsync(dir). A reader sees the complete old file or the complete new one, never
a mix, even if the process dies mid-write.

An adapter stores bytes per ``(domain, key)``; the domains are ``signal``,
``schedule``, ``risk``, ``partial`` (SEMANTICS.md) plus ``live`` (the loop's
cursor) and ``journal`` (a run's latest change with its events, ``journal.py``).
``FilePersistence`` (the default) keeps ``{domain}_{key}.json`` under a state
directory it locks for its lifetime, every file private to its owner (0600);
``MemoryPersistence`` is for tests. Plug another with
``set_persistence(lambda state_dir: MyAdapter(...))``.

Keys are injective: a run's key is its symbol and strategy name percent-encoded
(``run_key``), so ``BTC/USDT`` and ``BTC:USDT``, or strategies ``a b`` and
``a_b``, never share a file. ``StateStore`` is the engine's side of reading:
typed, and an entry that does not decode or fails its checks is moved aside and
reported, never dropped silently.
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
DOMAINS = ("signal", "schedule", "risk", "partial", "live", "journal")

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
    """A readable file-name form of a name (``BTC/USDT`` -> ``BTC_USDT``) for reports, where two
    names may share a file; state files use the injective ``run_key`` / ``entry_key``."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


def entry_key(name: str, *, keep_underscore: bool = True) -> str:
    """``name`` as a file-name part that no other name gives: ASCII letters, digits, ``-``, ``.``
    (and ``_`` unless told) stay, every other byte of its UTF-8 is ``%XX``."""
    plain = _PLAIN | {"_"} if keep_underscore else _PLAIN
    return "".join(ch if ch in plain else "".join(f"%{b:02X}" for b in ch.encode()) for ch in name)


def run_key(symbol: str, strategy_name: str) -> str:
    """The key of a run's state entries: ``{symbol}_{strategy}``, each percent-encoded, the
    symbol's own underscores too, so the first ``_`` always ends the symbol (``BTCUSDT_sma_cross``
    as before; ``BTC%2FUSDT_a%20b``)."""
    return f"{entry_key(symbol, keep_underscore=False)}_{entry_key(strategy_name)}"


def legacy_key(symbol: str, strategy_name: str) -> str:
    """The key btk used before keys were injective (``BTC/USDT`` and ``BTC:USDT`` shared it)."""
    return f"{safe_name(symbol)}_{safe_name(strategy_name)}"


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
        try:
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise OSError(e.errno, f"cannot open the lock file {directory / LOCK_NAME}: {e.strerror}") from None
        os.fchmod(fd, 0o600)      # a lock file an older btk made readable to all
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as e:
            os.close(fd)
            raise OSError(e.errno, f"cannot write the lock file {directory / LOCK_NAME}: {e.strerror}") from None
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
    """Typed, reported reads of one adapter. ``report(exc, where)`` goes to ``listen_error``.
    (Writes go through a run's journal: ``engine/runners/session.py``.)"""

    def __init__(self, adapter: PersistenceAdapter, report: Callable[[BaseException, str], None]):
        self.adapter = adapter
        self.report = report

    def load(self, domain: str, key: str, type_: Any, check: Callable[[Any], list[str]] | None = None) -> Any:
        """The entry decoded as ``type_``; None when absent. One that does not decode, or in
        which ``check`` finds problems, is moved aside, reported, and reads as None."""
        data = self.adapter.read(domain, key)
        if data is None:
            return None
        try:
            value = msgspec.json.decode(data, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.reject(domain, key, f"could not be read ({e})")
            return None
        problems = check(value) if check is not None and value is not None else []
        if problems:
            self.reject(domain, key, "failed the checks a restored value must pass: " + "; ".join(problems))
            return None
        return value

    def reject(self, domain: str, key: str, why: str) -> None:
        where = self.adapter.describe(domain, key)
        moved = self.adapter.quarantine(domain, key)
        self.report(CorruptStateError(f"{where} {why}; moved aside to {moved}; {domain} state for {key} starts "
                                      "empty"), "persist load")
