"""Schedule analytics: how scheduled (limit) signals fare — activation and cancellation rates,
average waits, cancel reasons (``Schedule.get_data`` / ``get_report`` / ``dump``).

A signal counts as scheduled once, by id, whether it is first seen scheduled or (after a live
restart) first seen activating or cancelled, so the rates never exceed 100 %.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from ..events import bus
from ..interval import MINUTE_MS, iso
from ..types import TickCancelled, TickOpened, TickScheduled
from .base import AnalyticsService, Recorder, fmt, mean, newest, rate, recent, table


class ScheduleEvent(msgspec.Struct, frozen=True):
    timestamp: int
    action: str                     # scheduled | opened | cancelled
    symbol: str
    strategy_name: str
    signal_id: str
    position: str
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    current_price: float
    backtest: bool
    wait_minutes: float | None = None     # scheduled_at -> activation or cancellation
    cancel_reason: str | None = None


class ScheduleStatistics(msgspec.Struct, frozen=True):
    event_list: list[ScheduleEvent]
    total_events: int
    total_scheduled: int
    total_opened: int
    total_cancelled: int
    activation_rate: float | None          # opened / scheduled, percent
    cancellation_rate: float | None        # cancelled / scheduled, percent
    avg_activation_wait: float | None      # minutes
    avg_cancellation_wait: float | None    # minutes
    cancel_reasons: dict[str, int]


class _Aggregate:
    __slots__ = ("ids", "opened", "cancelled", "activation_waits", "cancellation_waits", "reasons", "events", "count")

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.opened = self.cancelled = self.count = 0
        self.activation_waits: list[float] = []
        self.cancellation_waits: list[float] = []
        self.reasons: Counter[str] = Counter()
        self.events = recent()


_recorder: Recorder[_Aggregate] = Recorder(_Aggregate)


def _record(result: TickOpened | TickScheduled | TickCancelled) -> None:
    s = result.signal
    if type(result) is TickOpened and (s.pending_at is None or s.pending_at == s.scheduled_at):
        return              # a market entry, never scheduled
    agg = _recorder.get(result.symbol, result.strategy_name, result.backtest)
    agg.ids.add(s.id)
    agg.count += 1
    wait = None
    reason = None
    if isinstance(result, TickOpened):
        wait = (s.pending_at - s.scheduled_at) / MINUTE_MS  # type: ignore[operator]
        agg.opened += 1
        agg.activation_waits.append(wait)
    elif isinstance(result, TickCancelled):
        wait = (result.close_timestamp - s.scheduled_at) / MINUTE_MS
        reason = result.reason
        agg.cancelled += 1
        agg.cancellation_waits.append(wait)
        agg.reasons[reason] += 1
    agg.events.append(ScheduleEvent(result.created_at, result.action, result.symbol, result.strategy_name, s.id,
                                    s.position, s.price_open, s.price_take_profit, s.price_stop_loss,
                                    result.current_price, result.backtest, wait, reason))


def schedule_statistics(aggregates: list[_Aggregate]) -> ScheduleStatistics:
    ids: set[str] = set().union(*(a.ids for a in aggregates)) if aggregates else set()
    opened = sum(a.opened for a in aggregates)
    cancelled = sum(a.cancelled for a in aggregates)
    reasons: Counter[str] = Counter()
    for a in aggregates:
        reasons.update(a.reasons)
    return ScheduleStatistics(
        event_list=newest([a.events for a in aggregates], key=lambda e: e.timestamp),
        total_events=sum(a.count for a in aggregates), total_scheduled=len(ids), total_opened=opened,
        total_cancelled=cancelled, activation_rate=rate(opened, len(ids)), cancellation_rate=rate(cancelled, len(ids)),
        avg_activation_wait=mean([w for a in aggregates for w in a.activation_waits]),
        avg_cancellation_wait=mean([w for a in aggregates for w in a.cancellation_waits]),
        cancel_reasons=dict(sorted(reasons.items())))


def schedule_report(stats: ScheduleStatistics, where: str) -> str:
    summary = table(["Metric", "Value"], [
        ["Scheduled signals", stats.total_scheduled], ["Activated", stats.total_opened],
        ["Cancelled", stats.total_cancelled], ["Activation rate", fmt(stats.activation_rate, 2, " %")],
        ["Cancellation rate", fmt(stats.cancellation_rate, 2, " %")],
        ["Average wait to activation", fmt(stats.avg_activation_wait, 1, " min")],
        ["Average wait to cancellation", fmt(stats.avg_cancellation_wait, 1, " min")],
        ["Cancel reasons", ", ".join(f"{k} {v}" for k, v in stats.cancel_reasons.items()) or "none"],
    ], "lr")
    events = table(["Time", "Event", "Symbol", "Strategy", "Position", "Entry", "TP", "SL", "Price", "Wait", "Reason"], [
        [iso(e.timestamp), e.action, e.symbol, e.strategy_name, e.position, f"{e.price_open:.8g}",
         f"{e.price_take_profit:.8g}", f"{e.price_stop_loss:.8g}", f"{e.current_price:.8g}",
         fmt(e.wait_minutes, 0, " min"), e.cancel_reason or ""] for e in stats.event_list],
        "lllllrrrrrl") if stats.event_list else "No scheduled signals."
    return "\n".join(["# Scheduled signals", "", where, "", "## Summary", "", summary, "",
                      "N/A means nothing was scheduled yet.", "", "## Events (newest last)", "", events, ""])


class Schedule(AnalyticsService):
    """Scheduled-signal analytics, recorded from every run in the process."""

    kind = "schedule"

    @classmethod
    def collect(cls, symbol: str | None, strategy_name: str | None, backtest: bool | None) -> ScheduleStatistics:
        return schedule_statistics([agg for _, agg in _recorder.select(symbol, strategy_name, backtest)])

    @classmethod
    def render(cls, stats: ScheduleStatistics, where: str) -> str:
        return schedule_report(stats, where)


def install() -> None:
    bus.signal.tap(_record, kinds=(TickOpened, TickScheduled, TickCancelled))  # type: ignore[attr-defined]


def reset() -> None:
    _recorder.clear()
