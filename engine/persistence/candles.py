"""SQLite candle store (aiosqlite, WAL): import, read, summarise.

Candles are stored by series (exchange, symbol, interval) in column blocks: each row of
``candle_blocks`` holds up to ``BLOCK_ROWS`` consecutive stored candles as six packed arrays
(timestamps int64, then open, high, low, close, volume float64), with its first and last
timestamp; ``series`` keeps each series' first, last and row count. A read of a million candles
is then a few dozen blobs turned into numpy views (tens of milliseconds), not a million Python
rows, and a summary is one row. Blocks of a series never overlap.

Imports are all or nothing: a file with one bad row imports no row, and a row already stored is
never overwritten (a conflicting value is reported, the stored one kept). An import rewrites only
the blocks its candles fall in (and the last short one before them, so appends stay compact).
A store written by an older btk (one SQL row per candle) is converted on first open, in one
transaction, candle for candle.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import sqlite3
import warnings
from collections.abc import Iterable
from pathlib import Path

import aiosqlite
import msgspec
import numpy as np

from ..interval import iso
from ..interval import interval_ms as step_of
from ..types import Candles

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, rows INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol, interval)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS candle_blocks (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS candle_blocks_by_series ON candle_blocks (exchange, symbol, interval, first);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
BLOCK_ROWS = 1 << 16
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
    """Open the store (creating it, converting an older one), or raise ``StoreError`` naming the
    file; a connection that fails half-way is closed (an open one would keep the process alive)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), timeout=30)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"cannot open the candle store {path}: {e}") from None
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
        await _convert_rows(db)
    except sqlite3.DatabaseError as e:
        await db.close()
        raise StoreError(f"{path} is not a btk candle store ({e}): move it aside, or give another with --store "
                         "or BTK_HOME") from None
    except BaseException:
        await db.close()
        raise
    return db


async def _convert_rows(db: aiosqlite.Connection) -> None:
    """An older store kept one SQL row per candle in ``candles``: move each series into blocks."""
    async with db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='candles'") as cur:
        if await cur.fetchone() is None:
            return
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("SELECT DISTINCT exchange, symbol, interval FROM candles") as cur:
            keys = await cur.fetchall()
        for exchange, symbol, interval in keys:
            async with db.execute("SELECT ts, open, high, low, close, volume FROM candles WHERE exchange=? AND "
                                  "symbol=? AND interval=? ORDER BY ts", (exchange, symbol, interval)) as cur:
                rows = np.array(await cur.fetchall(), dtype=np.float64).reshape(-1, 6)
            if len(rows):
                columns = (rows[:, 0].astype(np.int64), *rows[:, 1:].T)
                await _write_blocks(db, (exchange, symbol, interval), columns)
                await _set_series(db, (exchange, symbol, interval))
        await db.execute("DROP TABLE candles")
        await db.commit()
    except BaseException:
        await db.rollback()
        raise


Series = tuple[str, str, str]          # (exchange, symbol, interval)
Columns = tuple[np.ndarray, ...]       # ts int64, open, high, low, close, volume float64
_FLOAT = np.dtype("<f8")
_INT = np.dtype("<i8")


def _pack(columns: Columns) -> bytes:
    ts, *values = columns
    return ts.astype(_INT).tobytes() + b"".join(v.astype(_FLOAT).tobytes() for v in values)


def _unpack(data: bytes, rows: int) -> Columns:
    """A block's six columns: read-only views of ``data`` (no copy)."""
    ts = np.frombuffer(data, dtype=_INT, count=rows)
    return (ts, *(np.frombuffer(data, dtype=_FLOAT, count=rows, offset=8 * rows * k) for k in range(1, 6)))


async def _blocks(db: aiosqlite.Connection, key: Series, where: str = "", args: tuple = (),
                  order: str = "ORDER BY first") -> list[Columns]:
    sql = "SELECT rows, data FROM candle_blocks WHERE exchange=? AND symbol=? AND interval=?"
    async with db.execute(f"{sql} {where} {order}", (*key, *args)) as cur:
        return [_unpack(data, rows) for rows, data in await cur.fetchall()]


def _joined(blocks: list[Columns]) -> Columns:
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        return (np.empty(0, _INT), *(np.empty(0, _FLOAT) for _ in range(5)))
    return tuple(np.concatenate([b[k] for b in blocks]) for k in range(6))


async def _write_blocks(db: aiosqlite.Connection, key: Series, columns: Columns) -> None:
    ts = columns[0]
    for a in range(0, len(ts), BLOCK_ROWS):
        part = tuple(col[a:a + BLOCK_ROWS] for col in columns)
        await db.execute("INSERT INTO candle_blocks VALUES (?,?,?,?,?,?,?)",
                         (*key, int(part[0][0]), int(part[0][-1]), len(part[0]), _pack(part)))


async def _set_series(db: aiosqlite.Connection, key: Series) -> None:
    """The series row from its blocks (or none when it has none)."""
    async with db.execute("SELECT MIN(first), MAX(last), SUM(rows) FROM candle_blocks WHERE exchange=? AND "
                          "symbol=? AND interval=?", key) as cur:
        first, last, rows = await cur.fetchone()  # type: ignore[misc]
    if rows:
        await db.execute("INSERT OR REPLACE INTO series VALUES (?,?,?,?,?,?)", (*key, first, last, rows))
    else:
        await db.execute("DELETE FROM series WHERE exchange=? AND symbol=? AND interval=?", key)


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
    fast = _parse_sound_rows(text, step)
    if fast is not None:
        return fast
    # Something is wrong (or unusual): the row-by-row reading below names the line and the rule.
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


_ROW = np.dtype([("ts", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
                 ("volume", "<f8")])


def _parse_sound_rows(text: str, step: int) -> Candles | None:
    """The rows of a candle file read in C (numpy), when every one passes the checks; None when any
    does not parse or breaks a rule (the row-by-row reader then names the first such line)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # "input contained no data": said below
            rows = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=_ROW, ndmin=1, comments=None)
    except ValueError:
        return None
    if not len(rows):
        return None
    ts = rows["ts"]
    o, h, l, c, v = (rows[name] for name in ("open", "high", "low", "close", "volume"))
    with np.errstate(invalid="ignore"):
        sound = (np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c) & np.isfinite(v)).all()
        sound = sound and bool((np.minimum(np.minimum(o, h), np.minimum(l, c)) > 0).all() and (v >= 0).all())
        sound = sound and bool((h >= np.maximum(np.maximum(o, c), l)).all() and (l <= np.minimum(o, c)).all())
    sound = sound and bool((ts % step == 0).all() and (np.diff(ts) > 0).all())
    return Candles.from_arrays(ts, o, h, l, c, v) if sound else None


async def import_candles(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str,
                         candles: Candles) -> ImportResult:
    """Add ``candles`` (ascending, unique timestamps) in one transaction; keep every stored row."""
    key = (exchange, symbol, interval)
    new = tuple(np.asarray(col) for col in candles.columns())
    if not len(new[0]):
        return ImportResult(0, 0, 0, 0)
    first, last = int(new[0][0]), int(new[0][-1])
    await db.execute("BEGIN IMMEDIATE")
    try:
        # The blocks the new candles fall in, and the short block just before them (appends stay compact).
        async with db.execute(
                "SELECT first FROM candle_blocks WHERE exchange=? AND symbol=? AND interval=? AND first < ? "
                "AND rows < ? ORDER BY first DESC LIMIT 1", (*key, first, BLOCK_ROWS)) as cur:
            before = await cur.fetchone()
        low = before[0] if before is not None else first
        where = "AND last >= ? AND first <= ?"
        stored = _joined(await _blocks(db, key, where, (low, last)))
        ts = stored[0]
        at = np.minimum(np.searchsorted(ts, new[0]), max(len(ts) - 1, 0))
        dup = ts[at] == new[0] if len(ts) else np.zeros(len(new[0]), dtype=bool)
        conflicts = 0
        if dup.any():
            j = at[dup]
            same = np.ones(int(dup.sum()), dtype=bool)
            for k in range(1, 6):
                same &= stored[k][j] == new[k][dup]
            conflicts = int((~same).sum())
        fresh = ~dup
        inserted = int(fresh.sum())
        if inserted:
            merged_ts = np.concatenate([ts, new[0][fresh]])
            order = np.argsort(merged_ts, kind="stable")
            merged = tuple(np.concatenate([stored[k], new[k][fresh]])[order] for k in range(6))
            await db.execute(f"DELETE FROM candle_blocks WHERE exchange=? AND symbol=? AND interval=? {where}",
                             (*key, low, last))
            await _write_blocks(db, key, merged)
            await _set_series(db, key)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return ImportResult(rows_read=len(new[0]), inserted=inserted, already_stored=len(new[0]) - inserted,
                        conflicts=conflicts)


async def read_range(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str,
                     since: int, until: int) -> Candles:
    """Stored candles with ``since <= ts < until`` (no gap filling), as read-only columns. Each
    block is copied into the result as it arrives, so a long read holds the result and one block."""
    key = (exchange, symbol, interval)
    async with db.execute("SELECT COALESCE(SUM(rows), 0) FROM candle_blocks WHERE exchange=? AND symbol=? AND "
                          "interval=? AND last >= ? AND first < ?", (*key, since, until)) as cur:
        at_most = (await cur.fetchone())[0]  # type: ignore[index]
    out = (np.empty(at_most, _INT), *(np.empty(at_most, _FLOAT) for _ in range(5)))
    n = 0
    async with db.execute("SELECT rows, data FROM candle_blocks WHERE exchange=? AND symbol=? AND interval=? AND "
                          "last >= ? AND first < ? ORDER BY first", (*key, since, until)) as cur:
        cur.iter_chunk_size = 1
        async for rows, data in cur:
            block = _unpack(data, rows)
            a, b = np.searchsorted(block[0], [since, until])
            for column, part in zip(out, block):
                column[n:n + b - a] = part[a:b]
            n += int(b - a)
    return Candles.from_arrays(*(column[:n] for column in out))


async def last_before(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str, ts: int) -> float | None:
    """Close of the newest stored candle before ``ts`` (for filling a leading gap)."""
    blocks = await _blocks(db, (exchange, symbol, interval), "AND first < ?", (ts,), "ORDER BY first DESC LIMIT 1")
    if not blocks:
        return None
    stamps, close = blocks[0][0], blocks[0][4]
    return float(close[int(np.searchsorted(stamps, ts)) - 1])


async def summaries(db: aiosqlite.Connection) -> list[SeriesSummary]:
    async with db.execute("SELECT exchange, symbol, interval, first, last, rows FROM series "
                          "ORDER BY exchange, symbol, interval") as cur:
        rows = await cur.fetchall()
    out = []
    for exchange, symbol, interval, first, last, count in rows:
        expected = (last - first) // step_of(interval) + 1
        out.append(SeriesSummary(exchange, symbol, interval, first, last, count, expected - count))
    return out


async def series_summary(db: aiosqlite.Connection, exchange: str, symbol: str, interval: str) -> SeriesSummary | None:
    async with db.execute("SELECT first, last, rows FROM series WHERE exchange=? AND symbol=? AND interval=?",
                          (exchange, symbol, interval)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    first, last, count = row
    return SeriesSummary(exchange, symbol, interval, first, last, count,
                         (last - first) // step_of(interval) + 1 - count)


async def delete_candles(db: aiosqlite.Connection, exchange: str, symbol: str | None = None) -> int:
    """Delete the stored candles of ``exchange`` (every interval; one ``symbol`` or all); returns how many."""
    where, args = "exchange=?", [exchange]
    if symbol is not None:
        where, args = where + " AND symbol=?", args + [symbol]
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute(f"SELECT COALESCE(SUM(rows), 0) FROM series WHERE {where}", args) as cur:
            deleted = (await cur.fetchone())[0]  # type: ignore[index]
        await db.execute(f"DELETE FROM candle_blocks WHERE {where}", args)
        await db.execute(f"DELETE FROM series WHERE {where}", args)
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
