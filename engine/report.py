"""Markdown reports of closed signals and their statistics."""

from __future__ import annotations

from typing import Any

import msgspec

from .interval import iso
from .stats import BacktestStatistics


class OrderCounts(msgspec.Struct):
    """How a run's entries went: those opened at once (market entries, and limit entries whose
    price was already reached) and the limit orders that waited as scheduled signals."""

    at_once: int = 0
    scheduled: int = 0
    activated: int = 0
    cancelled: dict[str, int] = msgspec.field(default_factory=dict)    # reason -> count

    def record(self, result: Any) -> None:
        """Count one ``scheduled`` / ``opened`` / ``cancelled`` result (others are ignored)."""
        action = result.action
        if action == "scheduled":
            self.scheduled += 1
        elif action == "opened":
            if result.signal.pending_at == result.signal.scheduled_at:
                self.at_once += 1
            else:
                self.activated += 1
        elif action == "cancelled":
            self.cancelled[result.reason] = self.cancelled.get(result.reason, 0) + 1

    @property
    def waiting(self) -> int:
        """Scheduled orders neither activated nor cancelled (yet)."""
        return self.scheduled - self.activated - sum(self.cancelled.values())

    def summary(self) -> str:
        """One line: ``12 at once; 5 limit orders: 3 activated, 2 cancelled (timeout 2)``."""
        text = f"{self.at_once} at once"
        if self.scheduled:
            cancelled = sum(self.cancelled.values())
            text += f"; {self.scheduled} limit order(s): {self.activated} activated, {cancelled} cancelled"
            if cancelled:
                text += " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(self.cancelled.items())) + ")"
            if self.waiting:
                text += f", {self.waiting} still waiting"
        return text

# (field, label, unit, "higher"/"lower" is better, decimals)
_ROWS = (
    ("total_signals", "Closed signals", "", "", 0),
    ("win_rate", "Win rate", "%", "higher", 2),
    ("avg_pnl", "Average PnL", "%", "higher", 3),
    ("total_pnl", "Total PnL", "%", "higher", 3),
    ("median_pnl", "Median PnL", "%", "higher", 3),
    ("std_dev", "Standard deviation", "%", "lower", 3),
    ("sharpe_ratio", "Sharpe ratio", "", "higher", 3),
    ("annualized_sharpe_ratio", "Annualised Sharpe ratio", "", "higher", 3),
    ("sortino_ratio", "Sortino ratio", "", "higher", 3),
    ("certainty_ratio", "Certainty ratio", "", "higher", 3),
    ("profit_factor", "Profit factor", "", "higher", 3),
    ("expectancy", "Expectancy", "%", "higher", 3),
    ("expected_yearly_returns", "Expected yearly returns", "%", "higher", 2),
    ("max_drawdown", "Max drawdown", "%", "lower", 3),
    ("calmar_ratio", "Calmar ratio", "", "higher", 3),
    ("recovery_factor", "Recovery factor", "", "higher", 3),
    ("avg_peak_pnl", "Average peak PnL", "%", "higher", 3),
    ("avg_fall_pnl", "Average trough PnL", "%", "closer to 0", 3),
    ("avg_duration", "Average duration", " min", "", 1),
    ("trend", "Price trend at closes", "", "", 0),
)


def _fmt(value: object, unit: str, decimals: int) -> str:
    if value is None:
        return "N/A"
    if isinstance(value, float):
        return f"{value:.{decimals}f}{unit}"
    return f"{value}{unit}"


def statistics_table(stats: BacktestStatistics) -> str:
    lines = ["| Metric | Value | Better |", "| --- | ---: | --- |"]
    for field, label, unit, better, decimals in _ROWS:
        lines.append(f"| {label} | {_fmt(getattr(stats, field), unit, decimals)} | {better} |")
    return "\n".join(lines)


def signals_table(stats: BacktestStatistics) -> str:
    if not stats.signal_list:
        return "No signals closed."
    lines = ["| # | Position | Open | Close | TP | SL | Reason | PnL % | Opened | Closed | Minutes | Note |",
             "| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: | --- |"]
    for i, c in enumerate(stats.signal_list, 1):
        s = c.signal
        opened = s.pending_at if s.pending_at is not None else s.scheduled_at
        lines.append(
            f"| {i} | {s.position} | {c.pnl.price_open:.8g} | {c.pnl.price_close:.8g} | {s.take_profit:.8g} "
            f"| {s.stop_loss:.8g} | {c.close_reason} | {c.pnl.pnl_percentage:+.3f} | {iso(opened)} "
            f"| {iso(c.close_timestamp)} | {(c.close_timestamp - opened) / 60000:.0f} | {s.note.replace('|', '/')} |")
    return "\n".join(lines)


def orders_table(orders: OrderCounts) -> str:
    rows = [("Opened at once (market, or limit price already reached)", orders.at_once),
            ("Limit orders scheduled", orders.scheduled), ("... activated", orders.activated)]
    rows += [(f"... cancelled: {reason}", n) for reason, n in sorted(orders.cancelled.items())]
    if orders.waiting:
        rows.append(("... still waiting", orders.waiting))
    return "\n".join(["| Entries | Count |", "| --- | ---: |", *(f"| {label} | {n} |" for label, n in rows)])


def backtest_report(stats: BacktestStatistics, *, symbol: str, strategy_name: str, exchange_name: str = "",
                    frame_name: str = "", orders: OrderCounts | None = None) -> str:
    where = ", ".join(x for x in (f"symbol {symbol}", exchange_name and f"exchange {exchange_name}",
                                   frame_name and f"frame {frame_name}") if x)
    entries = ["## Entries", "", orders_table(orders), ""] if orders is not None else []
    return "\n".join([
        f"# Backtest report: {strategy_name}", "", where, "", "## Statistics", "", statistics_table(stats), "",
        "N/A means not enough data for an honest figure: ratios need 10 closed signals, annualised "
        "figures also a span of 14 days or more.", "", *entries, "## Closed signals", "", signals_table(stats), "",
    ])
