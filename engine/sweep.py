"""Parameter sweeps: a strategy factory and a grid expand into named strategies.

``add_sweep("sma_cross", make_signal, {"fast": [10, 20], "slow": [40, 50]})`` registers
``sma_cross[fast=10,slow=40]``, ``sma_cross[fast=10,slow=50]``, ... (the grid's key order,
every combination), each with ``get_signal = make_signal(**params)`` (and, given
``signals_factory``, ``get_signals = signals_factory(**params)``: backtests of the sweep then
take the vectorised path), and returns the names in that order, ready for a walker. The
factories and parameters are kept on the strategy, so a worker process rebuilds the same
strategy from their module paths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .registry import add_strategy


def sweep_name(base: str, params: Mapping[str, Any]) -> str:
    return f"{base}[{','.join(f'{k}={_show(v)}' for k, v in params.items())}]"


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def add_sweep(base_name: str, factory: Callable[..., Callable], grid: Mapping[str, Sequence[Any]], *,
              interval: str = "1m", risk_name: str | None = None, risk_list: Sequence[str] = (),
              where: Callable[[dict[str, Any]], bool] | None = None, note: str = "",
              signals_factory: Callable[..., Callable] | None = None) -> list[str]:
    """Register one strategy per grid point (``where`` may skip points, e.g. ``fast < slow``)."""
    if not isinstance(base_name, str) or not base_name:
        raise ValueError("add_sweep: base_name must be a non-empty string")
    if not callable(factory):
        raise ValueError(f"add_sweep {base_name!r}: factory must be callable, got {factory!r}")
    if signals_factory is not None and not callable(signals_factory):
        raise ValueError(f"add_sweep {base_name!r}: signals_factory must be callable, got {signals_factory!r}")
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"add_sweep {base_name!r}: grid must be a non-empty mapping of parameter -> values")
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"add_sweep {base_name!r}: parameter {key!r} is not a valid keyword name")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"add_sweep {base_name!r}: grid[{key!r}] must be a non-empty list of values")
        for v in values:
            if not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v)):
                raise ValueError(f"add_sweep {base_name!r}: grid[{key!r}] holds {v!r}; values must be finite "
                                 "numbers, booleans or strings (they name the strategy and key its cache)")
    points = [p for p in expand_grid(grid) if where is None or where(p)]
    if not points:
        raise ValueError(f"add_sweep {base_name!r}: the grid has no point that passes `where`")
    names = []
    for params in points:
        try:
            get_signal = factory(**params)
            get_signals = signals_factory(**params) if signals_factory is not None else None
        except TypeError as exc:
            raise ValueError(f"add_sweep {base_name!r}: a factory rejects {params}: {exc}") from exc
        name = sweep_name(base_name, params)
        add_strategy(name, get_signal, interval=interval, risk_name=risk_name, risk_list=risk_list,
                     note=note or f"{base_name} with {', '.join(f'{k}={_show(v)}' for k, v in params.items())}",
                     factory=factory, params=params, get_signals=get_signals, signals_factory=signals_factory)
        names.append(name)
    return names
