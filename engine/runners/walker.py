"""The walker (SEMANTICS.md section 10): every strategy of a walker over the same exchange and
frame, on one symbol or several, ranked by one metric.

Each (strategy, symbol) is a cell (``engine/cells.py``) run by the chosen executor; finished
cells come from the SQLite cache unless ``fresh``. As each cell finishes: the strategy's
complete (or error) callback, a ``walker`` event with the best so far, a ``walker_progress``
event. At the end, per symbol (and overall, for several symbols): ``walker_complete`` and
``on_complete``; then ``done_walker``.

Ranking: highest non-null metric first; ties keep the walker's order; ``None`` never wins;
a strategy that errors is reported on ``listen_error``, shown as failed and never ranked.
Every row carries its trade count and whether it is below the statistics gates (fewer than
10 closed signals: ratios are ``None`` there, and a high total PnL on 3 trades is luck).
"""

from __future__ import annotations

import asyncio
import inspect
from contextlib import AsyncExitStack
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgspec

from ..cellcache import CellCache
from ..cells import Cell, CellResult, make_cell
from ..events import bus
from ..executors import CellRunner
from ..registry import WalkerSchema, get_walker, raise_problems, reference_problems
from ..stats import MIN_TRADES_FOR_RATIOS, BacktestStatistics, backtest_statistics
from ..types import DoneEvent, TickClosed
from .backtest import record_finished
from .supervise import start_background, supervised, write_report

OVERALL = "*"


class CellFailed(RuntimeError):
    """A strategy failed in a worker process (the message carries the worker's error)."""      # the symbol of the ranking over every symbol of a several-symbol run


class WalkerRow(msgspec.Struct, frozen=True):
    rank: int | None                 # None: failed, or no value for the metric
    strategy_name: str
    metric_value: float | None
    total_signals: int
    below_gates: bool                # fewer closed signals than the statistics need
    stats: BacktestStatistics | None
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    vectorised: bool = False         # the cell ran on the strategy's get_signals (else per frame)


class WalkerResults(msgspec.Struct, frozen=True):
    walker_name: str
    symbol: str                      # a symbol, or "*" for the overall ranking
    metric: str
    best_strategy: str | None
    best_metric: float | None
    best_stats: BacktestStatistics | None
    total_strategies: int
    rows: list[WalkerRow]            # ranked first, then unranked, then failed
    lead: float | None = None        # best minus runner-up, when both have a value
    runner_up: str | None = None


class WalkerEvent(msgspec.Struct, frozen=True):
    walker_name: str
    symbol: str
    strategy_name: str
    metric: str
    metric_value: float | None
    best_strategy: str | None
    best_metric: float | None
    strategies_tested: int
    total_strategies: int
    stats: BacktestStatistics
    cached: bool = False


class WalkerProgressEvent(msgspec.Struct, frozen=True):
    walker_name: str
    symbol: str
    strategy_name: str
    processed_cells: int
    total_cells: int
    progress: float
    failed: bool = False


class WalkerCompleteEvent(msgspec.Struct, frozen=True):
    walker_name: str
    symbol: str
    metric: str
    best_strategy: str | None
    best_metric: float | None
    best_stats: BacktestStatistics | None
    total_strategies: int
    results: WalkerResults


class WalkerDoneEvent(msgspec.Struct, frozen=True):
    """The done payload of API.md (``strategy_name`` is the walker's name) plus ``walker_name``."""

    walker_name: str
    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    backtest: bool = True


class WalkerState(msgspec.Struct):
    walker_name: str
    symbols: tuple[str, ...]
    status: str = "running"
    processed: int = 0
    total: int = 0
    stop_requested: bool = False
    results: dict[str, WalkerResults] = msgspec.field(default_factory=dict)


_runs: dict[tuple[str, str], WalkerState] = {}


def _key(symbol: str | Sequence[str], walker_name: str) -> tuple[str, str]:
    return (symbol if isinstance(symbol, str) else ",".join(symbol), walker_name)


def metric_value(stats: BacktestStatistics | None, metric: str) -> float | None:
    value = getattr(stats, metric, None) if stats is not None else None
    return float(value) if isinstance(value, (int, float)) else None


def rank(walker: WalkerSchema, symbol: str, results: dict[str, CellResult | None]) -> WalkerResults:
    """Rank ``results`` (by strategy name; None = not run) in the walker's strategy order."""
    ranked: list[tuple[float, int, str]] = []
    for order, name in enumerate(walker.strategies):
        r = results.get(name)
        value = metric_value(r.stats if r else None, walker.metric)
        if value is not None:
            ranked.append((value, order, name))
    ranked.sort(key=lambda t: (-t[0], t[1]))          # ties keep the earlier strategy
    position = {name: i + 1 for i, (_, _, name) in enumerate(ranked)}

    def row(name: str) -> WalkerRow:
        r = results.get(name)
        stats = r.stats if r else None
        trades = stats.total_signals if stats else 0
        return WalkerRow(rank=position.get(name), strategy_name=name, metric_value=metric_value(stats, walker.metric),
                         total_signals=trades, below_gates=stats is not None and trades < MIN_TRADES_FOR_RATIOS,
                         stats=stats, error=r.error if r else "not run", cached=r.cached if r else False,
                         seconds=r.seconds if r else 0.0, vectorised=r.vectorised if r else False)

    all_rows = [row(name) for name in walker.strategies]
    # Ranked by value, then the ones without a value, then the failed / not run (each in walker order).
    rows = sorted(all_rows, key=lambda r: (r.rank is None, r.error is not None, r.rank or 0))
    best = rows[0] if ranked else None
    second = rows[1] if len(ranked) > 1 else None
    return WalkerResults(
        walker_name=walker.walker_name, symbol=symbol, metric=walker.metric,
        best_strategy=best.strategy_name if best else None, best_metric=best.metric_value if best else None,
        best_stats=best.stats if best else None, total_strategies=len(walker.strategies), rows=rows,
        lead=best.metric_value - second.metric_value if best and second else None,  # type: ignore[operator]
        runner_up=second.strategy_name if second else None)


def overall(walker: WalkerSchema, per_symbol: dict[str, dict[str, CellResult | None]]) -> WalkerResults:
    """The ranking over every symbol: each strategy's closed signals of all symbols, pooled."""
    pooled: dict[str, CellResult | None] = {}
    for name in walker.strategies:
        cells = [cells[name] for cells in per_symbol.values()]
        failed = [c for c in cells if c is None or c.error is not None]
        if failed:
            pooled[name] = CellResult(name, OVERALL, "", error=next(
                (f"{c.symbol}: {c.error}" for c in failed if c is not None), "not run"))
            continue
        closed: list[TickClosed] = [t for c in cells for t in c.stats.signal_list]  # type: ignore[union-attr]
        pooled[name] = CellResult(name, OVERALL, "", stats=backtest_statistics(closed),
                                  cached=all(c.cached for c in cells),  # type: ignore[union-attr]
                                  seconds=sum(c.seconds for c in cells))  # type: ignore[union-attr]
    return rank(walker, OVERALL, pooled)


class Walker:
    """Walker runs: ``run`` / ``background`` / ``stop`` / ``list`` / ``get_data`` / ``get_report`` / ``dump``."""

    @staticmethod
    def run(symbol: str | Sequence[str], *, walker_name: str, executor: str = "inline", scheduler: str | None = None,
            fresh: bool = False, cache: bool = True, workers: int | None = None) -> AsyncIterator[WalkerEvent]:
        """Yield a ``WalkerEvent`` as each strategy finishes on each symbol. ``symbol`` may be a list:
        each symbol is ranked on its own, and all together (``Walker.get_data("*", ...)``)."""
        symbols = (symbol,) if isinstance(symbol, str) else tuple(dict.fromkeys(symbol))
        key = _key(symbol, walker_name)
        ctx = {"symbol": key[0], "strategy_name": walker_name, "exchange_name": "", "frame_name": "",
               "backtest": True}
        state = WalkerState(walker_name, symbols)

        def check() -> None:
            if not symbols or not all(isinstance(s, str) and s for s in symbols):
                raise ValueError(f"Walker.run: symbols must be non-empty strings, got {symbol!r}")
            raise_problems(reference_problems(walker=walker_name), "Walker.run")

        return supervised("Walker.run", state, _runs, key, ctx, check,
                          lambda: _walk(state, executor=executor, scheduler=scheduler, fresh=fresh, cache=cache,
                                        workers=workers))

    @staticmethod
    def background(symbol: str | Sequence[str], *, walker_name: str, **options: Any) -> Callable[[], None]:
        start_background(Walker.run(symbol, walker_name=walker_name, **options), f"btk-walker-{walker_name}")
        return lambda: Walker.stop(symbol, walker_name=walker_name)

    @staticmethod
    def stop(symbol: str | Sequence[str], *, walker_name: str) -> None:
        """Start no more cells; the ones running finish and are ranked."""
        state = _runs.get(_key(symbol, walker_name))
        if state is not None:
            state.stop_requested = True

    @staticmethod
    def list() -> list[dict[str, Any]]:
        return [{"walker_name": s.walker_name, "symbol": ",".join(s.symbols), "status": s.status,
                 "processed": s.processed, "total": s.total} for s in _runs.values()]

    @staticmethod
    async def get_data(symbol: str, *, walker_name: str) -> WalkerResults | None:
        """The latest results for ``symbol`` (or ``"*"``: the overall ranking), None if never walked."""
        for state in reversed(list(_runs.values())):
            if state.walker_name == walker_name and symbol in state.results:
                return state.results[symbol]
        return None

    @staticmethod
    async def get_report(symbol: str, *, walker_name: str) -> str:
        results = await Walker.get_data(symbol, walker_name=walker_name)
        if results is None:
            return f"# Walker report: {walker_name}\n\nNo results for {symbol} yet.\n"
        return walker_report(results)

    @staticmethod
    async def dump(symbol: str, *, walker_name: str, path: str = "./dump/walker") -> str:
        return write_report(await Walker.get_report(symbol, walker_name=walker_name), path,
                            "all" if symbol == OVERALL else symbol, walker_name)


def reset_walkers() -> None:
    _runs.clear()


async def _callback(fn: Callable | None, *args: Any, **ctx: Any) -> None:
    if fn is None:
        return
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        bus.report(exc, where=f"walker callback {getattr(fn, '__name__', fn)}", **ctx)


async def _walk(state: WalkerState, *, executor: str, scheduler: str | None, fresh: bool, cache: bool,
                workers: int | None) -> AsyncIterator[WalkerEvent]:
    walker = get_walker(state.walker_name)
    cb = walker.callbacks
    ctx = {"strategy_name": walker.walker_name, "exchange_name": walker.exchange_name, "frame_name": walker.frame_name}
    runner = CellRunner(executor, scheduler=scheduler, workers=workers)
    cells = [make_cell(name, symbol, walker.exchange_name, walker.frame_name, portable=runner.portable)
             for symbol in state.symbols for name in walker.strategies]
    state.total = len(cells)
    per_symbol: dict[str, dict[str, CellResult | None]] = {s: dict.fromkeys(walker.strategies) for s in state.symbols}
    best: dict[str, tuple[str | None, float | None]] = dict.fromkeys(state.symbols, (None, None))
    tested: dict[str, int] = dict.fromkeys(state.symbols, 0)

    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(CellCache()) if cache else None
        async with runner:
            pending: list[asyncio.Future[CellResult | None]] = []
            to_run: list[Cell] = []
            for cell in cells:
                await _callback(cb.on_strategy_start, cell.strategy.strategy_name, cell.symbol, symbol=cell.symbol, **ctx)
                hit = await store.get(cell.key) if store is not None and not fresh else None
                if hit is not None:
                    done: asyncio.Future[CellResult | None] = asyncio.get_running_loop().create_future()
                    done.set_result(hit)
                    pending.append(done)
                elif not state.stop_requested:
                    to_run.append(cell)
            pending += [asyncio.ensure_future(a) for a in runner.run_all(to_run, lambda: state.stop_requested)]
            for next_done in asyncio.as_completed(list(pending)):
                result = await next_done
                if result is None:
                    continue          # stopped before its turn: shown as not run
                if store is not None and not result.cached:
                    await store.put(result)
                symbol, name = result.symbol, result.strategy_name
                per_symbol[symbol][name] = result
                if result.stats is not None:
                    record_finished(symbol, name, walker.exchange_name, walker.frame_name, result.stats.signal_list)
                    if runner.portable and not result.cached:   # an inline cell emitted its own
                        bus.done_backtest.emit(DoneEvent(symbol, name, walker.exchange_name,  # type: ignore[attr-defined]
                                                         walker.frame_name, True))
                tested[symbol] += 1
                state.processed += 1
                event = await _finish(walker, result, best, tested, ctx, report=runner.portable)
                bus.walker_progress.emit(WalkerProgressEvent(  # type: ignore[attr-defined]
                    walker.walker_name, symbol, name, state.processed, state.total, state.processed / state.total,
                    failed=result.error is not None))
                if event is not None:
                    yield event

    for symbol in state.symbols:
        state.results[symbol] = rank(walker, symbol, per_symbol[symbol])
    if len(state.symbols) > 1:
        state.results[OVERALL] = overall(walker, per_symbol)
    for results in state.results.values():
        bus.walker_complete.emit(WalkerCompleteEvent(  # type: ignore[attr-defined]
            walker.walker_name, results.symbol, results.metric, results.best_strategy, results.best_metric,
            results.best_stats, results.total_strategies, results))
        await _callback(cb.on_complete, results, symbol=results.symbol, **ctx)
    state.status = "stopped" if state.stop_requested else "done"
    bus.done_walker.emit(WalkerDoneEvent(walker.walker_name, ",".join(state.symbols),  # type: ignore[attr-defined]
                                         walker.walker_name, walker.exchange_name, walker.frame_name))


async def _finish(walker: WalkerSchema, result: CellResult, best: dict[str, tuple[str | None, float | None]],
                  tested: dict[str, int], ctx: dict[str, str], *, report: bool) -> WalkerEvent | None:
    symbol, name = result.symbol, result.strategy_name
    cb = walker.callbacks
    if result.error is not None:
        if report:   # an inline cell reported its error itself; a worker's error is reported here
            bus.report(CellFailed(f"{name} on {symbol}: {result.error}"), where="walker cell", symbol=symbol,
                       **{**ctx, "strategy_name": name})
        await _callback(cb.on_strategy_error, name, symbol, result.error, symbol=symbol, **ctx)
        return None
    assert result.stats is not None
    value = metric_value(result.stats, walker.metric)
    best_name, best_value = best[symbol]
    order = walker.strategies.index
    if value is not None and (best_value is None or value > best_value
                              or (value == best_value and best_name is not None and order(name) < order(best_name))):
        best[symbol] = best_name, best_value = name, value
    await _callback(cb.on_strategy_complete, name, symbol, result.stats, value, symbol=symbol, **ctx)
    event = WalkerEvent(walker.walker_name, symbol, name, walker.metric, value, best_name, best_value, tested[symbol],
                        len(walker.strategies), result.stats, cached=result.cached)
    bus.walker.emit(event)  # type: ignore[attr-defined]
    return event


# --- report ---------------------------------------------------------------------------------

def _fmt(v: float | None, decimals: int = 3) -> str:
    return "N/A" if v is None else f"{v:.{decimals}f}"


def walker_report(results: WalkerResults) -> str:
    where = "all symbols, signals pooled" if results.symbol == OVERALL else f"symbol {results.symbol}"
    lines = [f"# Walker report: {results.walker_name}", "", f"{where}; ranked by {results.metric}.", ""]
    if results.best_strategy is None:
        lines += ["No strategy has a value for the metric (too few closed signals, or every one failed).", ""]
    else:
        lead = ""
        if results.lead is not None:
            lead = f", ahead of {results.runner_up} by {results.lead:.3f}"
        lines += [f"Best: **{results.best_strategy}** with {results.metric} {_fmt(results.best_metric)}{lead}.", ""]
    header = "| Rank | Strategy | " + results.metric + " | Trades | Win rate | Total PnL | Max DD | Note |"
    lines += [header, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results.rows:
        s = r.stats
        note = r.error or ("below the gates: fewer than 10 closed signals" if r.below_gates else "")
        if r.cached and not r.error:
            note = (note + "; " if note else "") + "cached"
        lines.append(f"| {r.rank or '-'} | {r.strategy_name} | {_fmt(r.metric_value)} | {r.total_signals} | "
                     f"{_fmt(s.win_rate if s else None, 1)} | {_fmt(s.total_pnl if s else None)} | "
                     f"{_fmt(s.max_drawdown if s else None, 2)} | {note.replace('|', '/')} |")
    lines += ["", "Ties keep the earlier strategy; N/A never wins.", ""]
    return "\n".join(lines)
