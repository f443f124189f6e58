"""SEMANTICS.md section 10: the walker, parameter sweeps, executors and the cell cache."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

import engine as bk
import strategies
from engine.cells import CellResult
from engine.exchange.bundled import StoreExchange, ensure_seeded
from engine.interval import to_ms
from engine.runners.walker import rank
from engine.stats import backtest_statistics
from strategies import sma_cross
from tests.test_pnl_stats_sizing import VECTORS, _closed

GRID = {"fast": [5, 10], "slow": [30, 60]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("walker-store") / "store.sqlite3"
    asyncio.run(ensure_seeded(path))
    return path


def setup_sweep(store, grid=GRID, *, symbols=("ETHBTC", "LTCBTC"), callbacks=None):
    """Two days of the bundled 2018 pair; a sweep of ``grid``; walker ``w`` over it."""
    bk.add_exchange("bundled", StoreExchange("bundled", store).get_candles)
    bk.add_frame("two-days", start=to_ms(datetime(2018, 1, 21, tzinfo=timezone.utc)),
                 end=to_ms(datetime(2018, 1, 23, tzinfo=timezone.utc)))
    names = bk.add_sweep("sma", sma_cross.make_signal, grid)
    bk.add_walker("w", exchange_name="bundled", frame_name="two-days", strategies=names, symbols=list(symbols),
                  callbacks=callbacks)
    return names


async def walk(symbols=("ETHBTC", "LTCBTC"), **options):
    events = [e async for e in bk.Walker.run(list(symbols), walker_name="w", **options)]
    keys = (*symbols, "*") if len(symbols) > 1 else symbols
    return events, {s: await bk.Walker.get_data(s, walker_name="w") for s in keys}


def table(results):
    """What must not depend on the executor or the cache: every row but timing and provenance."""
    return {sym: [(r.rank, r.strategy_name, r.metric_value, r.total_signals, r.below_gates, r.error,
                   msgspec.json.encode(r.stats)) for r in res.rows] for sym, res in results.items()}


# --- ranking --------------------------------------------------------------------------------------

def _result(name, trades):
    return CellResult(name, "X", "", stats=backtest_statistics(trades))


def test_rank_highest_non_null_wins_ties_keep_the_earlier_and_none_never_wins():
    closed = _closed(VECTORS["backtest_12_trades"]["trades"])
    bk.add_exchange("e", lambda *a: [])
    bk.add_frame("f", start=0, end=60_000)
    for name in ("few", "a", "b", "broken", "c"):
        bk.add_strategy(name, lambda s, w: None)
    bk.add_walker("w", exchange_name="e", frame_name="f", strategies=["few", "a", "b", "broken", "c"])
    worse = [msgspec.structs.replace(c, pnl=bk.PnL(c.pnl.pnl_percentage - 0.05, 100, 100)) for c in closed]
    results = rank(bk.registry.get_walker("w"), "X", {
        "few": _result("few", closed[:3]),                  # 3 trades: Sharpe None, never wins
        "a": _result("a", worse), "b": _result("b", closed), "c": _result("c", closed),   # b and c tie
        "broken": CellResult("broken", "X", "", error="RuntimeError: boom")})
    assert [r.strategy_name for r in results.rows] == ["b", "c", "a", "few", "broken"]
    assert [r.rank for r in results.rows] == [1, 2, 3, None, None]
    assert results.best_strategy == "b" and results.runner_up == "c" and results.lead == 0.0
    few = results.rows[3]
    assert few.below_gates and few.total_signals == 3 and few.metric_value is None
    assert results.rows[4].error == "RuntimeError: boom"
    nothing = rank(bk.registry.get_walker("w"), "X", {"few": _result("few", closed[:3])})
    assert nothing.best_strategy is None and nothing.best_metric is None


# --- a walk ---------------------------------------------------------------------------------------

async def test_callbacks_and_events_come_in_order(store):
    journal = []
    cb = bk.WalkerCallbacks(
        on_strategy_start=lambda name, symbol: journal.append(("start", name, symbol)),
        on_strategy_complete=lambda name, symbol, stats, value: journal.append(("complete", name, symbol)),
        on_complete=lambda results: journal.append(("on_complete", results.symbol)))
    names = setup_sweep(store, symbols=["ETHBTC"], callbacks=cb)
    bk.listen_walker(lambda e: journal.append(("walker", e.strategy_name, e.strategies_tested, e.best_strategy)))
    bk.listen_walker_progress(lambda e: journal.append(("progress", e.processed_cells, e.total_cells)))
    bk.listen_walker_complete(lambda e: journal.append(("walker_complete", e.symbol, e.best_strategy)))
    bk.listen_done_walker(lambda e: journal.append(("done", e.walker_name)))
    events, results = await walk(["ETHBTC"])
    best = results["ETHBTC"].best_strategy
    assert [e.strategy_name for e in events] == names
    expected = [("start", n, "ETHBTC") for n in names]
    running_best = None
    for i, n in enumerate(names, 1):
        value, best_value = events[i - 1].metric_value, None if running_best is None else \
            results["ETHBTC"].rows[[r.strategy_name for r in results["ETHBTC"].rows].index(running_best)].metric_value
        if value is not None and (best_value is None or value > best_value):
            running_best = n
        expected += [("complete", n, "ETHBTC"), ("walker", n, i, running_best), ("progress", i, len(names))]
    expected += [("walker_complete", "ETHBTC", best), ("on_complete", "ETHBTC"), ("done", "w")]
    assert journal == expected
    assert best == max((r for r in results["ETHBTC"].rows if r.metric_value is not None),
                       key=lambda r: r.metric_value).strategy_name


async def test_a_failing_cell_is_reported_and_skipped_and_the_walk_goes_on(store):
    errors, failed = [], []
    cb = bk.WalkerCallbacks(on_strategy_error=lambda name, symbol, error: failed.append((name, symbol)))
    names = setup_sweep(store, callbacks=cb)
    bk.listen_error(errors.append)
    events, results = await walk(("ETHBTC", "NOPE"))
    assert {e.symbol for e in events} == {"ETHBTC"} and len(events) == len(names)
    assert sorted(failed) == sorted((n, "NOPE") for n in names)
    assert len(errors) == len(names) and all("NOPE" in str(e.error) for e in errors)
    assert results["ETHBTC"].best_strategy is not None
    assert results["NOPE"].best_strategy is None and all(r.error for r in results["NOPE"].rows)
    assert all(r.error and r.error.startswith("NOPE:") for r in results["*"].rows)    # overall needs every symbol


async def test_several_symbols_rank_each_and_overall_on_pooled_signals(store, tmp_path):
    names = setup_sweep(store)
    _, results = await walk()
    for name in names:
        per = [next(r for r in results[s].rows if r.strategy_name == name) for s in ("ETHBTC", "LTCBTC")]
        pooled = next(r for r in results["*"].rows if r.strategy_name == name)
        assert pooled.total_signals == sum(r.total_signals for r in per)
        both = per[0].stats.signal_list + per[1].stats.signal_list
        assert pooled.metric_value == backtest_statistics(both).sharpe_ratio
    report = await bk.Walker.get_report("*", walker_name="w")
    assert "all symbols, signals pooled" in report and f"Best: **{results['*'].best_strategy}**" in report
    path = Path(await bk.Walker.dump("*", walker_name="w", path=str(tmp_path)))
    assert path.name == "all_w.md" and path.read_text() == report
    assert "No results for BTCUSDT yet" in await bk.Walker.get_report("BTCUSDT", walker_name="w")


# --- executors and the cache ---------------------------------------------------------------------

async def test_inline_process_and_dask_give_identical_tables(store):
    setup_sweep(store)
    _, inline = await walk(executor="inline", cache=False)
    _, process = await walk(executor="process", cache=False, workers=2)
    _, dask = await walk(executor="dask", cache=False, workers=2)
    assert table(inline) == table(process) == table(dask)
    assert inline["*"].best_strategy is not None


async def test_the_process_pool_is_kept_between_walks_and_started_again_after_a_worker_dies(store):
    import multiprocessing
    import os
    import signal
    setup_sweep(store, {"fast": [5, 10], "slow": [30]}, symbols=["ETHBTC"])
    _, first = await walk(["ETHBTC"], executor="process", workers=2, cache=False)
    workers = {p.pid for p in multiprocessing.active_children()}
    _, second = await walk(["ETHBTC"], executor="process", workers=2, cache=False)
    assert workers and {p.pid for p in multiprocessing.active_children()} == workers     # the same processes
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, third = await walk(["ETHBTC"], executor="process", workers=2, cache=False)       # a new pool
    assert table(first) == table(second) == table(third)
    assert not workers & {p.pid for p in multiprocessing.active_children()}


KEEPS_A_POOL_THEN_DIES = """
import os, sys
from engine.executors import _pool
pool = _pool(2)
print(" ".join(str(pool.submit(os.getpid).result()) for _ in range(2)), flush=True)
os._exit(129)     # as a console hung up: no atexit, no shutdown of the kept pool
"""


def test_a_kept_pools_workers_end_with_the_process_that_started_it():
    import time
    out = subprocess.run([sys.executable, "-c", KEEPS_A_POOL_THEN_DIES], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    pids = {int(p) for p in out.stdout.split()}
    assert pids, out.stderr

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "a pool worker outlived its parent"


@pytest.mark.parametrize("executor", ["inline", "process"])
async def test_every_cell_is_a_backtest_get_data_and_get_report_see(store, executor):
    """As backtest-kit's walker feeds Backtest: each cell that ran emits listen_done_backtest and is
    the symbol's backtest of that strategy afterwards (cells served from the cache too)."""
    names = setup_sweep(store, {"fast": [5, 10], "slow": [30]}, symbols=["ETHBTC"])
    done = []
    bk.listen_done_backtest(done.append)
    _, results = await walk(["ETHBTC"], executor=executor, workers=2, cache=False)
    await bk.drain_events()
    assert sorted(e.strategy_name for e in done) == sorted(names)
    for row in results["ETHBTC"].rows:
        stats = await bk.Backtest.get_data("ETHBTC", strategy_name=row.strategy_name)
        assert stats.total_signals == row.total_signals > 0 and stats == row.stats
        report = await bk.Backtest.get_report("ETHBTC", strategy_name=row.strategy_name)
        assert report.startswith(f"# Backtest report: {row.strategy_name}") and "frame two-days" in report
    assert {(r["strategy_name"], r["status"]) for r in bk.Backtest.list()} == {(n, "done") for n in names}


async def test_a_second_run_is_served_from_the_cache_and_one_changed_parameter_recomputes_its_cells(store):
    setup_sweep(store)
    backtests = []
    bk.listen_done_backtest(backtests.append)
    _, first = await walk()
    assert len(backtests) == 8 and not any(r.cached for res in first.values() for r in res.rows if res.symbol != "*")
    backtests.clear()
    _, second = await walk()
    assert backtests == [] and all(r.cached for res in second.values() for r in res.rows)
    assert table(first) == table(second)
    # Change one value of the grid: fast 10 -> 15. Only the cells of fast=15 run.
    bk.clear_registry()
    setup_sweep(store, {"fast": [5, 15], "slow": [30, 60]})
    _, third = await walk()
    ran = sorted((e.strategy_name, e.symbol) for e in backtests)
    assert ran == sorted((f"sma[fast=15,slow={s}]", sym) for s in (30, 60) for sym in ("ETHBTC", "LTCBTC"))
    kept = [r for r in third["ETHBTC"].rows if r.strategy_name.startswith("sma[fast=5,")]
    assert kept and all(r.cached for r in kept)
    backtests.clear()
    await walk(fresh=True)
    assert len(backtests) == 8          # --fresh ignores the cache


async def test_dask_runs_on_a_scheduler_given_by_address(store):
    from distributed import LocalCluster

    setup_sweep(store, {"fast": [5], "slow": [30, 60]}, symbols=["ETHBTC"])
    _, inline = await walk(["ETHBTC"], cache=False)
    cluster = await asyncio.to_thread(LocalCluster, n_workers=1, threads_per_worker=1, dashboard_address=None)
    try:
        _, remote = await walk(["ETHBTC"], executor="dask", scheduler=cluster.scheduler_address, cache=False)
    finally:
        await asyncio.to_thread(cluster.close)
    assert table(remote) == table(inline)


async def test_an_unreachable_scheduler_fails_the_walk_with_its_address(store, monkeypatch):
    monkeypatch.setattr("engine.executors.DASK_CONNECT_TIMEOUT_S", 1.0)
    setup_sweep(store, symbols=["ETHBTC"])
    with pytest.raises(ConnectionError, match="tcp://127.0.0.1:9"):
        await walk(["ETHBTC"], executor="dask", scheduler="tcp://127.0.0.1:9", cache=False)


async def test_process_executor_refuses_a_strategy_it_cannot_import(store):
    setup_sweep(store)
    bk.add_strategy("inline_only", lambda symbol, when: None)
    bk.add_walker("lam", exchange_name="bundled", frame_name="two-days", strategies=["inline_only"])
    with pytest.raises(ValueError, match="inline_only.*cannot be imported by a worker process"):
        async for _ in bk.Walker.run("ETHBTC", walker_name="lam", executor="process"):
            pass


async def test_a_strategy_that_commands_its_position_trades_alike_on_a_worker(store):
    """sma_trail acts on its positions from its on_active_ping: a worker rebuilds that callback too
    (without it, the cell would trade as sma_cross with other levels)."""
    from strategies import sma_trail
    setup_sweep(store)
    sma_trail.register()
    bk.add_walker("trail", exchange_name="bundled", frame_name="two-days", strategies=["sma_trail"])

    async def walk_trail(executor):
        _ = [e async for e in bk.Walker.run("ETHBTC", walker_name="trail", executor=executor, cache=False,
                                            workers=1)]
        return await bk.Walker.get_data("ETHBTC", walker_name="trail")
    inline, process = await walk_trail("inline"), await walk_trail("process")
    assert table({"ETHBTC": inline}) == table({"ETHBTC": process})
    # ...and it does command there: some of its trades carry commits.
    closes = [r async for r in bk.Backtest.run("ETHBTC", strategy_name="sma_trail", exchange_name="bundled",
                                               frame_name="two-days") if r.action == "closed"]
    assert len(closes) == inline.rows[0].total_signals and any(c.signal.commits for c in closes)
    # A callback a worker cannot import is refused by name, not silently dropped.
    bk.add_strategy("lambda_hook", sma_trail.get_signal,
                    callbacks=bk.StrategyCallbacks(on_active_ping=lambda *args: None))
    bk.add_walker("hook", exchange_name="bundled", frame_name="two-days", strategies=["lambda_hook"])
    with pytest.raises(ValueError, match="lambda_hook.*callback on_active_ping.*cannot be imported by a worker"):
        async for _ in bk.Walker.run("ETHBTC", walker_name="hook", executor="process"):
            pass


def test_sweep_names_grid_errors_and_where():
    assert bk.sweep_name("sma", {"fast": 10, "slow": 40}) == "sma[fast=10,slow=40]"
    names = bk.add_sweep("s", sma_cross.make_signal, {"fast": [10, 50], "slow": [40]}, where=lambda p: p["fast"] < p["slow"])
    assert names == ["s[fast=10,slow=40]"]
    schema = bk.registry.get_strategy(names[0])
    assert schema.factory is sma_cross.make_signal and schema.params == {"fast": 10, "slow": 40}
    with pytest.raises(ValueError, match="grid\\['fast'\\] must be a non-empty list"):
        bk.add_sweep("t", sma_cross.make_signal, {"fast": []})
    with pytest.raises(ValueError, match="factory rejects"):
        bk.add_sweep("u", sma_cross.make_signal, {"fast": [60], "slow": [40]})
    with pytest.raises(ValueError, match="finite numbers"):
        bk.add_sweep("v", sma_cross.make_signal, {"fast": [float("nan")]})


# --- command line ---------------------------------------------------------------------------------

def btk(*args, home):
    env = {**os.environ, "BTK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parent.parent, timeout=300)


def test_cli_walker_json_follows_the_contract(tmp_path):
    out = btk("walker", "samples", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {"walker_name", "symbol", "metric", "best_strategy", "best_metric", "results"}
    assert doc["walker_name"] == "samples" and doc["symbol"] == "BTCUSDT" and doc["metric"] == "sharpe_ratio"
    assert [r["strategy_name"] for r in doc["results"]][0] == doc["best_strategy"]
    assert {r["strategy_name"] for r in doc["results"]} == set(strategies.SAMPLES)
    assert all({"strategy_name", "metric_value", "stats"} <= set(r) for r in doc["results"])
    # Each row says how long its cell took and on which path (sma_cross has a vectorised twin).
    assert all(r["seconds"] > 0 and isinstance(r["vectorised"], bool) and r["cached"] is False for r in doc["results"])
    assert next(r for r in doc["results"] if r["strategy_name"] == "sma_cross")["vectorised"] is True
    again = btk("walker", "samples", home=tmp_path)
    assert again.returncode == 0 and "cached" in again.stdout and "best:" in again.stdout


def test_cli_walker_bad_arguments_exit_2(tmp_path):
    unknown = btk("walker", "nope", home=tmp_path)
    assert unknown.returncode == 2 and "unknown walker 'nope'" in unknown.stderr and "samples" in unknown.stderr
    sched = btk("walker", "samples", "--scheduler", "tcp://127.0.0.1:1", home=tmp_path)
    assert sched.returncode == 2 and "--scheduler needs --executor dask" in sched.stderr
    garbage = btk("walker", "samples", "--executor", "dask", "--scheduler", "garbage", home=tmp_path)
    assert garbage.returncode == 2 and "expected a Dask scheduler address" in garbage.stderr
    report = btk("walker", "samples", "--report", str(tmp_path / "nowhere" / "r.md"), home=tmp_path)
    assert report.returncode == 2 and "does not exist" in report.stderr


async def test_background_walk_can_be_stopped_and_listed(store):
    names = setup_sweep(store, {"fast": [5, 10, 15, 20], "slow": [30, 60]})
    done = asyncio.Event()
    bk.listen_done_walker(lambda e: done.set())
    finished = []

    def stop_after_first(event):
        finished.append(event.strategy_name)
        bk.Walker.stop(["ETHBTC"], walker_name="w")

    bk.listen_walker(stop_after_first)
    stop = bk.Walker.background(["ETHBTC"], walker_name="w", cache=False)
    await asyncio.wait_for(done.wait(), 60)
    (row,) = bk.Walker.list()
    assert row["walker_name"] == "w" and row["status"] == "stopped" and row["total"] == len(names)
    results = await bk.Walker.get_data("ETHBTC", walker_name="w")
    # The stop came with the first result; the cell already past its turn (at most one more)
    # finished, the ones still waiting never ran and are shown as not run.
    assert finished == names[:len(finished)] and 1 <= len(finished) <= 2
    not_run = [r.strategy_name for r in results.rows if r.error == "not run"]
    assert sorted(not_run) == sorted(names[len(finished):])
    stop()   # stopping a finished walk is harmless


GRID_FILE = '''
import engine as bk
from strategies import sma_cross


def make_signal(fast, slow):
    """The user's own factory: defined in this file, which workers know only by its path."""
    return sma_cross.make_signal(fast=fast, slow=slow)


names = bk.add_sweep("mine", make_signal, {"fast": [5, 10], "slow": [30, 60]})
bk.add_walker("mygrid", exchange_name="bundled", frame_name="bundled-2018", strategies=names,
              symbols=["ETHBTC"])
'''


def btk_user(*args, home, cwd):
    """``btk`` as a user runs it: the installed command, from the user's own folder."""
    command = Path(sys.executable).with_name("btk")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "console.cli"]
    env = {**os.environ, "BTK_HOME": str(home)}
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_sweep_from_a_loaded_file_runs_on_workers_as_inline(tmp_path, executor):
    """``btk --load grid.py walker mygrid --executor process`` (the README's way): workers load the
    user's file by its path; the table is the inline one."""
    (tmp_path / "grid.py").write_text(GRID_FILE)
    home = tmp_path / "home"
    inline = btk_user("--load", "grid.py", "walker", "mygrid", "--json", "--fresh", home=home, cwd=tmp_path)
    assert inline.returncode == 0, inline.stderr
    pooled = btk_user("--load", "grid.py", "walker", "mygrid", "--executor", executor, "--workers", "2", "--json",
                      "--fresh", home=home, cwd=tmp_path)
    assert pooled.returncode == 0, pooled.stderr
    a, b = json.loads(inline.stdout), json.loads(pooled.stdout)
    assert [r["error"] for r in b["results"]] == [None] * 4 and b["errors"] == 0
    rows = lambda doc: [(r["strategy_name"], r["metric_value"], r["stats"]) for r in doc["results"]]
    assert rows(a) == rows(b) and sum(r["total_signals"] for r in b["results"]) > 20


def test_a_walk_with_failed_cells_exits_1_and_its_json_shows_each_error(tmp_path):
    out = btk("walker", "samples", "--symbol", "BTCUSDT,NOPE", "--json", home=tmp_path)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    failed = doc["symbols"]["NOPE"]["results"]
    assert doc["errors"] == len(failed) == len(strategies.SAMPLES)
    assert all("NOPE" in r["error"] for r in failed)
    assert all(r["error"] is None for r in doc["symbols"]["BTCUSDT"]["results"])
    assert "failed" in out.stderr and "Traceback" not in out.stderr
    every = btk("walker", "samples", "--symbol", "NOPE", home=tmp_path)
    assert every.returncode == 1 and every.stderr.count("\n") == 1, every.stderr


async def test_a_sweep_with_its_vectorised_twin_runs_it_in_every_executor(store):
    """add_sweep(..., signals_factory=make_signals): every cell, inline, in a process pool or on Dask,
    backtests on get_signals (the fast path), with the per-frame sweep's exact results."""
    setup_sweep(store)
    _, per_frame = await walk(executor="inline", cache=False)
    assert not any(r.vectorised for res in per_frame.values() for r in res.rows)
    bk.clear_registry()
    bk.add_exchange("bundled", StoreExchange("bundled", store).get_candles)
    bk.add_frame("two-days", start=to_ms(datetime(2018, 1, 21, tzinfo=timezone.utc)),
                 end=to_ms(datetime(2018, 1, 23, tzinfo=timezone.utc)))
    names = bk.add_sweep("sma", sma_cross.make_signal, GRID, signals_factory=sma_cross.make_signals)
    bk.add_walker("w", exchange_name="bundled", frame_name="two-days", strategies=names,
                  symbols=["ETHBTC", "LTCBTC"])
    for executor in ("inline", "process", "dask"):
        _, results = await walk(executor=executor, cache=False, workers=2)
        assert table(results) == table(per_frame), executor
        rows = [r for sym, res in results.items() if sym != "*" for r in res.rows]
        assert rows and all(r.vectorised for r in rows), executor


async def test_dask_takes_cells_in_batches_and_keeps_its_cluster_for_the_next_walk(store):
    import engine.executors as executors
    assert executors.batches(list(range(8)), 1) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert executors.batches(list(range(8)), 2) == [[i] for i in range(8)]
    setup_sweep(store)
    _, inline = await walk(executor="inline", cache=False)
    _, first = await walk(executor="dask", cache=False, workers=1)      # 8 cells, 1 worker: batches of 2
    cluster = executors._dask[1][0]
    _, second = await walk(executor="dask", cache=False, workers=1)
    assert table(first) == table(second) == table(inline)
    assert executors._dask[1][0] is cluster                              # the same cluster, kept


MANAGED_FILE = '''
import engine as bk
from strategies import sma_cross

entries = sma_cross.make_signal(take_profit=0.03, stop_loss=0.015, minutes=240)


async def get_signal(symbol, when):
    return await entries(symbol, when)


async def on_active_ping(symbol, signal, price, backtest):
    """The user's own position management, in this file (workers know it only by its path)."""
    if price > signal.price_open * 1.004 and not signal.partials:
        await bk.commit_partial_profit(symbol, 50)
        await bk.commit_breakeven(symbol)


bk.add_strategy("managed", get_signal, callbacks=bk.StrategyCallbacks(on_active_ping=on_active_ping))
bk.add_walker("mine", exchange_name="bundled", frame_name="bundled-2018", strategies=["managed"],
              symbols=["ETHBTC"])
'''


def test_a_loaded_file_that_commands_its_positions_walks_on_a_process_pool_as_inline(tmp_path):
    """``btk --load managed.py walker mine --executor process``: the workers call the file's own
    on_active_ping, so its commands shape the same trades as inline."""
    (tmp_path / "managed.py").write_text(MANAGED_FILE)
    home = tmp_path / "home"
    inline = btk_user("--load", "managed.py", "walker", "mine", "--json", "--fresh", home=home, cwd=tmp_path)
    pooled = btk_user("--load", "managed.py", "walker", "mine", "--executor", "process", "--workers", "2", "--json",
                      "--fresh", home=home, cwd=tmp_path)
    assert inline.returncode == 0 and pooled.returncode == 0, inline.stderr + pooled.stderr
    a, b = json.loads(inline.stdout), json.loads(pooled.stdout)
    rows = lambda doc: [(r["strategy_name"], r["metric_value"], r["stats"]) for r in doc["results"]]
    assert rows(a) == rows(b) and b["results"][0]["total_signals"] > 5
    # Its commands took effect: the same backtest through the CLI shows partial closes.
    bt = btk_user("--load", "managed.py", "backtest", "managed", "--symbol", "ETHBTC", "--frame", "bundled-2018",
                  "--json", home=home, cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    assert any(s["signal"]["partials"] for s in json.loads(bt.stdout)["signals"])
