"""Channel breakout, both directions, market entries.

Registered as ``channel_breakout``.

Every 15 minutes, on 15m candles: when the last close breaks out of the
high/low channel of the 24 candles before it (6 hours), follow the breakout
at market: long above the channel, short below it. Take-profit 1.5 %,
stop-loss at the channel's middle (clamped to 0.4 %-3 % from the entry),
8-hour limit.
"""

from __future__ import annotations

from datetime import datetime

import engine as bk

NAME = "channel_breakout"
CHANNEL, TAKE_PROFIT, MIN_STOP, MAX_STOP, MINUTES = 24, 0.015, 0.004, 0.03, 480


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    candles = await bk.get_candles(symbol, "15m", CHANNEL + 1)
    top, bottom = float(candles.high[:-1].max()), float(candles.low[:-1].min())
    last = float(candles.close[-1])
    middle = (top + bottom) / 2
    if bottom <= last <= top:
        return None
    price = await bk.get_average_price(symbol)
    if last > top:
        stop = min(max(middle, price * (1 - MAX_STOP)), price * (1 - MIN_STOP))
        return bk.SignalDto(position="long", price_take_profit=price * (1 + TAKE_PROFIT), price_stop_loss=stop,
                            minute_estimated_time=MINUTES, note="close above the 6h channel")
    stop = max(min(middle, price * (1 + MAX_STOP)), price * (1 + MIN_STOP))
    return bk.SignalDto(position="short", price_take_profit=price * (1 - TAKE_PROFIT), price_stop_loss=stop,
                        minute_estimated_time=MINUTES, note="close below the 6h channel")


def register(risk_list: tuple[str, ...] = ()) -> None:
    bk.add_strategy(NAME, get_signal, interval="15m", note=__doc__.splitlines()[0], risk_list=risk_list)
