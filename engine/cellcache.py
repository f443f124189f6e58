"""Finished cells, kept in SQLite by content hash (``Cell.key``), so re-running a sweep computes
only the cells whose strategy code, parameters, symbol, frame or config changed.

Failed cells are not cached (a fix or a retry should run them again). A row that no longer
decodes (written by another engine version) is treated as missing and overwritten.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import aiosqlite
import msgspec

from .cells import CellResult
from .log import get_logger
from .persistence.candles import default_home

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, strategy_name TEXT NOT NULL, symbol TEXT NOT NULL,
    saved_at INTEGER NOT NULL, body BLOB NOT NULL
);
"""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CellResult).decode


def default_cache_path() -> Path:
    return default_home() / "cells.sqlite"


class CellCache:
    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self._db: aiosqlite.Connection | None = None

    async def __aenter__(self) -> CellCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await self._open()
        except sqlite3.DatabaseError as exc:
            # Only a cache: keep the damaged file for a look, and start an empty one.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            get_logger().warning("btk: the walker cell cache %s could not be read (%s); moved it to %s and "
                                 "started an empty one", self.path, exc, aside)
            self._db = await self._open()
        return self

    async def _open(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.executescript(SCHEMA)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        return db

    async def __aexit__(self, *exc: object) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def get(self, key: str) -> CellResult | None:
        assert self._db is not None
        async with self._db.execute("SELECT body FROM cells WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        try:
            return msgspec.structs.replace(_decode(row[0]), cached=True)
        except msgspec.DecodeError:
            return None

    async def put(self, result: CellResult) -> None:
        assert self._db is not None
        if result.error is not None:
            return
        await self._db.execute("INSERT OR REPLACE INTO cells (key, strategy_name, symbol, saved_at, body) "
                               "VALUES (?, ?, ?, ?, ?)", (result.key, result.strategy_name, result.symbol,
                                                         int(time.time() * 1000), _encode(result)))
        await self._db.commit()

    async def count(self) -> int:
        assert self._db is not None
        async with self._db.execute("SELECT COUNT(*) FROM cells") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
