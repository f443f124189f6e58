"""Partial profit/loss milestones (SEMANTICS.md section 6).

Levels 10, 20, ... 100 of the way to TP (profit) or SL (loss). Each level
fires once per signal; all newly crossed levels fire in ascending order in
one tick; a signal's levels are forgotten (silently) when it closes.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

LEVELS = tuple(range(10, 101, 10))


class PartialState(msgspec.Struct):
    profit_levels: list[int] = msgspec.field(default_factory=list)
    loss_levels: list[int] = msgspec.field(default_factory=list)


class PartialTracker:
    """Reached levels per signal id. ``on_change`` runs after every change (persistence)."""

    def __init__(self, on_change: Callable[[dict[str, PartialState]], None] | None = None):
        self.states: dict[str, PartialState] = {}
        self.on_change = on_change

    def reach(self, signal_id: str, kind: str, percent: float) -> list[int]:
        """Levels newly reached at ``percent`` (ascending); records them."""
        if percent < LEVELS[0]:
            return []
        state = self.states.setdefault(signal_id, PartialState())
        seen = state.profit_levels if kind == "profit" else state.loss_levels
        new = [lv for lv in LEVELS if lv <= percent and lv not in seen]
        if new:
            seen.extend(new)
            if self.on_change:
                self.on_change(self.states)
        return new

    def clear(self, signal_id: str) -> None:
        if self.states.pop(signal_id, None) is not None and self.on_change:
            self.on_change(self.states)
