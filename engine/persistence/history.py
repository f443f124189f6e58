"""Closed signals of live runs, kept across restarts (SQLite through aiosqlite, WAL).

A close is recorded *before* the open signal's state file is cleared, keyed by
signal id: a process killed between the two re-closes the restored signal on
restart, and the second record of the same id is ignored. So the history holds
every close exactly once, whatever was killed when.
"""

from __future__ import annotations

import asyncio

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


class SignalHistory:
    def __init__(self, path: str):
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._users = 0
        self._opening = asyncio.Lock()   # two runs starting together share one connection

    async def open(self) -> None:
        self._users += 1
        async with self._opening:
            if self._db is not None:
                return
            memory = self.path.startswith(":memory:")
            db = await aiosqlite.connect(":memory:" if memory else self.path)
            try:
                if not memory:
                    await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")   # a recorded close survives power loss
                await db.executescript(SCHEMA)
                await db.commit()
            except BaseException:
                self._users -= 1
                await db.close()
                raise
            self._db = db

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
