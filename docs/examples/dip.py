"""Buy the dip: when the last 1m close is below every one of the 30 before it, go long at market
with take-profit +1 %, stop-loss -1 % and a 60-minute limit. Asked every 5 minutes.

Run it:  btk --load dip.py backtest dip --symbol BTCUSDT
         btk --load dip.py live dip --symbol BTCUSDT --speed 6000      (paper trading on a replay)
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

import engine as bk

LOOKBACK = 30                       # closes the newest one must undercut
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.01, 0.01, 60
NOTE = "new 30-minute low"


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    """Per frame: the engine calls this at each 5-minute slot with the time it stands at."""
    close = (await bk.get_candles(symbol, "1m", LOOKBACK + 1)).close     # closed candles only
    if close[-1] >= close[:-1].min():
        return None
    price = await bk.get_average_price(symbol)                           # the VWAP of the last 5 candles
    return bk.SignalDto(position="long", price_take_profit=price * (1 + TAKE_PROFIT),
                        price_stop_loss=price * (1 - STOP_LOSS), minute_estimated_time=MINUTES, note=NOTE)


async def get_signals(symbol: str, frame: bk.SignalFrame) -> bk.Signals:
    """The same decisions for a whole backtest frame at once (row k: frame.times[k])."""
    candles, newest = await frame.candles("1m", lookback=LOOKBACK + 1)
    close = candles.close
    # lows[j]: the lowest of close[j .. j + LOOKBACK - 1]; the LOOKBACK closes before the newest
    # of row k start at newest[k] - LOOKBACK. min is exact, so both paths decide alike, ties too.
    lows = np.lib.stride_tricks.sliding_window_view(close, LOOKBACK).min(axis=1)
    dip = close[newest] < lows[newest - LOOKBACK]
    price = frame.price[dip]                                              # one value per signal
    return bk.Signals(long=dip, price_take_profit=price * (1 + TAKE_PROFIT),
                      price_stop_loss=price * (1 - STOP_LOSS), minute_estimated_time=MINUTES, note=NOTE)


bk.add_strategy("dip", get_signal, interval="5m", get_signals=get_signals,
                note="buys a new 30-minute low at market")
