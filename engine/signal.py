"""Signal validation (SEMANTICS.md section 3.1): every problem in one message."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import GlobalConfig
from .types import SignalDto, is_finite_number


class SignalValidationError(ValueError):
    """A signal was dropped; ``problems`` lists every rule it broke."""

    def __init__(self, strategy_name: str, symbol: str, problems: list[str]):
        self.problems = problems
        listed = "\n".join(f"  {i}. {p}" for i, p in enumerate(problems, 1))
        super().__init__(f"signal of {strategy_name} on {symbol} rejected: {len(problems)} problem(s):\n{listed}")


def signal_problems(dto: Any, *, current_price: float, scheduled: bool, config: GlobalConfig) -> list[str]:
    """Every rule ``dto`` breaks. ``scheduled``: the entry waits for ``price_open``;
    otherwise it opens now (market or immediate) and must not close at once."""
    if not isinstance(dto, SignalDto):
        return [f"get_signal must return a SignalDto or None, got {type(dto).__name__}"]
    p: list[str] = []
    if dto.position not in ("long", "short"):
        p.append(f"position must be 'long' or 'short', got {dto.position!r}")
    open_ = dto.price_open if dto.price_open is not None else current_price
    for name, v in (("price_take_profit", dto.price_take_profit), ("price_stop_loss", dto.price_stop_loss),
                    ("price_open", open_)):
        if not is_finite_number(v):
            p.append(f"{name} must be a finite number, got {v!r}")
        elif v <= 0:
            p.append(f"{name} must be > 0, got {v!r}")
    if not is_finite_number(current_price) or current_price <= 0:
        p.append(f"current price must be a finite number > 0, got {current_price!r}")
    problem = minutes_problem(dto.minute_estimated_time, config)
    if problem:
        p.append(problem)
    if p:
        return p

    tp, sl = dto.price_take_profit, dto.price_stop_loss
    long = dto.position == "long"
    if long and not (tp > open_ > sl):
        p.append(f"long needs price_take_profit > price_open > price_stop_loss, got TP {tp:g}, open {open_:g}, SL {sl:g}")
    if not long and not (sl > open_ > tp):
        p.append(f"short needs price_stop_loss > price_open > price_take_profit, got SL {sl:g}, open {open_:g}, TP {tp:g}")
    if not scheduled:
        if long and not (sl < current_price < tp):
            p.append(f"long would close at once: current price {current_price:g} is not between "
                     f"SL {sl:g} and TP {tp:g}")
        if not long and not (tp < current_price < sl):
            p.append(f"short would close at once: current price {current_price:g} is not between "
                     f"TP {tp:g} and SL {sl:g}")
    tp_dist = abs(tp - open_) / open_ * 100.0
    sl_dist = abs(open_ - sl) / open_ * 100.0
    if config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT > 0 and tp_dist < config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT:
        p.append(f"take-profit is {tp_dist:.4g}% from the entry, below CC_MIN_TAKEPROFIT_DISTANCE_PERCENT "
                 f"{config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT:g}% (it cannot cover fees and slippage)")
    if config.CC_MIN_STOPLOSS_DISTANCE_PERCENT > 0 and sl_dist < config.CC_MIN_STOPLOSS_DISTANCE_PERCENT:
        p.append(f"stop-loss is {sl_dist:.4g}% from the entry, below CC_MIN_STOPLOSS_DISTANCE_PERCENT "
                 f"{config.CC_MIN_STOPLOSS_DISTANCE_PERCENT:g}%")
    if config.CC_MAX_STOPLOSS_DISTANCE_PERCENT > 0 and sl_dist > config.CC_MAX_STOPLOSS_DISTANCE_PERCENT:
        p.append(f"stop-loss is {sl_dist:.4g}% from the entry, beyond CC_MAX_STOPLOSS_DISTANCE_PERCENT "
                 f"{config.CC_MAX_STOPLOSS_DISTANCE_PERCENT:g}%")
    return p


def minutes_problem(met: Any, config: GlobalConfig) -> str | None:
    """What is wrong with a signal's ``minute_estimated_time`` (None: nothing)."""
    lifetime = config.CC_MAX_SIGNAL_LIFETIME_MINUTES
    if met is None:
        return None
    if isinstance(met, bool) or not isinstance(met, (int, float)):
        return f"minute_estimated_time must be a positive integer, got {met!r}"
    if math.isinf(met) and met > 0:
        if not math.isinf(lifetime):
            return (f"minute_estimated_time may be infinite only when CC_MAX_SIGNAL_LIFETIME_MINUTES is "
                    f"(it is {lifetime:g})")
        return None
    if not (math.isfinite(met) and float(met).is_integer() and met > 0):
        return f"minute_estimated_time must be a positive integer, got {met!r}"
    if met > lifetime:
        return f"minute_estimated_time {met:g} exceeds CC_MAX_SIGNAL_LIFETIME_MINUTES {lifetime:g}"
    return None


def row_minutes(value: float | None, config: GlobalConfig) -> float:
    """``minute_estimated_time`` as a signal row stores it: whole minutes, inf, or the
    configured maximum for None."""
    if value is None:
        return config.CC_MAX_SIGNAL_LIFETIME_MINUTES
    return value if math.isinf(value) else int(value)


def valid_minutes(minutes: np.ndarray, config: GlobalConfig) -> np.ndarray:
    """``minutes_problem`` for many values at once: True where it finds nothing."""
    lifetime = config.CC_MAX_SIGNAL_LIFETIME_MINUTES
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(minutes) & (minutes > 0) & (np.trunc(minutes) == minutes) & (minutes <= lifetime)
        return whole | (np.isposinf(minutes) & math.isinf(lifetime))


def valid_market_signals(*, long: np.ndarray, take_profit: np.ndarray, stop_loss: np.ndarray, price: np.ndarray,
                         minutes: np.ndarray | float | None, config: GlobalConfig) -> np.ndarray:
    """For many market signals at once (opening at ``price``): True where ``signal_problems``
    would find nothing. The same comparisons on the same doubles, so a True here may skip the
    check row by row; a False sends that row through it (for its messages). ``minutes``: one
    value for every row (None: the default) or one per row."""
    return valid_signals(long=long, take_profit=take_profit, stop_loss=stop_loss, price=price, minutes=minutes,
                         config=config)


def valid_signals(*, long: np.ndarray, take_profit: np.ndarray, stop_loss: np.ndarray, price: np.ndarray,
                  minutes: np.ndarray | float | None, config: GlobalConfig,
                  price_open: np.ndarray | None = None) -> np.ndarray:
    """``valid_market_signals`` for signals that may be limit orders too: ``price_open`` per row
    (NaN: a market entry at ``price``). A limit order whose price is not reached yet waits
    (scheduled: judged on its own levels); one already reached opens now and must not close at
    once, as ``signal_problems`` rules."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if price_open is None:
            open_, scheduled = price, None
        else:
            market = np.isnan(price_open)
            open_ = np.where(market, price, price_open)
            scheduled = ~market & ~np.where(long, price <= price_open, price >= price_open)
        ok = np.isfinite(take_profit) & np.isfinite(stop_loss) & np.isfinite(open_) & np.isfinite(price)
        ok &= (take_profit > 0) & (stop_loss > 0) & (open_ > 0) & (price > 0)
        if isinstance(minutes, np.ndarray):
            ok &= valid_minutes(minutes.astype(np.float64), config)
        elif minutes_problem(minutes, config):
            return np.zeros(len(price), dtype=bool)      # minutes is wrong for every row
        ok &= np.where(long, (take_profit > open_) & (open_ > stop_loss), (stop_loss > open_) & (open_ > take_profit))
        if scheduled is not None:     # an entry now must not close at once (a market one: the line above)
            at_once = np.where(long, (stop_loss < price) & (price < take_profit),
                               (take_profit < price) & (price < stop_loss))
            ok &= scheduled | at_once
        tp_dist = np.abs(take_profit - open_) / open_ * 100.0
        sl_dist = np.abs(open_ - stop_loss) / open_ * 100.0
        if config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT > 0:
            ok &= ~(tp_dist < config.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT)
        if config.CC_MIN_STOPLOSS_DISTANCE_PERCENT > 0:
            ok &= ~(sl_dist < config.CC_MIN_STOPLOSS_DISTANCE_PERCENT)
        if config.CC_MAX_STOPLOSS_DISTANCE_PERCENT > 0:
            ok &= ~(sl_dist > config.CC_MAX_STOPLOSS_DISTANCE_PERCENT)
    return ok
