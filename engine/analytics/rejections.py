"""Risk analytics: every rejection, counted by symbol, strategy and profile
(``Risk.get_data`` / ``get_report`` / ``dump``). Approvals are never events, so never counted."""

from __future__ import annotations

from collections import Counter

import msgspec

from ..events import bus
from ..interval import iso
from ..types import RiskEvent
from .base import AnalyticsService, Recorder, newest, recent, table


class RiskStatistics(msgspec.Struct, frozen=True):
    event_list: list[RiskEvent]             # the newest rejections, oldest first
    total_rejections: int
    by_symbol: dict[str, int]
    by_strategy: dict[str, int]
    by_risk: dict[str, int]
    by_note: dict[str, int]


class _Aggregate:
    __slots__ = ("count", "by_risk", "by_note", "events")

    def __init__(self) -> None:
        self.count = 0
        self.by_risk: Counter[str] = Counter()
        self.by_note: Counter[str] = Counter()
        self.events = recent()


_recorder: Recorder[_Aggregate] = Recorder(_Aggregate)


def _record(event: RiskEvent) -> None:
    agg = _recorder.get(event.symbol, event.strategy_name, event.backtest)
    agg.count += 1
    agg.by_risk[event.risk_name] += 1
    agg.by_note[event.rejection_note] += 1
    agg.events.append(event)


def risk_statistics(recorder: Recorder[_Aggregate], symbol: str | None, strategy_name: str | None,
                    backtest: bool | None) -> RiskStatistics:
    by_symbol: Counter[str] = Counter()
    by_strategy: Counter[str] = Counter()
    by_risk: Counter[str] = Counter()
    by_note: Counter[str] = Counter()
    chosen = []
    for (sym, strat, _), agg in recorder.select(symbol, strategy_name, backtest):
        chosen.append(agg)
        by_symbol[sym] += agg.count
        by_strategy[strat] += agg.count
        by_risk.update(agg.by_risk)
        by_note.update(agg.by_note)

    def ordered(c: Counter[str]) -> dict[str, int]:
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    return RiskStatistics(event_list=newest([a.events for a in chosen], key=lambda e: e.timestamp),
                          total_rejections=sum(a.count for a in chosen), by_symbol=ordered(by_symbol),
                          by_strategy=ordered(by_strategy), by_risk=ordered(by_risk), by_note=ordered(by_note))


def risk_report(stats: RiskStatistics, where: str) -> str:
    def counts(title: str, column: str, c: dict[str, int]) -> list[str]:
        return [f"## {title}", "", table([column, "Rejections"], [[k, v] for k, v in c.items()], "lr")
                if c else "None.", ""]

    events = table(["Time", "Symbol", "Strategy", "Profile", "Position", "Price", "Open positions", "Id", "Note"], [
        [iso(e.timestamp), e.symbol, e.strategy_name, e.risk_name, e.signal.position, f"{e.current_price:.8g}",
         e.active_position_count, e.rejection_id or "", e.rejection_note] for e in stats.event_list],
        "lllllrrll") if stats.event_list else "No rejections."
    return "\n".join(["# Risk rejections", "", where, "", f"Total rejections: {stats.total_rejections}", "",
                      *counts("By symbol", "Symbol", stats.by_symbol),
                      *counts("By strategy", "Strategy", stats.by_strategy),
                      *counts("By profile", "Profile", stats.by_risk),
                      *counts("By reason", "Reason", stats.by_note),
                      "## Rejections (newest last)", "", events, ""])


class Risk(AnalyticsService):
    """Risk-rejection analytics, recorded from every run in the process."""

    kind = "risk"

    @classmethod
    def collect(cls, symbol: str | None, strategy_name: str | None, backtest: bool | None) -> RiskStatistics:
        return risk_statistics(_recorder, symbol, strategy_name, backtest)

    @classmethod
    def render(cls, stats: RiskStatistics, where: str) -> str:
        return risk_report(stats, where)


def install() -> None:
    bus.risk.tap(_record)  # type: ignore[attr-defined]


def reset() -> None:
    _recorder.clear()
