"""The ``btk`` command line and the SQLite candle store, as a user runs them."""

import gzip
import json
import os
import subprocess
import sys

import msgspec
import pytest

import engine as bk
from engine.exchange.bundled import StoreExchange
from engine.store import connect, read_candle_file, summaries
from tests.helpers import T0_MS


def btk(*args, home):
    env = {**os.environ, "BTK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("btk_home")


def test_backtest_json_statistics_equal_backtest_statistics_of_its_signals(home):
    out = btk("backtest", "sma_cross", "--symbol", "BTCUSDT", "--json", home=home)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["symbol"], doc["strategy_name"], doc["exchange_name"]) == ("BTCUSDT", "sma_cross", "bundled")
    signals = msgspec.convert(doc["signals"], list[bk.TickClosed])
    assert len(signals) > 20 and all(s.action == "closed" for s in signals)
    expected = msgspec.to_builtins(bk.backtest_statistics(signals))
    del expected["signal_list"]
    assert doc["stats"] == expected
    assert doc["stats"]["total_signals"] == len(signals)


def test_backtest_report_and_human_summary(home, tmp_path):
    report = tmp_path / "r.md"
    out = btk("backtest", "mean_reversion", "--symbol", "BTCUSDT", "--from", "2023-03-05", "--to", "2023-03-12",
              "--report", str(report), home=home)
    assert out.returncode == 0, out.stderr
    assert "mean_reversion on BTCUSDT" in out.stdout and "win rate" in out.stdout
    assert report.read_text().startswith("# Backtest report: mean_reversion")


@pytest.mark.parametrize("args, message", [
    (("backtest", "nope"), "unknown strategy 'nope'"),
    (("backtest", "sma_cross", "--symbol", "DOGEUSDT"), "no 1m candles of DOGEUSDT"),
    (("backtest", "sma_cross", "--from", "2023-03-10", "--to", "2023-03-05"), "the frame is empty"),
    (("backtest", "sma_cross", "--from", "yesterday"), "--from 'yesterday'"),
    (("backtest", "sma_cross", "--exchange", "kraken"), "unknown exchange 'kraken'"),
    (("backtest", "sma_cross", "--frame", "f1"), "unknown frame 'f1'"),
])
def test_bad_arguments_exit_2_with_one_line(home, args, message):
    out = btk(*args, home=home)
    assert out.returncode == 2 and message in out.stderr and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_failed_run_exits_1(home):
    # Data ends 2023-03-21 23:59: a frame up to its last candle leaves none after it to close positions.
    out = btk("backtest", "sma_cross", "--from", "2023-03-20", "--to", "2023-03-21T23:59", home=home)
    assert out.returncode == 1 and "stored candles cover" in out.stderr


def test_data_list_shows_the_bundled_symbols(home):
    out = btk("data", "list", home=home)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["exchange", "symbol", "interval", "first", "last", "rows", "gaps"]
    assert any(l.split()[:3] == ["bundled", "BTCUSDT", "1m"] and l.split()[5] == "30,240" and l.split()[6] == "0"
               for l in lines)
    assert any(l.split()[:2] == ["bundled", "ETHBTC"] and l.split()[6] == "1" for l in lines)


def _csv(path, rows, header="timestamp_ms,open,high,low,close,volume"):
    body = "\n".join([header] + [",".join(str(x) for x in r) for r in rows]) + "\n"
    path.write_bytes(gzip.compress(body.encode()) if path.suffix == ".gz" else body.encode())
    return path


def test_data_import_is_all_or_nothing_and_never_overwrites(home, tmp_path):
    good = [(T0_MS + i * 60_000, 10, 11, 9, 10.5, 3) for i in range(5)]
    bad = good[:3] + [(T0_MS + 3 * 60_000, 10, 9, 11, 10.5, 3)] + good[4:]
    out = btk("data", "import", str(_csv(tmp_path / "bad.csv", bad)), "--exchange", "mine", "--symbol", "XYZ", home=home)
    assert out.returncode == 2 and "line 5" in out.stderr and "high/low" in out.stderr
    out = btk("data", "import", str(_csv(tmp_path / "ok.csv.gz", good)), "--exchange", "mine", "--symbol", "XYZ", home=home)
    assert out.returncode == 0 and "imported 5 of 5" in out.stdout
    changed = [(t, 20, 21, 19, 20, 1) for t, *_ in good]
    out = btk("data", "import", str(_csv(tmp_path / "again.csv", changed)), "--exchange", "mine", "--symbol", "XYZ", home=home)
    assert "imported 0 of 5" in out.stdout and "5 differing from the stored values, which were kept" in out.stdout
    listed = btk("data", "list", home=home).stdout
    assert any(l.split()[:3] == ["mine", "XYZ", "1m"] and l.split()[5] == "5" for l in listed.splitlines())


@pytest.mark.parametrize("content, message", [
    ("ts,o,h,l,c,v\n1,1,1,1,1,1\n", "header must be"),
    ("timestamp_ms,open,high,low,close,volume\n", "no candle rows"),
    ("timestamp_ms,open,high,low,close,volume\n60000,1,1,1,1\n", "expected 6 fields"),
    ("timestamp_ms,open,high,low,close,volume\n60000,1,1,1,x,1\n", "not a number"),
    ("timestamp_ms,open,high,low,close,volume\n60001,1,1,1,1,1\n", "not aligned"),
    ("timestamp_ms,open,high,low,close,volume\n120000,1,1,1,1,1\n60000,1,1,1,1,1\n", "out of order"),
    ("timestamp_ms,open,high,low,close,volume\n60000,1,1,1,1,-1\n", "volume must be >= 0"),
])
def test_candle_file_errors_name_the_rule(tmp_path, content, message):
    path = tmp_path / "c.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_candle_file(path)


async def test_store_exchange_fills_gaps_and_aggregates(tmp_path):
    store = tmp_path / "s.sqlite3"
    rows = [(T0_MS + i * 60_000, 10 + i, 11 + i, 9 + i, 10.5 + i, 1) for i in range(30) if i not in (7, 8)]
    from engine.store import import_candles
    db = await connect(store)
    try:
        await import_candles(db, "x", "AAA", "1m", bk.Candles.from_candles([bk.Candle(*r) for r in rows]))
        assert [(s.rows, s.gaps) for s in await summaries(db)] == [(28, 2)]
        mode = (await (await db.execute("PRAGMA journal_mode")).fetchone())[0]
        assert mode == "wal"
    finally:
        await db.close()
    ex = StoreExchange("x", store)
    from engine.interval import to_datetime
    got = await ex.get_candles("AAA", "1m", to_datetime(T0_MS + 5 * 60_000), 5)
    assert got.timestamp.tolist() == [T0_MS + i * 60_000 for i in range(5, 10)]
    assert got.close.tolist() == [15.5, 16.5, 16.5, 16.5, 19.5] and got.volume.tolist() == [1, 1, 0, 0, 1]
    five = await ex.get_candles("AAA", "5m", to_datetime(T0_MS), 2)
    assert five.open.tolist() == [10, 15] and five.close.tolist() == [14.5, 19.5] and five.high.tolist() == [15, 20]
    with pytest.raises(LookupError, match="stored candles cover"):
        await ex.get_candles("AAA", "1m", to_datetime(T0_MS - 60_000), 5)


def test_live_replay_prints_a_status_line_per_tick_and_a_restart_resumes_from_the_state_dir(home, tmp_path):
    state = tmp_path / "state"
    args = ("live", "sma_cross", "--symbol", "BTCUSDT", "--speed", "0", "--from", "2023-03-02T00:00",
            "--to", "2023-03-02T12:00", "--state-dir", str(state))
    out = btk(*args, home=home)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert sum("BTCUSDT sma_cross  vwap" in line for line in lines) >= 600           # one per quiet tick
    opened = [line for line in lines if " OPENED " in line]
    closed = [line for line in lines if " CLOSED " in line]
    assert opened and closed and "pnl" in closed[0]
    assert f"ended: {len(closed)} closed signal(s) in {state}" in lines[-1]
    assert (state / "history.sqlite").exists() and (state / "live_BTCUSDT_sma_cross.json").exists()
    again = btk(*args, home=home)    # resumes at the saved cursor: nothing is closed twice
    assert again.returncode == 0, again.stderr
    assert " CLOSED " not in again.stderr and f"ended: {len(closed)} closed signal(s)" in again.stderr


def test_live_rejects_bad_arguments_with_a_reason(home, tmp_path):
    out = btk("live", "sma_cross", "--exchange", "nosuchexchange", home=home)
    assert out.returncode == 2 and "unknown exchange 'nosuchexchange'" in out.stderr
    out = btk("live", "sma_cross", "--speed", "-1", "--state-dir", str(tmp_path), home=home)
    assert out.returncode == 2 and "speed must be a number >= 0" in out.stderr
    out = btk("live", "nosuch", home=home)
    assert out.returncode == 2 and "unknown strategy 'nosuch'" in out.stderr


@pytest.mark.parametrize("args", [("data", "list"), ("backtest", "sma_cross"), ("strategies",), ()])
def test_a_store_that_is_not_a_database_fails_clearly_and_never_hangs(tmp_path, args):
    """``echo x > $BTK_HOME/btk.sqlite3``: every command (and the console, before it opens) names the
    file and exits 1; the connection that failed half-way is closed, so the process ends."""
    (tmp_path / "btk.sqlite3").write_text("x\n")
    out = btk(*args, home=tmp_path)          # the helper's timeout fails the test on a hang
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"{tmp_path / 'btk.sqlite3'} is not a btk candle store" in out.stderr
    assert (tmp_path / "btk.sqlite3").read_text() == "x\n"      # what was there is left as it was


async def test_a_damaged_cell_cache_is_moved_aside_and_the_walk_goes_on(tmp_path):
    from engine.cellcache import CellCache
    path = tmp_path / "cells.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    async with CellCache(path) as cache:
        assert await cache.count() == 0
    aside = list(tmp_path.glob("cells.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database")


@pytest.mark.parametrize("exchange, message", [
    ("replay", "the replay exchange's"), ("binance", "binance is a ccxt exchange id"),
])
def test_data_import_refuses_reserved_names_and_ccxt_ids(tmp_path, exchange, message):
    csv = _csv(tmp_path / "c.csv", [(T0_MS + i * 60_000, 10, 11, 9, 10.5, 3) for i in range(5)])
    out = btk("data", "import", str(csv), "--exchange", exchange, "--symbol", "BTCUSDT", home=tmp_path)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.splitlines()) == 1
    assert exchange not in btk("data", "list", home=tmp_path).stdout


async def test_candles_stored_as_replay_before_the_refusal_do_not_break_live(tmp_path):
    """A store made before the refusal holds an exchange 'replay': the workspace leaves it alone, so
    `btk live` keeps its replay, and `btk data delete` removes it."""
    from engine.store import import_candles
    from engine.exchange.bundled import ensure_seeded
    await ensure_seeded(tmp_path / "btk.sqlite3")
    db = await connect(tmp_path / "btk.sqlite3")
    try:
        await import_candles(db, "replay", "AAA", "1m", bk.Candles.from_candles(
            [bk.Candle(T0_MS + i * 60_000, 10, 11, 9, 10.5, 1) for i in range(30)]))
    finally:
        await db.close()
    out = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-10", "--to", "2023-03-10T00:30", "--quiet",
              "--state-dir", str(tmp_path / "state"), home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "already registered" not in out.stderr
    refused = btk("data", "delete", "--exchange", "replay", home=tmp_path)
    assert refused.returncode == 2 and "add --yes" in refused.stderr       # not a terminal: never silently
    deleted = btk("data", "delete", "--exchange", "replay", "--yes", home=tmp_path)
    assert deleted.returncode == 0 and "deleted 30 candles of replay" in deleted.stdout
    listed = btk("data", "list", home=tmp_path).stdout
    assert "replay" not in listed and "BTCUSDT" in listed


def test_data_delete_one_symbol_keeps_the_rest_and_refuses_what_is_not_there(tmp_path):
    rows = [(T0_MS + i * 60_000, 10, 11, 9, 10.5, 3) for i in range(5)]
    for symbol in ("AAA", "BBB"):
        assert btk("data", "import", str(_csv(tmp_path / f"{symbol}.csv", rows)), "--exchange", "mine", "--symbol",
                   symbol, home=tmp_path).returncode == 0
    out = btk("data", "delete", "--exchange", "mine", "--symbol", "AAA", "--yes", home=tmp_path)
    assert out.returncode == 0 and "deleted 5 candles of mine AAA" in out.stdout
    listed = [line.split()[:2] for line in btk("data", "list", home=tmp_path).stdout.splitlines()]
    assert ["mine", "BBB"] in listed and ["mine", "AAA"] not in listed
    again = btk("data", "delete", "--exchange", "mine", "--symbol", "AAA", "--yes", home=tmp_path)
    assert again.returncode == 2 and "nothing stored for mine AAA" in again.stderr
    bundled = btk("data", "delete", "--exchange", "bundled", "--yes", home=tmp_path)
    assert bundled.returncode == 2 and "cannot be deleted" in bundled.stderr
