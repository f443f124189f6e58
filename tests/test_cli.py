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
from engine.persistence.candles import connect, read_candle_file, summaries
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


@pytest.mark.parametrize("start, end", [("2023-03-20", "2023-03-21T23:59"), ("2023-03-01", "2023-03-03")])
def test_a_span_the_stored_candles_cannot_serve_exits_2_with_the_span_they_can(home, start, end):
    # Data ends 2023-03-21 23:59: a frame up to its last candle leaves none after it to close positions;
    # data starts 2023-03-01 00:00: a frame from then has no closed candles for its first price.
    out = btk("backtest", "sma_cross", "--from", start, "--to", end, home=home)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "a backtest can run from 2023-03-01T00:05Z" in out.stderr and "to 2023-03-21T23:58Z" in out.stderr


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
    from engine.persistence.candles import import_candles
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
    assert f"ended: {len(closed)} closed signal(s) this run, {len(closed)} in the history of {state}" in lines[-1]
    assert (state / "history.sqlite").exists() and (state / "live_BTCUSDT_sma_cross.json").exists()
    again = btk(*args, home=home)    # resumes at the saved cursor: nothing is closed twice
    assert again.returncode == 0, again.stderr
    assert " CLOSED " not in again.stderr
    assert f"ended: 0 closed signal(s) this run, {len(closed)} in the history" in again.stderr


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
    from engine.persistence.candles import import_candles
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


def _closes(stderr):
    """(reason, pnl %) of every CLOSED line of ``btk live``."""
    out = []
    for line in stderr.splitlines():
        if " CLOSED " in line:
            words = line.split()
            out.append((words[4], float(words[-1].rstrip("%"))))
    return out


def test_a_saved_run_resumes_only_where_the_replay_continues_it(tmp_path):
    """The issue's case: a replay of 03-10 00:00-08:00 leaves a position open; a replay of 03-15
    in the same (default) state dir must not judge it there (it closed time_expired at +23 %)."""
    first = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-10", "--to", "2023-03-10T08:00", "--quiet",
                home=tmp_path)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "live" / "replay" / "bundled" / "BTCUSDT" / "sma_cross"     # the default, per run
    saved = {p.name: p.read_bytes() for p in state.glob("*.json") if not p.name.startswith("risk_")}
    assert "signal_BTCUSDT_sma_cross.json" in saved and b"null" != saved["signal_BTCUSDT_sma_cross.json"]

    later = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-15", "--to", "2023-03-15T02:00", "--quiet",
                home=tmp_path)
    assert later.returncode == 2 and len(later.stderr.splitlines()) == 1
    assert "holds a saved run of sma_cross on BTCUSDT that stopped at 2023-03-10T08:00Z" in later.stderr
    assert "an open long position" in later.stderr and "--fresh" in later.stderr and "--state-dir" in later.stderr
    assert {p.name: p.read_bytes() for p in state.glob("*.json") if not p.name.startswith("risk_")} == saved
    # (nothing touched; the shared risk file keeps the open position's slot)

    fresh = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-15", "--to", "2023-03-15T02:00", "--quiet",
                "--fresh", home=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "set aside in" in fresh.stderr
    aside = next(state.glob("set-aside-*"))
    assert {p.name: p.read_bytes() for p in aside.glob("*.json")} == saved         # kept, not deleted
    assert all(pnl < 2 for _, pnl in _closes(fresh.stderr))                          # no +23 % on a +2 % TP


def test_a_replay_that_starts_the_minute_after_the_saved_run_continues_it(tmp_path):
    state = tmp_path / "state"
    first = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-10", "--to", "2023-03-10T08:00", "--quiet",
                "--state-dir", str(state), home=tmp_path)
    assert first.returncode == 0 and " OPENED " in first.stderr.splitlines()[-3]    # still open at the end
    assert "the replay ended at 2023-03-10T08:00Z with an open position" in first.stderr.splitlines()[-2]
    go_on = btk("live", "sma_cross", "--speed", "0", "--from", "2023-03-10T08:01", "--to", "2023-03-10T10:00",
                "--quiet", "--state-dir", str(state), home=tmp_path)
    assert go_on.returncode == 0, go_on.stderr
    (reason, pnl), *_ = _closes(go_on.stderr)
    assert reason == "time_expired" and abs(pnl) < 2          # the position opened 07:30, 120 minutes


def test_live_runs_of_other_strategies_or_symbols_keep_their_own_state(tmp_path):
    for strategy, symbol, start in (("sma_cross", "BTCUSDT", "2023-03-10"), ("sma_cross", "ETHBTC", "2018-01-25"),
                                    ("channel_breakout", "BTCUSDT", "2023-03-15")):
        out = btk("live", strategy, "--symbol", symbol, "--speed", "0", "--from", start, "--to", start + "T03:00",
                  "--quiet", home=tmp_path)
        assert out.returncode == 0, out.stderr
    dirs = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.glob("live/**/history.sqlite"))
    assert dirs == ["live/replay/bundled/BTCUSDT/channel_breakout", "live/replay/bundled/BTCUSDT/sma_cross",
                    "live/replay/bundled/ETHBTC/sma_cross"]


@pytest.mark.parametrize("args, message", [
    (("--symbol", "NOPE"), "no 1m candles of NOPE on exchange bundled"),
    (("--symbol", "ETHBTC", "--source", "bundled", "--from", "2023-03-10"), "ETHBTC on bundled: the stored 1m"),
    (("--from", "2023-03-10", "--to", "2023-03-05"), "--from 2023-03-10T00:00Z is after --to 2023-03-05T00:00Z"),
    (("--from", "2020-01-01", "--to", "2020-01-02"), "a replay can tick from 2023-03-01T00:05Z to 2023-03-22T00:00Z"),
    (("--exchange", "kraken", "--from", "2023-03-10"), "--from and --to apply to --exchange replay only"),
])
def test_live_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    out = btk("live", "sma_cross", "--speed", "0", *args, home=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr


RAISES = """
import engine as bk


def get_signal(symbol, when):
    raise RuntimeError("boom")


bk.add_strategy("raiser", get_signal)
"""


def test_a_run_whose_every_get_signal_fails_exits_1_and_counts_its_errors(tmp_path):
    (tmp_path / "raises.py").write_text(RAISES)
    backtest = btk("--load", str(tmp_path / "raises.py"), "backtest", "raiser", "--from", "2023-03-05",
                   "--to", "2023-03-05T06:00", "--json", home=tmp_path)
    assert backtest.returncode == 1
    assert json.loads(backtest.stdout)["errors"] == 361
    assert "every one of 361 get_signal calls failed, first: RuntimeError: boom" in backtest.stderr
    live = btk("--load", str(tmp_path / "raises.py"), "live", "raiser", "--speed", "0", "--from", "2023-03-05",
               "--to", "2023-03-05T01:00", "--quiet", home=tmp_path)
    assert live.returncode == 1 and "61 error(s)" in live.stderr and "every get_signal call failed" in live.stderr


def test_a_run_with_some_errors_succeeds_and_says_how_many(tmp_path):
    (tmp_path / "some.py").write_text(RAISES.replace('raise RuntimeError("boom")',
                                                     'if when.minute % 2:\n        raise RuntimeError("odd")'))
    out = btk("--load", str(tmp_path / "some.py"), "backtest", "raiser", "--from", "2023-03-05", "--to",
              "2023-03-05T01:00", "--json", home=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["errors"] == 30
    assert "btk: 30 error(s) during the run, first: RuntimeError: odd" in out.stderr


def test_live_on_a_ccxt_exchange_refuses_a_symbol_it_does_not_list(tmp_path):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = subprocess.Popen([sys.executable, "-m", "engine.exchange.simulator", "--port", str(port), "--store",
                            str(tmp_path / "sim.sqlite3")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "simulator on" in sim.stdout.readline()
        env = {**os.environ, "BTK_HOME": str(tmp_path), "BTK_CCXT_URL": f"http://127.0.0.1:{port}"}
        out = subprocess.run([sys.executable, "-m", "console.cli", "live", "sma_cross", "--exchange", "binance",
                              "--symbol", "NOPE"], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2 and "binance has no market 'NOPE'" in out.stderr, out.stderr
        assert len(out.stderr.splitlines()) == 1
    finally:
        sim.terminate()
        sim.wait(10)


def test_short_history_before_from_is_the_warm_up_on_both_paths(tmp_path):
    """Data from 2023-03-01 00:00; a frame from 00:05 leaves sma_cross (51 closes) too little history
    for its first 46 minutes: both paths take it from inside the frame, give the same signals and
    say so in one note (the vectorised path exited 1 while per-frame gave 17 signals)."""
    runs = [btk("backtest", "sma_cross", "--from", "2023-03-01T00:05", "--to", "2023-03-03", "--json", *extra,
                home=tmp_path) for extra in ((), ("--per-frame",))]
    for out in runs:
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines() == [
            "btk: note: sma_cross asks for history from before the stored candles (they begin at 2023-03-01T00:00Z):"
            " the frame's first minutes are its warm-up, no signal before 2023-03-01T00:51Z"]
    vectorised, per_frame = (json.loads(out.stdout) for out in runs)
    assert vectorised == per_frame and len(vectorised["signals"]) == 17 and vectorised["errors"] == 0
    assert min(s["signal"]["scheduled_at"] for s in vectorised["signals"]) >= 1677631860000     # 00:51


def test_small_things_a_new_user_meets_first(tmp_path):
    version = btk("--version", home=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("btk ")
    listed = btk("strategies", home=tmp_path)
    assert listed.returncode == 0 and "sma_cross[fast=5,slow=30]" in listed.stdout
    assert "``" not in listed.stdout and "{'fast'" not in listed.stdout      # plain text, not RST or dict reprs
    # A reader that goes away early (`btk strategies | head -1`): no traceback, no error line.
    env = {**os.environ, "BTK_HOME": str(tmp_path)}
    reader = subprocess.Popen([sys.executable, "-m", "console.cli", "strategies"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    reader.stdout.close()
    assert reader.wait(60) == 0 and reader.stderr.read() == b""
    # --report is checked before the run, not after it.
    report = btk("backtest", "sma_cross", "--report", str(tmp_path / "no" / "such" / "r.md"), home=tmp_path)
    assert report.returncode == 2 and "the folder" in report.stderr and "does not exist" in report.stderr
    # A symbol stored on another exchange: the hint names that exchange.
    rows = [(T0_MS + i * 60_000, 10, 11, 9, 10.5, 3) for i in range(5)]
    assert btk("data", "import", str(_csv(tmp_path / "x.csv", rows)), "--exchange", "mine", "--symbol", "XYZ",
               home=tmp_path).returncode == 0
    elsewhere = btk("backtest", "sma_cross", "--symbol", "XYZ", home=tmp_path)
    assert elsewhere.returncode == 2 and "XYZ is stored on mine: give --exchange mine" in elsewhere.stderr
