"""Each system runs the workload (``workload.py``) and returns its trade list and the wall time
of its backtest alone (candles already in memory; for btk the time includes loading them through
the exchange adapter and its checks, which the peers skip).

btk: the engine with ``strategies/sma_cross.py``, per frame (``get_signal`` on every 1m frame)
or vectorised (its ``get_signals``). numpy: a plain numpy pass of the same rules, the floor any
Python tool is measured against. backtesting.py and vectorbt: installed with the ``bench`` extra.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from . import workload as w

SYSTEMS = ("btk per-frame", "btk vectorised", "btk per-frame, numpy means", "btk per-frame, declared indicators",
           "numpy", "backtesting.py", "vectorbt")


class Missing(RuntimeError):
    """The system is not installed (``pip install -e '.[bench]'``)."""


def run(system: str, n: int) -> tuple[w.Trades, float, str]:
    """(trades, wall seconds, a few lines of the system's own report)."""
    return _RUNNERS[system](n)


# --- btk ------------------------------------------------------------------------------------

def _btk(vectorised: bool, natural: str = "") -> Callable[[int], tuple[w.Trades, float, str]]:
    def run_btk(n: int) -> tuple[w.Trades, float, str]:
        return asyncio.run(_btk_run(n, vectorised, natural))
    return run_btk


def _declared_indicators() -> tuple[Callable, dict]:
    """``get_signal`` on declared indicators (docs/strategies.md): the averages computed once per
    backtest, each frame reading views."""
    import engine as bk

    def sma(values, n):
        out = np.full(len(values), np.nan)
        if len(values) >= n:
            out[n - 1:] = np.convolve(values, np.ones(n) / n, "valid")
        return out

    async def get_signal(symbol, when):
        ind = await bk.get_indicators()
        fast, slow = ind.fast, ind.slow
        if fast[-2] <= slow[-2] and fast[-1] > slow[-1]:
            price = await bk.get_average_price(symbol)
            return bk.SignalDto(position="long", price_take_profit=price * (1 + w.TAKE_PROFIT),
                                price_stop_loss=price * (1 - w.STOP_LOSS), minute_estimated_time=w.MINUTES)
        return None
    return get_signal, {"fast": bk.Indicator(lambda c: sma(c.close, w.FAST), startup=w.FAST + 1),
                        "slow": bk.Indicator(lambda c: sma(c.close, w.SLOW), startup=w.SLOW + 1)}


def _natural_signal():
    """``get_signal`` as people write it: numpy means over ``get_candles`` on every frame."""
    import engine as bk

    async def get_signal(symbol, when):
        close = (await bk.get_candles(symbol, "1m", w.SLOW + 1)).close
        fast_now, slow_now = close[-w.FAST:].mean(), close[-w.SLOW:].mean()
        fast_prev, slow_prev = close[-w.FAST - 1:-1].mean(), close[-w.SLOW - 1:-1].mean()
        if fast_prev <= slow_prev and fast_now > slow_now:
            price = await bk.get_average_price(symbol)
            return bk.SignalDto(position="long", price_take_profit=price * (1 + w.TAKE_PROFIT),
                                price_stop_loss=price * (1 - w.STOP_LOSS), minute_estimated_time=w.MINUTES)
        return None
    return get_signal


async def _btk_run(n: int, vectorised: bool, natural: str = "") -> tuple[w.Trades, float, str]:
    import engine as bk
    from engine.exchange.synthetic import SyntheticExchange
    from strategies import sma_cross

    exchange = SyntheticExchange(n, start=w.START_MS)
    # In memory: the whole backtest's candles in one call (an exchange API would take 1,000 a call).
    bk.add_exchange("synthetic", exchange.get_candles, candles_per_request=n)
    bk.add_frame("bench", start=w.START_MS + (w.FIRST_ROW + 1) * 60_000, end=w.START_MS + (w.last_row(n) + 1) * 60_000)
    if natural == "numpy":
        bk.add_strategy(sma_cross.NAME, _natural_signal())
    elif natural == "indicators":
        get_signal, indicators = _declared_indicators()
        bk.add_strategy(sma_cross.NAME, get_signal, indicators=indicators)
    else:
        sma_cross.register()
    started = time.perf_counter()
    closed = [r async for r in bk.Backtest.run("SYN", strategy_name=sma_cross.NAME, exchange_name="synthetic",
                                               frame_name="bench", vectorised=vectorised) if r.action == "closed"]
    wall = time.perf_counter() - started
    report = await bk.Backtest.get_report("SYN", strategy_name=sma_cross.NAME)
    trades = w.Trades.of([(r.signal.pending_at - w.START_MS) // 60_000 - 1 for r in closed],
                         [(r.close_timestamp - w.START_MS) // 60_000 for r in closed],
                         [r.pnl.pnl_percentage for r in closed])
    summary = [line for line in report.splitlines() if line.startswith(("| Total signals", "| Total PnL", "| Win rate"))]
    return trades, wall, "\n".join(summary)


# --- a plain numpy pass ----------------------------------------------------------------------

def _numpy(n: int) -> tuple[w.Trades, float, str]:
    c = w.candles(n)
    started = time.perf_counter()
    price = w.vwap(c)
    cs = np.concatenate(([0.0], np.cumsum(c.close)))
    rows = np.arange(w.SLOW, n)
    fast_now = (cs[rows + 1] - cs[rows + 1 - w.FAST]) / w.FAST
    slow_now = (cs[rows + 1] - cs[rows + 1 - w.SLOW]) / w.SLOW
    fast_prev = (cs[rows] - cs[rows - w.FAST]) / w.FAST
    slow_prev = (cs[rows] - cs[rows - w.SLOW]) / w.SLOW
    crossed = rows[(fast_prev <= slow_prev) & (fast_now > slow_now)]
    crossed = crossed[(crossed >= w.FIRST_ROW) & (crossed <= w.last_row(n))]
    entries, exits, pnls = [], [], []
    free_from = 0
    for r in crossed.tolist():
        if r < free_from:
            continue
        entry = price[r]
        stop = min(r + w.TIME_EXIT_ROWS, n - 1)   # time limit, or the candle past the frame's end
        window = price[r + 1:stop]
        hit = np.flatnonzero((window >= entry * (1 + w.TAKE_PROFIT)) | (window <= entry * (1 - w.STOP_LOSS)))
        if len(hit):
            k = r + 1 + int(hit[0])
            close = entry * (1 + w.TAKE_PROFIT) if price[k] >= entry * (1 + w.TAKE_PROFIT) else entry * (1 - w.STOP_LOSS)
        else:
            k, close = stop, price[stop]
        entries.append(r)
        exits.append(k)
        pnls.append(float(w.net_pnl_percent(np.float64(entry), np.float64(close))))
        free_from = k                              # a new decision may come on the closing candle
    wall = time.perf_counter() - started
    pnl = np.array(pnls)
    return w.Trades.of(entries, exits, pnl), wall, f"trades {len(pnl)}, total PnL {pnl.sum():.4f} %"


# --- backtesting.py ----------------------------------------------------------------------------

def _backtesting_py(n: int) -> tuple[w.Trades, float, str]:
    try:
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError as e:
        raise Missing(str(e)) from None
    import warnings

    c = w.candles(n)
    price = w.vwap(c)
    price[:w.VWAP_CANDLES - 1] = price[w.VWAP_CANDLES - 1]   # backtesting.py wants no NaN prices
    # One more bar repeating the last price: backtesting.py fills trade.close() at the next bar's
    # open, and btk closes a position still open at the end on the last candle's price.
    price = np.append(price, price[-1])
    open_, high, low, close = w.price_bars(price)
    data = pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": np.append(c.volume, 0.0), "RawClose": np.append(c.close, c.close[-1])},
                        index=pd.to_datetime(np.append(c.timestamp, c.timestamp[-1] + 60_000), unit="ms"))
    last = w.last_row(n)

    def sma(values, length):
        return pd.Series(values).rolling(length).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.RawClose, w.FAST)
            self.slow = self.I(sma, self.data.RawClose, w.SLOW)

        def next(self):
            row = len(self.data) - 1
            closing = False
            if self.trades:
                trade = self.trades[0]
                age = row - trade.entry_bar
                if age == w.TIME_EXIT_ROWS - 1:
                    # btk judges the time limit before TP/SL on the closing candle: drop them for it.
                    trade.sl = None
                    trade.tp = None
                elif age >= w.TIME_EXIT_ROWS or row == n - 1:   # time limit, or the candle past the frame's end
                    trade.close()            # fills at the next bar's open: this bar's price
                    closing = True
            if (not self.trades or closing) and w.FIRST_ROW <= row <= last and crossover(self.fast, self.slow):
                entry = self.data.Close[-1]
                self.buy(tp=entry * (1 + w.TAKE_PROFIT), sl=entry * (1 - w.STOP_LOSS))

    bt = Backtest(data, SmaCross, cash=1e12, spread=w.SLIPPAGE, commission=w.FEE, trade_on_close=True,
                  finalize_trades=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run()
    wall = time.perf_counter() - started
    t = stats["_trades"]
    entry_row = t["EntryBar"].to_numpy()
    exit_bar = t["ExitBar"].to_numpy()
    # A time exit (trade.close()) fills at the next bar's open, which is the closing candle's price.
    timed = (exit_bar - entry_row > w.TIME_EXIT_ROWS) | (exit_bar == n)
    exit_row = np.where(timed, exit_bar - 1, exit_bar)
    entry_price, exit_price = t["EntryPrice"].to_numpy(), t["ExitPrice"].to_numpy()
    # backtesting.py applies its spread (our slippage) on entry only; btk slips the exit too.
    # Converting its return to btk's cost model: subtract slippage * exit/entry * (1 - fee).
    pnl = t["ReturnPct"].to_numpy() * 100 - w.SLIPPAGE * exit_price / entry_price * (1 - w.FEE) * 100
    return (w.Trades.of(entry_row, exit_row, pnl), wall,
            f"trades {stats['# Trades']}, return {stats['Return [%]']:.4f} %, win rate {stats['Win Rate [%]']:.2f} %")


# --- vectorbt ----------------------------------------------------------------------------------

def _vectorbt(n: int) -> tuple[w.Trades, float, str]:
    try:
        import vectorbt as vbt
        from numba import njit
    except ImportError as e:
        raise Missing(str(e)) from None

    @njit
    def signal(c, entries, state, minutes):
        # state[0]: the row the open position was entered on
        if c.position_now > 0:
            if c.i - state[0] >= minutes:
                return False, True, False, False
            return False, False, False, False
        if entries[c.i]:
            state[0] = c.i
            return True, False, False, False
        return False, False, False, False

    @njit
    def keep_sl(c, minutes):
        # From the time limit's candle on, no stop: the signal closes the position at the price.
        return (np.nan, False) if c.i - c.init_i >= minutes else (c.curr_stop, c.curr_trail)

    @njit
    def keep_tp(c, minutes):
        return np.nan if c.i - c.init_i >= minutes else c.curr_stop

    def simulate(c: w.Candles) -> tuple[object, np.ndarray]:
        m = len(c.close)
        price = w.vwap(c)
        open_, high, low, close = w.price_bars(price)
        fast = vbt.MA.run(c.close, w.FAST).ma.to_numpy()
        slow = vbt.MA.run(c.close, w.SLOW).ma.to_numpy()
        entries = np.zeros(m, dtype=np.bool_)
        entries[1:] = (fast[:-1] <= slow[:-1]) & (fast[1:] > slow[1:])
        entries[:w.FIRST_ROW] = False
        entries[w.last_row(m) + 1:] = False
        pf = vbt.Portfolio.from_signals(
            close, signal_func_nb=signal, signal_args=(entries, np.zeros(1, dtype=np.int64), w.TIME_EXIT_ROWS),
            open=open_, high=high, low=low, sl_stop=w.STOP_LOSS, tp_stop=w.TAKE_PROFIT,
            stop_exit_price=vbt.portfolio.enums.StopExitPrice.StopMarket,
            adjust_sl_func_nb=keep_sl, adjust_sl_args=(w.TIME_EXIT_ROWS,),
            adjust_tp_func_nb=keep_tp, adjust_tp_args=(w.TIME_EXIT_ROWS,),
            # One unit a trade and cash that never runs out: with the whole balance reinvested, 58,000
            # losing-on-average trades over 10M candles spent it down to dust, and trading stopped.
            size=1.0, size_type="amount", init_cash=np.inf,
            fees=w.FEE, slippage=w.SLIPPAGE, freq="1min")
        return pf, price

    _ = simulate(w.candles(1000))[0].trades.records      # compile its numba functions first: not timed
    c = w.candles(n)
    started = time.perf_counter()
    pf, _ = simulate(c)
    records = pf.trades.records
    wall = time.perf_counter() - started
    return (w.Trades.of(records["entry_idx"], records["exit_idx"], records["return"] * 100), wall,
            f"trades {len(records)}, total return {pf.total_return() * 100:.4f} %")


_RUNNERS: dict[str, Callable[[int], tuple[w.Trades, float, str]]] = {
    "btk per-frame": _btk(False), "btk vectorised": _btk(True), "btk per-frame, numpy means": _btk(False, "numpy"),
    "btk per-frame, declared indicators": _btk(False, "indicators"),
    "numpy": _numpy,
    "backtesting.py": _backtesting_py, "vectorbt": _vectorbt,
}
