"""SMA crossover, long only, market entries (registered as ``sma_cross``).

Every 1m frame: when the 20-candle simple moving average of the close crosses
above the 50-candle one, buy at market (the current VWAP) with take-profit
+2 %, stop-loss -1 % and a 120-minute time limit.

Both averages and their previous values come from one window of 51 closes:
``slow_prev = sum(c[0:50])``, ``slow_now = slow_prev - c[0] + c[50]``, and the
same for the fast average over ``c[30:50]``. Cheap enough to run per frame.
"""

from __future__ import annotations

from datetime import datetime

import engine as bk

NAME = "sma_cross"
FAST, SLOW = 20, 50
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.02, 0.01, 120


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    closes = (await bk.get_candles(symbol, "1m", SLOW + 1)).close.tolist()
    slow_prev = sum(closes[0:SLOW])
    slow_now = slow_prev - closes[0] + closes[SLOW]
    fast_prev = sum(closes[SLOW - FAST:SLOW])
    fast_now = fast_prev - closes[SLOW - FAST] + closes[SLOW]
    # Compare sums scaled to means: fast/FAST vs slow/SLOW.
    if fast_prev * SLOW <= slow_prev * FAST and fast_now * SLOW > slow_now * FAST:
        price = await bk.get_average_price(symbol)
        return bk.SignalDto(position="long", price_take_profit=price * (1 + TAKE_PROFIT),
                            price_stop_loss=price * (1 - STOP_LOSS), minute_estimated_time=MINUTES,
                            note="SMA20 crossed above SMA50")
    return None


def register() -> None:
    bk.add_strategy(NAME, get_signal, interval="1m", note=__doc__.splitlines()[0])
