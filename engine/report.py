"""Markdown reports of closed signals and their statistics."""

from __future__ import annotations

from .interval import iso
from .stats import BacktestStatistics

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
            f"| {i} | {s.position} | {c.pnl.price_open:.8g} | {c.pnl.price_close:.8g} | {s.price_take_profit:.8g} "
            f"| {s.price_stop_loss:.8g} | {c.close_reason} | {c.pnl.pnl_percentage:+.3f} | {iso(opened)} "
            f"| {iso(c.close_timestamp)} | {(c.close_timestamp - opened) / 60000:.0f} | {s.note.replace('|', '/')} |")
    return "\n".join(lines)


def backtest_report(stats: BacktestStatistics, *, symbol: str, strategy_name: str, exchange_name: str = "",
                    frame_name: str = "") -> str:
    where = ", ".join(x for x in (f"symbol {symbol}", exchange_name and f"exchange {exchange_name}",
                                   frame_name and f"frame {frame_name}") if x)
    return "\n".join([
        f"# Backtest report: {strategy_name}", "", where, "", "## Statistics", "", statistics_table(stats), "",
        "N/A means not enough data for an honest figure: ratios need 10 closed signals, annualised "
        "figures also a span of 14 days or more.", "", "## Closed signals", "", signals_table(stats), "",
    ])
