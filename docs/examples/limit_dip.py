"""Buy the dip with a limit order: the same trigger as dip.py, but the entry waits 0.3 % lower as
a scheduled order (cancelled after CC_SCHEDULE_AWAIT_MINUTES, or if the price reaches the stop
first), and a portfolio risk profile allows at most 2 open positions across every strategy that
names it.

Run it:  btk --load limit_dip.py backtest limit_dip --symbol BTCUSDT
"""

from __future__ import annotations

from datetime import datetime

import engine as bk

LOOKBACK = 30
BELOW = 0.003                       # the limit price: 0.3 % under the current VWAP
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.012, 0.01, 120


def at_most_two_open(args: bk.RiskCheckArgs) -> str | None:
    """A risk validation: a text (the rejection's note) says no, None says yes."""
    if args.active_position_count >= 2:
        return f"{args.active_position_count} positions already open"
    return None


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    close = (await bk.get_candles(symbol, "1m", LOOKBACK + 1)).close
    if close[-1] >= close[:-1].min():
        return None
    price = await bk.get_average_price(symbol)
    entry = price * (1 - BELOW)
    return bk.SignalDto(position="long", price_open=entry, price_take_profit=entry * (1 + TAKE_PROFIT),
                        price_stop_loss=entry * (1 - STOP_LOSS), minute_estimated_time=MINUTES,
                        note="limit below a new 30-minute low")


bk.add_risk("two_open", validations=[{"validate": at_most_two_open, "note": "at most 2 open positions"}])
bk.add_strategy("limit_dip", get_signal, interval="5m", risk_name="two_open",
                note="a limit order under a new 30-minute low")
