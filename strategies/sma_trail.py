"""SMA crossover that manages its position: half off in profit, then a trailing stop.

Registered as ``sma_trail``.

The entries of ``sma_cross`` (the 20-candle SMA crossing above the 50), with room to run:
take-profit +3 %, stop-loss -1.5 %, a 240-minute limit. Each minute the position is open
(``on_active_ping``) it acts on it with position commands:

* at +1 % from the entry: close half (``commit_partial_profit``) and move the stop-loss to the
  entry (``commit_breakeven``): what is left cannot lose;
* from +1.5 % on: trail the stop-loss 1 % under the price (``commit_trailing_stop``; a trailing
  stop only tightens, so a pull-back leaves it where it was).

Every command it makes shows in the console's log and in the position's row (entry, share
held, the trailed stop-loss).
"""

from __future__ import annotations

from datetime import datetime

import engine as bk
from engine.pnl import effective_price

from .sma_cross import make_signal

NAME = "sma_trail"
TAKE_PROFIT, STOP_LOSS, MINUTES = 0.03, 0.015, 240
HALF_AT, TRAIL_FROM, TRAIL_GAP = 1.0, 1.5, 1.0      # percent of the entry


async def on_active_ping(symbol: str, signal: bk.SignalRow, price: float, backtest: bool) -> None:
    entry = effective_price(signal)
    gain = (price - entry) / entry * 100.0
    if gain >= HALF_AT and not signal.partials:
        if await bk.commit_partial_profit(symbol, 50):
            await bk.commit_breakeven(symbol)
    elif gain >= TRAIL_FROM:
        # The stop TRAIL_GAP under the price, as a shift of the original stop's distance.
        original = (entry - signal.price_stop_loss) / entry * 100.0
        target = gain - TRAIL_GAP
        if signal.stop_loss < entry * (1 + target / 100.0):
            await bk.commit_trailing_stop(symbol, -(original + target))


_entries = make_signal(take_profit=TAKE_PROFIT, stop_loss=STOP_LOSS, minutes=MINUTES)


async def get_signal(symbol: str, when: datetime) -> bk.SignalDto | None:
    """sma_cross's entries with this strategy's levels (a function of this module: a walker's
    worker process imports it by name)."""
    return await _entries(symbol, when)


def register(risk_list: tuple[str, ...] = ()) -> None:
    bk.add_strategy(NAME, get_signal, interval="1m", note=__doc__.splitlines()[0], risk_list=risk_list,
                    callbacks=bk.StrategyCallbacks(on_active_ping=on_active_ping))
