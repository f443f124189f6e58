"""Position sizing, advisory (SEMANTICS.md section 8).

fixed-percentage ``qty = balance*risk%/100 / |open - SL|``; kelly
``k = (p*W - (1-p))/W``, ``qty = balance*max(0,k)*multiplier/open``; atr-based
``qty = balance*risk%/100 / (atr*multiplier)``. Then ``max(qty, min_size)``,
``min(qty, balance*max_pct/100/open)``, ``min(qty, max_size)``.
"""

from __future__ import annotations

import math
from typing import Any

from .registry import SizingSchema, get_sizing


def _number(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _schema(sizing_name: str, method: str) -> SizingSchema:
    schema = get_sizing(sizing_name)
    if schema.method != method:
        raise ValueError(f"sizing {sizing_name!r} uses method {schema.method}, not {method}")
    return schema


def _limits(qty: float, schema: SizingSchema, balance: float, price_open: float, params: dict[str, Any]) -> float:
    if schema.min_position_size is not None:
        qty = max(qty, schema.min_position_size)
    if schema.max_position_percentage is not None:
        qty = min(qty, balance * schema.max_position_percentage / 100.0 / price_open)
    if schema.max_position_size is not None:
        qty = min(qty, schema.max_position_size)
    if schema.callbacks.on_calculate is not None:
        schema.callbacks.on_calculate(qty, params)
    return qty


class PositionSize:
    @staticmethod
    def fixed_percentage(balance: float, price_open: float, price_stop_loss: float, *, sizing_name: str) -> float:
        schema = _schema(sizing_name, "fixed-percentage")
        balance, price_open = _number("balance", balance), _number("price_open", price_open)
        price_stop_loss = _number("price_stop_loss", price_stop_loss)
        if price_stop_loss == price_open:
            raise ValueError("price_stop_loss must differ from price_open")
        qty = balance * schema.risk_percentage / 100.0 / abs(price_open - price_stop_loss)  # type: ignore[operator]
        return _limits(qty, schema, balance, price_open, {"method": schema.method, "balance": balance,
                                                          "price_open": price_open, "price_stop_loss": price_stop_loss})

    @staticmethod
    def kelly_criterion(balance: float, price_open: float, win_rate: float, win_loss_ratio: float, *,
                        sizing_name: str) -> float:
        schema = _schema(sizing_name, "kelly-criterion")
        balance, price_open = _number("balance", balance), _number("price_open", price_open)
        p = _number("win_rate", win_rate, positive=False)
        if not 0 <= p <= 1:
            raise ValueError(f"win_rate must be a probability in [0, 1], got {win_rate!r}")
        w = _number("win_loss_ratio", win_loss_ratio)
        k = (p * (w + 1) - 1) / w   # = (p*W - (1-p))/W, with one rounding fewer
        qty = balance * max(0.0, k) * schema.kelly_multiplier / price_open
        return _limits(qty, schema, balance, price_open, {"method": schema.method, "balance": balance,
                                                          "price_open": price_open, "win_rate": p, "win_loss_ratio": w})

    @staticmethod
    def atr_based(balance: float, price_open: float, atr: float, *, sizing_name: str) -> float:
        schema = _schema(sizing_name, "atr-based")
        balance, price_open = _number("balance", balance), _number("price_open", price_open)
        atr = _number("atr", atr)
        qty = balance * schema.risk_percentage / 100.0 / (atr * schema.atr_multiplier)  # type: ignore[operator]
        return _limits(qty, schema, balance, price_open, {"method": schema.method, "balance": balance,
                                                          "price_open": price_open, "atr": atr})
