"""Closed signals of live runs, kept across restarts (SQLite through aiosqlite, WAL).

A close is recorded *before* the open signal's state file is cleared, keyed by
signal id, and recording the same id again changes nothing: a process killed
between the two finds the close in the run's journal, or the signal's id in the
history, and clears the signal instead of closing it again (``runners/session.py``).
So the history holds every close exactly once, whatever was killed when.

The file is private to its owner (0600, its WAL too). One that is not a database,
or fails SQLite's quick check, is moved aside (``history.sqlite.corrupt-<time>``)
and a new one started; ``open`` says so, for the run to report.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import aiosqlite
import msgspec

from ..types import TickClosed

SCHEMA = """
CREATE TABLE IF NOT EXISTS closed_signals (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, symbol TEXT NOT NULL, strategy_name TEXT NOT NULL,
    close_timestamp INTEGER NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS closed_by_run ON closed_signals (symbol, strategy_name, seq);
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(TickClosed).decode
SIDE_FILES = ("-wal", "-shm")


class HistoryError(OSError):
    """The history file could not be opened or written (the disk, not its content)."""


def _private(path: str) -> None:
    """Create the file 0600 before SQLite does (its WAL and shared-memory files take the mode of
    the database), and make an older, world-readable one private."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in SIDE_FILES:
        if os.path.exists(path + side):
            os.chmod(path + side, 0o600)


def _set_aside(path: str) -> str:
    """Move a damaged history (and its WAL) aside; returns where it went."""
    target = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9}"
    os.replace(path, target)
    for side in SIDE_FILES:
        if os.path.exists(path + side):
            os.replace(path + side, target + side)
    return target


class SignalHistory:
    def __init__(self, path: str):
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._users = 0
        self._opening = asyncio.Lock()   # two runs starting together share one connection

    async def open(self, *, repair: bool = True) -> str | None:
        """Open (the first user) or share the connection. Returns a sentence to report when a
        damaged file was moved aside and a new history started (``repair=False``, for a
        listing: raise ``HistoryError`` instead); raises ``HistoryError`` naming the file when it
        cannot be opened at all (a full disk, no permission)."""
        self._users += 1
        async with self._opening:
            if self._db is not None:
                return None
            try:
                self._db, moved = await self._connect(repair)
            except BaseException:
                self._users -= 1
                raise
            return moved

    async def _connect(self, repair: bool) -> tuple[aiosqlite.Connection, str | None]:
        memory = self.path.startswith(":memory:")
        moved = None
        for attempt in (1, 2):
            try:
                if not memory:
                    _private(self.path)
                db = await aiosqlite.connect(":memory:" if memory else self.path)
            except (OSError, sqlite3.Error) as e:
                raise HistoryError(f"cannot open the history of closed signals {self.path}: {e}") from None
            try:
                if not memory:
                    await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")   # a recorded close survives power loss
                await db.executescript(SCHEMA)
                async with db.execute("PRAGMA quick_check") as cur:
                    verdict = [row[0] for row in await cur.fetchall()]
                if verdict != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(map(str, verdict[:3])))
                await db.commit()
                return db, moved
            except sqlite3.OperationalError as e:      # the disk (full, I/O, locked), not the content
                await db.close()
                raise HistoryError(f"cannot use the history of closed signals {self.path}: {e}") from None
            except sqlite3.DatabaseError as e:
                await db.close()
                if memory or attempt == 2 or not repair:
                    raise HistoryError(f"the history of closed signals {self.path} is damaged: {e}") from None
                target = _set_aside(self.path)
                moved = (f"the history of closed signals {self.path} is damaged ({e}): moved aside to {target}; "
                         "a new history starts (the closes kept there are not counted)")
            except BaseException:
                await db.close()
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def record(self, closed: TickClosed) -> None:
        assert self._db is not None
        await self._db.execute(
            "INSERT OR IGNORE INTO closed_signals (id, seq, symbol, strategy_name, close_timestamp, body) "
            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM closed_signals), ?, ?, ?, ?)",
            (closed.signal.id, closed.symbol, closed.strategy_name, closed.close_timestamp, _encode(closed)))
        await self._db.commit()

    async def find(self, signal_id: str) -> TickClosed | None:
        """The recorded close of ``signal_id``, if any."""
        assert self._db is not None
        async with self._db.execute("SELECT body FROM closed_signals WHERE id = ?", (signal_id,)) as cur:
            row = await cur.fetchone()
        return _decode(row[0]) if row else None

    async def closed(self, symbol: str | None = None, strategy_name: str | None = None) -> list[TickClosed]:
        assert self._db is not None
        sql, args = "SELECT body FROM closed_signals", []
        where = []
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        if strategy_name is not None:
            where.append("strategy_name = ?")
            args.append(strategy_name)
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self._db.execute(sql + " ORDER BY seq", args) as cur:
            return [_decode(row[0]) for row in await cur.fetchall()]


_open: dict[str, SignalHistory] = {}


def history_for(path: str) -> SignalHistory:
    """One connection per history file in this process (live runs in one state dir share it)."""
    history = _open.get(path)
    if history is None or (history._db is None and history._users <= 0):
        history = _open[path] = SignalHistory(path)
    return history
