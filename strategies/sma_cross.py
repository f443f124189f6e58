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


def make_signal(fast: int = FAST, slow: int = SLOW, take_profit: float = TAKE_PROFIT, stop_loss: float = STOP_LOSS,
                minutes: int = MINUTES):
    """``get_signal`` for one parameter set (the sweep ``sma_cross[fast=..,slow=..]`` calls this)."""
    if not 0 < fast < slow:
        raise TypeError(f"sma_cross needs 0 < fast < slow, got fast={fast}, slow={slow}")
    note = f"SMA{fast} crossed above SMA{slow}"

    async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
        closes = (await bk.get_candles(symbol, "1m", slow + 1)).close.tolist()
        slow_prev = sum(closes[0:slow])
        slow_now = slow_prev - closes[0] + closes[slow]
        fast_prev = sum(closes[slow - fast:slow])
        fast_now = fast_prev - closes[slow - fast] + closes[slow]
        # Compare sums scaled to means: fast_sum/fast vs slow_sum/slow.
        if fast_prev * slow <= slow_prev * fast and fast_now * slow > slow_now * fast:
            price = await bk.get_average_price(symbol)
            return bk.SignalDto(position="long", price_take_profit=price * (1 + take_profit),
                                price_stop_loss=price * (1 - stop_loss), minute_estimated_time=minutes, note=note)
        return None

    return get_signal


get_signal = make_signal()


def register() -> None:
    bk.add_strategy(NAME, get_signal, interval="1m", note=__doc__.splitlines()[0])
