"""SQLite candle store (aiosqlite, WAL): import, read, summarise.

One table keyed by (exchange, symbol, interval, ts). Imports are all or
nothing: a file with one bad row imports no row, and a row already stored is
never overwritten (a conflicting value is reported, the stored one kept).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import aiosqlite
import msgspec
import numpy as np

from ..interval import iso
from ..interval import interval_ms as step_of
from ..types import Candles

SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, volume REAL NOT NULL,
    PRIMARY KEY (exchange, symbol, interval, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
CSV_HEADER = ["timestamp_ms", "open", "high", "low", "close", "volume"]
# Spans over stored data (default backtest frame, replay start) begin this long after the first
# candle, so indicators have history.
DEFAULT_WARMUP_MINUTES = 24 * 60


class CandleFileError(ValueError):
    """A candle file cannot be imported; the message names the file, line and rule."""


class SeriesSummary(msgspec.Struct, frozen=True):
    exchange: str
    symbol: str
    interval: str
    first: int
    last: int
    rows: int
    gaps: int          # missing bars between first and last


class ImportResult(msgspec.Struct, frozen=True):
    rows_read: int
    inserted: int
    already_stored: int
    conflicts: int     # same timestamp already stored with other values (stored values kept)


def default_home() -> Path:
    return Path(os.environ.get("BTK_HOME") or Path.home() / ".btk")


def default_store_path() -> Path:
    return default_home() / "btk.sqlite3"


class StoreError(RuntimeError):
    """The candle store cannot be opened or used; the message names the file and what to do."""


async def connect(path: str | os.PathLike[str]) -> aiosqlite.Connection:
    """Open the store (creating it), or raise ``StoreError`` naming the file; a connection that
    fails half-way is closed (an open one would keep the process alive)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), timeout=30)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"cannot open the candle store {path}: {e}") from None
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        await db.close()
        raise StoreError(f"{path} is not a btk candle store ({e}): move it aside, or give another with --store "
                         "or BTK_HOME") from None
    except BaseException:
        await db.close()
        raise
    return db


def read_candle_file(path: str | os.PathLike[str], *, interval: str = "1m") -> Candles:
    """Parse a ``timestamp_ms,open,high,low,close,volume`` CSV (optionally gzip) and check every row."""
    step = step_of(interval)
    p = Path(path)
    if not p.is_file():
        raise CandleFileError(f"{p}: no such file")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise CandleFileError(f"{p}: not a valid gzip file: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CandleFileError(f"{p}: not UTF-8 text (expected CSV)") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise CandleFileError(f"{p}: the file is empty")
    if [h.strip().lower() for h in header] != CSV_HEADER:
        raise CandleFileError(f"{p}: line 1: header must be {','.join(CSV_HEADER)}, got {','.join(header)}")
    ts_list: list[int] = []
    rows: list[tuple[float, float, float, float, float]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{p}: line {line_no}"
        if len(row) != 6:
            raise CandleFileError(f"{where}: expected 6 fields, got {len(row)}")
        try:
            ts = int(row[0])
        except ValueError:
            raise CandleFileError(f"{where}: timestamp_ms {row[0]!r} is not an integer") from None
        try:
            o, h, l, c, v = (float(x) for x in row[1:])
        except ValueError:
            raise CandleFileError(f"{where}: a price or volume is not a number: {','.join(row[1:])}") from None
        if not all(math.isfinite(x) for x in (o, h, l, c, v)):
            raise CandleFileError(f"{where}: non-finite value")
        if min(o, h, l, c) <= 0:
            raise CandleFileError(f"{where}: prices must be > 0")
        if v < 0:
            raise CandleFileError(f"{where}: volume must be >= 0")
        if h < max(o, c, l) or l > min(o, c):
            raise CandleFileError(f"{where}: high/low do not bound open/close (o={o:g} h={h:g} l={l:g} c={c:g})")
        if ts % step:
            raise CandleFileError(f"{where}: timestamp {ts} is not aligned to {interval}")
        if ts_list and ts <= ts_list[-1]:
            kind = "duplicate" if ts == ts_list[-1] else "out of order"
            raise CandleFileError(f"{where}: timestamp {iso(ts)} is {kind} (rows must be ascending, unique)")
        ts_list.append(ts)
        rows.append((o, h, l, c, v))
    if not rows:
        raise CandleFileError(f"{p}: no candle rows after the header")
    cols = np.array(rows, dtype=np.float64)
    return Candles.from_arrays(np.array(ts_list, dtype=np.int64), *cols.T)


async def import_candles(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str,
                         candles: Candles) -> ImportResult:
    """Insert in one transaction; keep every stored row as it is."""
    ts, o, h, l, c, v = (col.tolist() for col in candles.columns())
    await db.execute("BEGIN IMMEDIATE")
    try:
        existing: dict[int, tuple[float, ...]] = {}
        async with db.execute(
            "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange=? AND symbol=? AND interval=? "
            "AND ts BETWEEN ? AND ?", (exchange, symbol, interval, ts[0], ts[-1])) as cur:
            async for row in cur:
                existing[row[0]] = tuple(row[1:])
        fresh = [(exchange, symbol, interval, t, *vals) for t, *vals in zip(ts, o, h, l, c, v) if t not in existing]
        conflicts = sum(1 for t, *vals in zip(ts, o, h, l, c, v) if t in existing and tuple(vals) != existing[t])
        await db.executemany("INSERT INTO candles VALUES (?,?,?,?,?,?,?,?,?)", fresh)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return ImportResult(rows_read=len(ts), inserted=len(fresh), already_stored=len(ts) - len(fresh),
                        conflicts=conflicts)


async def read_range(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str,
                     since: int, until: int) -> Candles:
    """Stored rows with ``since <= ts < until`` (no gap filling)."""
    async with db.execute(
        "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange=? AND symbol=? AND interval=? "
        "AND ts >= ? AND ts < ? ORDER BY ts", (exchange, symbol, interval, since, until)) as cur:
        rows = await cur.fetchall()
    if not rows:
        return Candles.from_candles([])
    arr = np.array(rows, dtype=np.float64)
    return Candles.from_arrays(arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])


async def last_before(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str, ts: int) -> float | None:
    """Close of the newest stored candle before ``ts`` (for filling a leading gap)."""
    async with db.execute(
        "SELECT close FROM candles WHERE exchange=? AND symbol=? AND interval=? AND ts < ? ORDER BY ts DESC LIMIT 1",
        (exchange, symbol, interval, ts)) as cur:
        row = await cur.fetchone()
    return None if row is None else float(row[0])


async def summaries(db: aiosqlite.Connection) -> list[SeriesSummary]:
    async with db.execute(
        "SELECT exchange, symbol, interval, MIN(ts), MAX(ts), COUNT(*) FROM candles "
        "GROUP BY exchange, symbol, interval ORDER BY exchange, symbol, interval") as cur:
        rows = await cur.fetchall()
    out = []
    for exchange, symbol, interval, first, last, count in rows:
        expected = (last - first) // step_of(interval) + 1
        out.append(SeriesSummary(exchange, symbol, interval, first, last, count, expected - count))
    return out


async def series_summary(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str) -> SeriesSummary | None:
    async with db.execute(
        "SELECT MIN(ts), MAX(ts), COUNT(*) FROM candles WHERE exchange=? AND symbol=? AND interval=?",
        (exchange, symbol, interval)) as cur:
        first, last, count = await cur.fetchone()  # type: ignore[misc]
    if not count:
        return None
    return SeriesSummary(exchange, symbol, interval, first, last, count,
                         (last - first) // step_of(interval) + 1 - count)


async def delete_candles(db: aiosqlite.Connection, exchange: str, symbol: str | None = None) -> int:
    """Delete the stored candles of ``exchange`` (every interval; one ``symbol`` or all); returns how many."""
    where, args = "exchange=?", [exchange]
    if symbol is not None:
        where, args = where + " AND symbol=?", args + [symbol]
    await db.execute("BEGIN IMMEDIATE")
    try:
        cursor = await db.execute(f"DELETE FROM candles WHERE {where}", args)
        deleted = cursor.rowcount
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return deleted


async def get_meta(db: aiosqlite.Connection, key: str) -> str | None:
    async with db.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def set_meta(db: aiosqlite.Connection, key: str, value: str) -> None:
    await db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
    await db.commit()


def exchanges_in(summary: Iterable[SeriesSummary]) -> list[str]:
    return sorted({s.exchange for s in summary})
