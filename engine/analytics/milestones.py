"""Partial analytics: the profit and loss milestones signals reached
(``Partial.get_data`` / ``get_report`` / ``dump``)."""

from __future__ import annotations

from collections import Counter

import msgspec

from ..events import bus
from ..fastpath import milestone_crossings
from ..interval import MINUTE_MS, iso
from ..partial import LEVELS, MilestoneBatch, MilestoneDigest
from ..types import PartialEvent
from .base import AnalyticsService, Recorder, newest, recent, table


class MilestoneEvent(msgspec.Struct, frozen=True):
    timestamp: int
    kind: str                 # profit | loss
    level: int
    percent: float
    symbol: str
    strategy_name: str
    signal_id: str
    position: str
    price_open: float
    current_price: float
    backtest: bool


class PartialStatistics(msgspec.Struct, frozen=True):
    event_list: list[MilestoneEvent]        # the newest milestones, oldest first
    total_events: int
    total_profit: int
    total_loss: int
    profit_levels: dict[int, int]           # level -> how many signals reached it
    loss_levels: dict[int, int]


class _Aggregate:
    __slots__ = ("profit", "loss", "events", "reach_profit", "reach_loss", "digests")

    def __init__(self) -> None:
        self.profit: Counter[int] = Counter()
        self.loss: Counter[int] = Counter()
        self.events = recent()
        # From digests (whole backtest signals): how many signals reached exactly k levels, and
        # the newest digests, turned into events only when a report asks.
        self.reach_profit = [0] * (len(LEVELS) + 1)
        self.reach_loss = [0] * (len(LEVELS) + 1)
        self.digests = recent()

    def level_counts(self) -> tuple[Counter[int], Counter[int]]:
        profit, loss = Counter(self.profit), Counter(self.loss)
        for counts, reach in ((profit, self.reach_profit), (loss, self.reach_loss)):
            reached = 0
            for k in range(len(LEVELS), 0, -1):   # a signal reaching k levels reached each below
                reached += reach[k]
                if reached:
                    counts[LEVELS[k - 1]] += reached
        return profit, loss

    def all_events(self) -> list[MilestoneEvent]:
        out = list(self.events)
        for d in self.digests:
            s = d.signal
            for offset, kind, level, percent in milestone_crossings(
                    d.prices, position=s.position, price_open=s.price_open, take_profit=s.price_take_profit,
                    stop_loss=s.price_stop_loss):
                out.append(MilestoneEvent(d.first_time + offset * MINUTE_MS, kind, level, percent, d.symbol,
                                          d.strategy_name, s.id, s.position, s.price_open, float(d.prices[offset]),
                                          d.backtest))
        return out


_recorder: Recorder[_Aggregate] = Recorder(_Aggregate)


def _recorder_for(kind: str):
    def record(e: PartialEvent) -> None:
        agg = _recorder.get(e.symbol, e.strategy_name, e.backtest)
        (agg.profit if kind == "profit" else agg.loss)[e.level] += 1
        s = e.signal
        agg.events.append(MilestoneEvent(e.timestamp, kind, e.level, e.percent, e.symbol, e.strategy_name, s.id,
                                         s.position, s.price_open, e.current_price, e.backtest))
    return record


def _record_digest(d: MilestoneDigest) -> None:
    agg = _recorder.get(d.symbol, d.strategy_name, d.backtest)
    agg.reach_profit[d.profit_levels] += 1
    agg.reach_loss[d.loss_levels] += 1
    agg.digests.append(d)


def _record_batch(b: MilestoneBatch) -> None:
    agg = _recorder.get(b.symbol, b.strategy_name, b.backtest)
    for levels, reach in ((b.profit_levels, agg.reach_profit), (b.loss_levels, agg.reach_loss)):
        for k in levels:
            reach[k] += 1
    # Only the newest are kept: the older ones are never made.
    agg.digests.extend(b.digest(i) for i in range(max(0, len(b) - (agg.digests.maxlen or len(b))), len(b)))


_record_profit, _record_loss = _recorder_for("profit"), _recorder_for("loss")
# Both taps take a whole signal's milestones at once, or many signals', when nobody else
# listens (engine/partial.py).
_record_profit.digest = _record_loss.digest = _record_digest  # type: ignore[attr-defined]
_record_profit.batch = _record_loss.batch = _record_batch  # type: ignore[attr-defined]


def partial_statistics(aggregates: list[_Aggregate]) -> PartialStatistics:
    profit: Counter[int] = Counter()
    loss: Counter[int] = Counter()
    for a in aggregates:
        p, q = a.level_counts()
        profit.update(p)
        loss.update(q)
    return PartialStatistics(
        event_list=newest([a.all_events() for a in aggregates], key=lambda e: (e.timestamp, e.kind, e.level)),
        total_events=sum(profit.values()) + sum(loss.values()), total_profit=sum(profit.values()),
        total_loss=sum(loss.values()), profit_levels=dict(sorted(profit.items())), loss_levels=dict(sorted(loss.items())))


def partial_report(stats: PartialStatistics, where: str) -> str:
    levels = table(["Level", "Reached toward TP", "Reached toward SL"],
                   [[f"{lv} %", stats.profit_levels.get(lv, 0), stats.loss_levels.get(lv, 0)] for lv in LEVELS], "rrr")
    events = table(["Time", "Milestone", "Symbol", "Strategy", "Signal", "Position", "Entry", "Price", "Progress"], [
        [iso(e.timestamp), f"{e.kind} {e.level} %", e.symbol, e.strategy_name, e.signal_id[:8], e.position,
         f"{e.price_open:.8g}", f"{e.current_price:.8g}", f"{e.percent:.1f} %"] for e in stats.event_list],
        "lllllrrrr") if stats.event_list else "No milestones reached."
    return "\n".join(["# Partial profit and loss milestones", "", where, "",
                      f"Milestones: {stats.total_events} ({stats.total_profit} toward TP, {stats.total_loss} toward SL)",
                      "", "## By level", "", levels, "", "## Milestones (newest last)", "", events, ""])


class Partial(AnalyticsService):
    """Milestone analytics, recorded from every run in the process."""

    kind = "partial"

    @classmethod
    def collect(cls, symbol: str | None, strategy_name: str | None, backtest: bool | None) -> PartialStatistics:
        return partial_statistics([agg for _, agg in _recorder.select(symbol, strategy_name, backtest)])

    @classmethod
    def render(cls, stats: PartialStatistics, where: str) -> str:
        return partial_report(stats, where)


def install() -> None:
    bus.partial_profit.tap(_record_profit)  # type: ignore[attr-defined]
    bus.partial_loss.tap(_record_loss)  # type: ignore[attr-defined]


def reset() -> None:
    _recorder.clear()
