"""Position management: the rules of the commands that act on an open position or a scheduled
order (backtest-kit's ``commit*``), as pure functions of a signal row and the current price.

Each rule returns the row the command leaves, or a ``Refusal`` saying why it does not take
effect (no position, a trailing move that would loosen, a partial close above what is held...).
Arguments that can never be right (a percent outside (0, 100], a negative cost, NaN) raise
``ValueError``. ``ClientStrategy.commit`` applies a rule to its live row, persists the change with
its event, and emits it; the console previews a rule before asking for confirmation.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from .config import GlobalConfig
from .pnl import effective_price, invested, pnl_percentage, to_profit_loss, total_closed
from .types import CommitEvent, Entry, PartialClose, PnL, SignalRow

replace = msgspec.structs.replace

PARTIAL_CAP_TOLERANCE = 1 + 1e-9     # a partial close may reach 100 % of the money put in by rounding only
FULL_CLOSE_EPSILON = 1e-9            # what is left below this share of the money is nothing: the position closed

POSITION_ACTIONS = ("close_pending", "partial_profit", "partial_loss", "trailing_stop", "trailing_take", "breakeven",
                    "average_buy")
SCHEDULE_ACTIONS = ("cancel_scheduled", "activate_scheduled")
ACTIONS = SCHEDULE_ACTIONS + POSITION_ACTIONS


class Refusal(msgspec.Struct, frozen=True):
    """Why a command did not take effect."""

    reason: str


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_percent(percent: Any) -> float:
    p = _finite("percent_to_close", percent)
    if not 0 < p <= 100:
        raise ValueError(f"percent_to_close must be in (0, 100], got {percent!r}")
    return p


def check_shift(shift: Any) -> float:
    p = _finite("percent_shift", shift)
    if not -100 <= p <= 100 or p == 0:
        raise ValueError(f"percent_shift must be in [-100, 100] and not 0, got {shift!r}")
    return p


def check_cost(cost: Any) -> float | None:
    if cost is None:
        return None
    c = _finite("cost", cost)
    if c <= 0:
        raise ValueError(f"cost must be > 0, got {cost!r}")
    return c


def _long(row: SignalRow) -> bool:
    return row.position == "long"


def _in_profit(row: SignalRow, price: float) -> bool:
    return price > effective_price(row) if _long(row) else price < effective_price(row)


def held_percent(row: SignalRow) -> float:
    """The share of the money put in that is still held, in percent."""
    closed, _ = total_closed(row)
    return max(0.0, 100.0 - closed)


def breakeven_threshold(row: SignalRow, config: GlobalConfig) -> float:
    """The price past which moving the stop-loss to the entry is possible."""
    percent = (config.CC_PERCENT_SLIPPAGE + config.CC_PERCENT_FEE) * 2 + config.CC_BREAKEVEN_THRESHOLD
    entry = effective_price(row)
    return entry * (1 + percent / 100.0) if _long(row) else entry * (1 - percent / 100.0)


def breakeven_reached(row: SignalRow, price: float, config: GlobalConfig) -> bool:
    threshold = breakeven_threshold(row, config)
    return price >= threshold if _long(row) else price <= threshold


def partial_close(row: SignalRow, kind: str, percent: float, price: float, when: int,
                  config: GlobalConfig) -> SignalRow | Refusal:
    """Close ``percent`` of what is held at ``price`` (``kind``: profit or loss)."""
    long = _long(row)
    if not config.CC_ENABLE_PPPL_EVERYWHERE:
        entry = effective_price(row)
        if kind == "profit" and not _in_profit(row, price):
            return Refusal(f"a partial profit needs the price ({price:.8g}) {'above' if long else 'below'} the "
                           f"entry ({entry:.8g})")
        if kind == "loss" and (price >= entry if long else price <= entry):
            return Refusal(f"a partial loss needs the price ({price:.8g}) {'below' if long else 'above'} the "
                           f"entry ({entry:.8g})")
    if kind == "profit" and (price >= row.take_profit if long else price <= row.take_profit):
        return Refusal(f"the price ({price:.8g}) is already past the take-profit ({row.take_profit:.8g})")
    if kind == "loss" and (price <= row.stop_loss if long else price >= row.stop_loss):
        return Refusal(f"the price ({price:.8g}) is already past the stop-loss ({row.stop_loss:.8g})")
    closed, held = total_closed(row)
    total = invested(row)
    if (closed / 100.0) * total + percent / 100.0 * held > total * PARTIAL_CAP_TOLERANCE or held <= 0:
        return Refusal(f"closing {percent:g} % of what is held would close more than the position "
                       f"({held_percent(row):.4g} % of it is held)")
    entries = row.entries or (Entry(row.price_open, total),)
    close = PartialClose(kind, percent, price, held, len(entries), when)
    return replace(row, entries=entries, partials=row.partials + (close,))


def realised(row: SignalRow, before: SignalRow) -> PnL:
    """What the newest partial close of ``row`` realised: its share's PnL at its price."""
    close = row.partials[-1]
    entry = effective_price(before)
    percent = pnl_percentage(row.position, entry, close.price)
    money = close.percent / 100.0 * close.cost_basis
    return PnL(percent, entry, close.price, percent / 100.0 * money, money)


def fully_closed(row: SignalRow) -> bool:
    _, held = total_closed(row)
    return held <= invested(row) * FULL_CLOSE_EPSILON


def trailing_stop(row: SignalRow, shift: float, price: float, config: GlobalConfig) -> SignalRow | Refusal:
    """Move the stop-loss to the original distance from the entry plus ``shift`` percent (negative:
    closer, into profit past the entry). Only tightens, unless CC_ENABLE_TRAILING_EVERYWHERE."""
    entry = effective_price(row)
    long = _long(row)
    distance = abs((entry - row.price_stop_loss) / entry * 100.0) + shift
    new = entry * (1 - distance / 100.0) if long else entry * (1 + distance / 100.0)
    if new <= 0:
        return Refusal(f"a shift of {shift:g} % puts the stop-loss at {new:.8g}, not a price")
    if price < new if long else price > new:
        return Refusal(f"the new stop-loss ({new:.8g}) is past the price ({price:.8g}): it would close at once")
    if new >= row.take_profit if long else new <= row.take_profit:
        return Refusal(f"the new stop-loss ({new:.8g}) is past the take-profit ({row.take_profit:.8g})")
    if row.trailing_stop_loss is not None and not config.CC_ENABLE_TRAILING_EVERYWHERE:
        if new <= row.trailing_stop_loss if long else new >= row.trailing_stop_loss:
            return Refusal(f"the new stop-loss ({new:.8g}) would loosen the trailed one "
                           f"({row.trailing_stop_loss:.8g}): a trailing stop only tightens")
    return replace(row, trailing_stop_loss=new)


def trailing_take(row: SignalRow, shift: float, price: float, config: GlobalConfig) -> SignalRow | Refusal:
    """Move the take-profit to the original distance from the entry plus ``shift`` percent. Only
    moves it closer to the entry (more conservative), unless CC_ENABLE_TRAILING_EVERYWHERE."""
    entry = effective_price(row)
    long = _long(row)
    distance = abs((row.price_take_profit - entry) / entry * 100.0) + shift
    new = entry * (1 + distance / 100.0) if long else entry * (1 - distance / 100.0)
    if new <= 0:
        return Refusal(f"a shift of {shift:g} % puts the take-profit at {new:.8g}, not a price")
    if price > new if long else price < new:
        return Refusal(f"the new take-profit ({new:.8g}) is past the price ({price:.8g}): it would close at once")
    if new <= row.stop_loss if long else new >= row.stop_loss:
        return Refusal(f"the new take-profit ({new:.8g}) is past the stop-loss ({row.stop_loss:.8g})")
    if row.trailing_take_profit is not None and not config.CC_ENABLE_TRAILING_EVERYWHERE:
        if new >= row.trailing_take_profit if long else new <= row.trailing_take_profit:
            return Refusal(f"the new take-profit ({new:.8g}) is farther than the trailed one "
                           f"({row.trailing_take_profit:.8g}): a trailing take only comes closer")
    return replace(row, trailing_take_profit=new)


def breakeven(row: SignalRow, price: float, config: GlobalConfig) -> SignalRow | Refusal:
    """Move the stop-loss to the effective entry, once the price passed the breakeven threshold."""
    entry = effective_price(row)
    long = _long(row)
    stop = row.stop_loss
    if long and stop >= entry or not long and stop <= entry:
        return Refusal(f"the stop-loss ({stop:.8g}) already protects the entry ({entry:.8g})")
    threshold = breakeven_threshold(row, config)
    if not breakeven_reached(row, price, config):
        return Refusal(f"breakeven needs the price past {threshold:.8g} (now {price:.8g})")
    return replace(row, trailing_stop_loss=entry)


def average_buy(row: SignalRow, price: float, cost: float, when: int, config: GlobalConfig) -> SignalRow | Refusal:
    """Buy more at ``price`` for ``cost``: a long only below its lowest entry, a short only above its
    highest (unless CC_ENABLE_DCA_EVERYWHERE)."""
    entries = row.entries or (Entry(row.price_open, invested(row)),)
    if not config.CC_ENABLE_DCA_EVERYWHERE:
        if _long(row) and price >= min(e.price for e in entries):
            return Refusal(f"a long averages only below its lowest entry ({min(e.price for e in entries):.8g}); "
                           f"the price is {price:.8g}")
        if not _long(row) and price <= max(e.price for e in entries):
            return Refusal(f"a short averages only above its highest entry ({max(e.price for e in entries):.8g}); "
                           f"the price is {price:.8g}")
    return replace(row, entries=entries + (Entry(price, cost),))


class CommitResult(msgspec.Struct, frozen=True):
    """What a command did: truthy when it took effect (then ``event`` is its ``CommitEvent``),
    falsy with ``reason`` when it did not."""

    ok: bool
    reason: str = ""
    event: CommitEvent | None = None

    def __bool__(self) -> bool:
        return self.ok


class CommitPreview(msgspec.Struct, frozen=True):
    """What a command would do now, without doing it (the console's confirmation): the price it
    acts at, the row it would leave (None: the position or order would be gone), what a close
    would realise, or why it would not take effect."""

    action: str
    ok: bool
    current_price: float
    reason: str = ""
    signal: SignalRow | None = None
    after: SignalRow | None = None
    pnl: PnL | None = None


def check_arguments(action: str, percent: Any = None, cost: Any = None) -> tuple[float | None, float | None]:
    """``(percent, cost)`` of ``action`` checked (a ValueError says what is wrong): they can be
    judged without a position, so a bad call is told even when there is none."""
    if action not in ACTIONS:
        raise ValueError(f"unknown command {action!r}; one of {', '.join(ACTIONS)}")
    if action in ("partial_profit", "partial_loss"):
        return check_percent(percent), None
    if action in ("trailing_stop", "trailing_take"):
        return check_shift(percent), None
    if action == "average_buy":
        return None, check_cost(cost)
    return None, None


def plan(action: str, row: SignalRow, price: float, when: int, config: GlobalConfig, *,
         percent: float | None = None, cost: float | None = None) -> tuple[SignalRow, PnL | None] | Refusal:
    """The row ``action`` leaves (its commit counted) and what it realises, or why it does not take
    effect. For ``close_pending`` and ``cancel_scheduled`` the row is the one that goes."""
    percent, cost = check_arguments(action, percent, cost)
    realised_pnl = None
    if action in ("cancel_scheduled", "activate_scheduled"):
        after: SignalRow | Refusal = row
    elif action == "close_pending":
        after = row
        realised_pnl = to_profit_loss(row, price)
    elif action in ("partial_profit", "partial_loss"):
        after = partial_close(row, action.removeprefix("partial_"), percent, price, when, config)  # type: ignore[arg-type]
        if not isinstance(after, Refusal):
            realised_pnl = realised(after, row)
    elif action == "trailing_stop":
        after = trailing_stop(row, percent, price, config)  # type: ignore[arg-type]
    elif action == "trailing_take":
        after = trailing_take(row, percent, price, config)  # type: ignore[arg-type]
    elif action == "breakeven":
        after = breakeven(row, price, config)
    else:                                   # average_buy
        after = average_buy(row, price, cost or config.CC_POSITION_ENTRY_COST, when, config)
    if isinstance(after, Refusal):
        return after
    return replace(after, commits=row.commits + 1), realised_pnl
