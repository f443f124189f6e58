"""Partial profit/loss milestones (SEMANTICS.md section 6).

Levels 10, 20, ... 100 of the way to TP (profit) or SL (loss). Each level
fires once per signal; all newly crossed levels fire in ascending order in
one tick; a signal's levels are forgotten (silently) when it closes.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import numpy as np

LEVELS = tuple(range(10, 101, 10))


class PartialState(msgspec.Struct):
    profit_levels: list[int] = msgspec.field(default_factory=list)
    loss_levels: list[int] = msgspec.field(default_factory=list)


class MilestoneDigest(NamedTuple):
    """A backtest signal's milestones in one record, for recorders that can take them so (a
    tap with a ``digest`` function) when nobody listens for the events one by one: the
    signal, its active prices (candle ``first``'s time is ``first_time``, one minute apart)
    and how many levels it reached on them toward TP and toward SL."""

    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    backtest: bool
    signal: object               # SignalRow
    first_time: int
    prices: np.ndarray           # the VWAP on each active candle (a copy)
    profit_levels: int
    loss_levels: int


class MilestoneBatch(NamedTuple):
    """Many backtest signals' milestones in one record, for recorders that take them so (a tap
    with a ``batch`` function): entry ``i`` is what ``digest(i)`` gives, the ``MilestoneDigest``
    of a signal active on candles ``first[i] .. stop[i]-1`` of ``prices`` (the series' VWAP,
    read here, kept by nobody). Only signals that reached a level are entries."""

    symbol: str
    strategy_name: str
    exchange_name: str
    frame_name: str
    backtest: bool
    prices: np.ndarray
    signals: list[object]
    first: list[int]
    stop: list[int]
    first_times: list[int]
    profit_levels: list[int]
    loss_levels: list[int]

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.signals)

    def digest(self, i: int) -> MilestoneDigest:
        return MilestoneDigest(self.symbol, self.strategy_name, self.exchange_name, self.frame_name, self.backtest,
                               self.signals[i], self.first_times[i], self.prices[self.first[i]:self.stop[i]].copy(),
                               self.profit_levels[i], self.loss_levels[i])


class PartialTracker:
    """Reached levels per signal id."""

    def __init__(self, states: dict[str, PartialState] | None = None):
        self.states: dict[str, PartialState] = states or {}

    def reach(self, signal_id: str, kind: str, percent: float) -> list[int]:
        """Levels newly reached at ``percent`` (ascending); records them."""
        if percent < LEVELS[0]:
            return []
        state = self.states.setdefault(signal_id, PartialState())
        seen = state.profit_levels if kind == "profit" else state.loss_levels
        new = [lv for lv in LEVELS if lv <= percent and lv not in seen]
        seen.extend(new)
        return new

    def clear(self, signal_id: str) -> bool:
        """Forget a signal's levels; True if it had any."""
        return self.states.pop(signal_id, None) is not None
