"""SMA crossover, long only, market entries.

Registered as ``sma_cross``.

Every 1m frame: when the 20-candle simple moving average of the close crosses
above the 50-candle one, buy at market (the current VWAP) with take-profit
+2 %, stop-loss -1 % and a 120-minute time limit.

Two ways to the same entries. ``get_signal`` decides frame by frame from a
window of 51 closes and its running sums ``cs`` (``slow_prev = cs[49]``,
``slow_now = cs[50] - cs[0]``, the fast sums likewise over the last 20).
``get_signals`` decides every frame of a backtest at once: fast window sums
with an error bound, and the per-frame arithmetic redone exactly on the few
rows too close to call, so both give the same trades (tests/test_vectorised.py).
"""

from __future__ import annotations

from datetime import datetime
from itertools import accumulate

import numpy as np

import engine as bk
from engine.windows import BlockSums, window_prefix_sums

NAME = "sma_cross"
FAST, SLOW = 20, 50
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.02, 0.01, 120


def _check(fast: int, slow: int) -> None:
    if not 0 < fast < slow:
        raise TypeError(f"sma_cross needs 0 < fast < slow, got fast={fast}, slow={slow}")


def crossed_up(cs, fast: int, slow: int):
    """From the running sums of the last ``slow + 1`` closes (one window, or a column per row):
    did the fast average cross above the slow one on the newest close? Sums stand in for the
    means: fast_sum/fast vs slow_sum/slow, compared as fast_sum*slow vs slow_sum*fast."""
    slow_prev, slow_now = cs[slow - 1], cs[slow] - cs[0]
    fast_prev, fast_now = cs[slow - 1] - cs[slow - fast - 1], cs[slow] - cs[slow - fast]
    return (fast_prev * slow <= slow_prev * fast) & (fast_now * slow > slow_now * fast)


def make_signal(fast: int = FAST, slow: int = SLOW, take_profit: float = TAKE_PROFIT, stop_loss: float = STOP_LOSS,
                minutes: int = MINUTES):
    """``get_signal`` for one parameter set (the sweep ``sma_cross[fast=..,slow=..]`` calls this)."""
    _check(fast, slow)
    note = f"SMA{fast} crossed above SMA{slow}"

    async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
        closes = (await bk.get_candles(symbol, "1m", slow + 1)).close.tolist()
        if crossed_up(list(accumulate(closes)), fast, slow):
            price = await bk.get_average_price(symbol)
            return bk.SignalDto(position="long", price_take_profit=price * (1 + take_profit),
                                price_stop_loss=price * (1 - stop_loss), minute_estimated_time=minutes, note=note)
        return None

    return get_signal


_U = np.finfo(np.float64).eps / 2


def make_signals(fast: int = FAST, slow: int = SLOW, take_profit: float = TAKE_PROFIT, stop_loss: float = STOP_LOSS,
                 minutes: int = MINUTES):
    """``get_signals``: the entries of ``make_signal(...)`` for a whole backtest frame at once."""
    _check(fast, slow)
    note = f"SMA{fast} crossed above SMA{slow}"

    async def get_signals(symbol: str, frame: bk.SignalFrame) -> bk.Signals:
        candles, newest = await frame.candles("1m", slow + 1)
        close = candles.close
        sums = BlockSums(close)
        # How far d (below) may be from what get_signal computes: the sums' bound, plus
        # get_signal's own rounding (running sums of 51 closes, two differences, the products) and ours.
        e = sums.bound_unit * (slow + fast) + 512 * _U * (slow + fast) * slow * float(close.max())
        above, below = np.empty(len(close), dtype=bool), np.empty(len(close), dtype=bool)
        for a, b, (fast_sums, slow_sums) in sums.chunks((fast, slow)):
            # d[j] > 0: the fast average is above the slow one after candle j (sums for means, as above).
            fast_sums *= slow
            slow_sums *= fast
            d = np.subtract(fast_sums, slow_sums, out=fast_sums)
            np.greater(d, e, out=above[a:b])
            np.less(d, -e, out=below[a:b])
        crossed = np.zeros(len(close), dtype=bool)
        np.logical_and(below[:-1], above[1:], out=crossed[1:])
        # Neither surely crossed nor surely not (too close to call on either candle): redo
        # get_signal's arithmetic on those windows.
        unsure = np.zeros(len(close), dtype=bool)
        unsure[1:] = ~above[:-1] & ~below[1:] & ~crossed[1:]
        crossed = crossed[newest]
        check = np.flatnonzero(unsure[newest])
        if len(check):
            cs = window_prefix_sums(close, newest[check], slow + 1)
            crossed[check] = crossed_up(cs.T, fast, slow)
        rows = np.flatnonzero(crossed)
        price = frame.price[rows]        # one value per signal
        return bk.Signals(long=crossed, price_take_profit=price * (1 + take_profit),
                          price_stop_loss=price * (1 - stop_loss), minute_estimated_time=minutes, note=note)

    return get_signals


get_signal = make_signal()
get_signals = make_signals()


def register(risk_list: tuple[str, ...] = ()) -> None:
    bk.add_strategy(NAME, get_signal, interval="1m", note=__doc__.splitlines()[0], get_signals=get_signals,
                    risk_list=risk_list)
