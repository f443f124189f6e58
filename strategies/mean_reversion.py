"""Mean reversion with limit entries that wait as scheduled orders.

Registered as ``mean_reversion``.

Every 5 minutes: when the last close is more than 2 standard deviations
from its 60-candle mean, place a limit order back toward the mean, 0.3 %
beyond the current VWAP, so it only fills on a further stretch:
long below the band (buy lower), short above it (sell higher). The order waits
as a scheduled signal (cancelled after ``CC_SCHEDULE_AWAIT_MINUTES``, or if
price reaches the stop first). Take-profit at the mean (at least 0.6 % away),
stop-loss 1.2 % beyond the entry, 240-minute limit once filled.
"""

from __future__ import annotations

from datetime import datetime


import engine as bk

NAME = "mean_reversion"
WINDOW, BAND = 60, 2.0
ENTRY_OFFSET, MIN_TARGET, STOP, MINUTES = 0.003, 0.006, 0.012, 240


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    close = (await bk.get_candles(symbol, "1m", WINDOW)).close
    mean, std = float(close.mean()), float(close.std())
    last = float(close[-1])
    if std == 0.0 or abs(last - mean) < BAND * std:
        return None
    price = await bk.get_average_price(symbol)
    if last < mean:
        entry = price * (1 - ENTRY_OFFSET)
        target = max(mean, entry * (1 + MIN_TARGET))
        return bk.SignalDto(position="long", price_open=entry, price_take_profit=target,
                            price_stop_loss=entry * (1 - STOP), minute_estimated_time=MINUTES,
                            note=f"close {BAND:g} sd below its {WINDOW}m mean")
    entry = price * (1 + ENTRY_OFFSET)
    target = min(mean, entry * (1 - MIN_TARGET))
    return bk.SignalDto(position="short", price_open=entry, price_take_profit=target,
                        price_stop_loss=entry * (1 + STOP), minute_estimated_time=MINUTES,
                        note=f"close {BAND:g} sd above its {WINDOW}m mean")


def register(risk_list: tuple[str, ...] = ()) -> None:
    bk.add_strategy(NAME, get_signal, interval="5m", note=__doc__.splitlines()[0], risk_list=risk_list)
