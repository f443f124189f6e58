"""The candle store's column blocks: imports merge without overwriting, reads cross blocks, an
older store (one SQL row per candle) is converted candle for candle."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import engine as bk
import engine.persistence.candles as candles
from engine.persistence.candles import (connect, delete_candles, import_candles, last_before, read_range,
                                        series_summary, summaries)
from tests.helpers import T0_MS

MINUTE = 60_000


def series(first: int, n: int, price: float = 100.0, step: int = 1) -> bk.Candles:
    ts = T0_MS + (first + np.arange(n) * step) * MINUTE
    close = price + np.arange(n) * 0.01
    return bk.Candles.from_arrays(ts, close, close + 1, close - 1, close, np.ones(n))


async def blocks(db) -> list[tuple[int, int, int]]:
    async with db.execute("SELECT first, last, rows FROM candle_blocks ORDER BY first") as cur:
        return [tuple(r) for r in await cur.fetchall()]


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(candles, "BLOCK_ROWS", 100)


async def test_imports_merge_across_blocks_and_never_overwrite(tmp_path, small_blocks):
    db = await connect(tmp_path / "s.sqlite3")
    try:
        first = await import_candles(db, "x", "A", "1m", series(0, 250))
        assert (first.inserted, first.conflicts) == (250, 0)
        assert [r for _, _, r in await blocks(db)] == [100, 100, 50]
        # Minutes 240..299: ten already stored (two of them with other values), fifty new.
        whole = series(0, 300)
        again = bk.Candles(*whole.columns(), 240, 300)
        again_close = again.close.copy()
        again_close[:2] += 5
        again = bk.Candles.from_arrays(again.timestamp, again_close, again_close + 1, again.low, again_close,
                                       again.volume)
        result = await import_candles(db, "x", "A", "1m", again)
        assert (result.inserted, result.already_stored, result.conflicts) == (50, 10, 2)
        got = await read_range(db, "x", "A", "1m", T0_MS, T0_MS + 400 * MINUTE)
        assert got.timestamp.tolist() == [T0_MS + i * MINUTE for i in range(300)]
        assert got.close[240] == pytest.approx(102.40)                          # the stored value kept
        assert [r for _, _, r in await blocks(db)] == [100, 100, 100]          # the short block grew, no sliver
        # A read across block boundaries, and the close before a time.
        window = await read_range(db, "x", "A", "1m", T0_MS + 95 * MINUTE, T0_MS + 105 * MINUTE)
        assert window.timestamp.tolist() == [T0_MS + i * MINUTE for i in range(95, 105)]
        assert await last_before(db, "x", "A", "1m", T0_MS + 100 * MINUTE) == pytest.approx(100.99)
        assert await last_before(db, "x", "A", "1m", T0_MS) is None
        summary = await series_summary(db, "x", "A", "1m")
        assert (summary.first, summary.last, summary.rows, summary.gaps) == (T0_MS, T0_MS + 299 * MINUTE, 300, 0)
    finally:
        await db.close()


async def test_a_gap_filled_later_lands_in_order_and_the_summary_counts_gaps(tmp_path, small_blocks):
    db = await connect(tmp_path / "s.sqlite3")
    try:
        await import_candles(db, "x", "A", "1m", series(0, 50))
        await import_candles(db, "x", "A", "1m", series(150, 50))
        assert [(s.rows, s.gaps) for s in await summaries(db)] == [(100, 100)]
        await import_candles(db, "x", "A", "1m", series(50, 100))
        got = await read_range(db, "x", "A", "1m", T0_MS, T0_MS + 200 * MINUTE)
        assert got.timestamp.tolist() == [T0_MS + i * MINUTE for i in range(200)]
        spans = await blocks(db)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))             # blocks never overlap
        assert await delete_candles(db, "x", "A") == 200
        assert await summaries(db) == [] and await blocks(db) == []
    finally:
        await db.close()


async def test_a_store_of_one_sql_row_per_candle_is_converted_candle_for_candle(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE candles (exchange TEXT NOT NULL, symbol TEXT NOT NULL, interval TEXT NOT NULL, ts INTEGER NOT NULL,
            open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, volume REAL NOT NULL,
            PRIMARY KEY (exchange, symbol, interval, ts)) WITHOUT ROWID;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('bundled_seed', '2');
    """)
    rows = [("bundled", "BTCUSDT", "1m", T0_MS + i * MINUTE, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, float(i))
            for i in range(70_000) if i % 1000 != 7]
    rows += [("mine", "ETH", "5m", T0_MS + i * 5 * MINUTE, 3.0, 3.5, 2.5, 3.25, 1.0) for i in range(10)]
    old.executemany("INSERT INTO candles VALUES (?,?,?,?,?,?,?,?,?)", rows)
    old.commit()
    old.close()
    db = await connect(path)
    try:
        assert [(s.exchange, s.symbol, s.interval, s.rows, s.gaps) for s in await summaries(db)] == [
            ("bundled", "BTCUSDT", "1m", 69_930, 70), ("mine", "ETH", "5m", 10, 0)]
        got = await read_range(db, "bundled", "BTCUSDT", "1m", T0_MS, T0_MS + 70_000 * MINUTE)
        want = [r for r in rows if r[0] == "bundled"]
        assert got.timestamp.tolist() == [r[3] for r in want]
        assert got.open.tolist() == [r[4] for r in want] and got.volume.tolist() == [r[8] for r in want]
        async with db.execute("SELECT name FROM sqlite_master WHERE name='candles'") as cur:
            assert await cur.fetchone() is None
    finally:
        await db.close()


def test_a_sound_candle_file_reads_the_same_in_c_as_row_by_row(tmp_path, monkeypatch):
    """``btk data import`` reads a sound file with numpy (a million rows in about half a second);
    any file with a problem goes through the row-by-row reader, which names the line. Both give the
    same candles, to the bit."""
    from engine.persistence.candles import read_candle_file
    path = tmp_path / "c.csv"
    rows = ["timestamp_ms,open,high,low,close,volume"] + [
        f"{T0_MS + i * MINUTE},{20000 + i * 0.37:.6f},{20001 + i * 0.37:.6f},{19999.5 + i * 0.37:.6f},"
        f"{20000.25 + i * 0.37:.6f},{i * 1.0001:.4f}" for i in range(5000)]
    path.write_text("\n".join(rows) + "\n")
    fast = read_candle_file(path)
    monkeypatch.setattr(candles, "_parse_sound_rows", lambda text, step: None)
    slow = read_candle_file(path)
    for a, b in zip(fast.columns(), slow.columns()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
