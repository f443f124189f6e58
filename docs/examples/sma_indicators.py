"""SMA crossover with declared indicators: when the 20-candle average of the 1m close crosses above
the 50-candle one, go long at market, take-profit +2 %, stop-loss -1 %, 120 minutes.

The averages are declared once; a backtest computes each over the whole series in one numpy call
and every frame reads a view, so get_signal stays cheap; live computes them each tick over the
last `startup` candles. `btk check sma_indicators` proves both give the same values.

Run it:  btk --load sma_indicators.py backtest sma_indicators --symbol BTCUSDT
         btk --load sma_indicators.py check sma_indicators --symbol BTCUSDT
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

import engine as bk

FAST, SLOW = 20, 50
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.02, 0.01, 120


def sma(values: np.ndarray, n: int) -> np.ndarray:
    """The mean of each n values, NaN before the first full window. Each window is summed on its
    own, so the value is the same over a whole series or over the last n candles alone."""
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        out[n - 1:] = np.convolve(values, np.ones(n) / n, "valid")
    return out


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    ind = await bk.get_indicators()          # each through the newest closed candle, read-only
    fast, slow = ind.fast, ind.slow
    if fast[-2] <= slow[-2] and fast[-1] > slow[-1]:
        price = await bk.get_average_price(symbol)
        return bk.SignalDto(position="long", price_take_profit=price * (1 + TAKE_PROFIT),
                            price_stop_loss=price * (1 - STOP_LOSS), minute_estimated_time=MINUTES)
    return None


# Two values each (now and a candle before): the slow one needs SLOW + 1 closes.
bk.add_strategy("sma_indicators", get_signal, note="SMA(20/50) crossover on declared indicators", indicators={
    "fast": bk.Indicator(lambda c: sma(c.close, FAST), startup=FAST + 1),
    "slow": bk.Indicator(lambda c: sma(c.close, SLOW), startup=SLOW + 1),
})
