"""Heat: one strategy's portfolio across symbols (``Heat.get_data`` / ``get_report`` / ``dump``).

One row per symbol with the statistics of its closed signals, sorted by Sharpe ratio
(highest first, ``None`` last, then by symbol), and portfolio figures: pooled over every
trade of every symbol in close-time order (PnL, dispersion, ratios, drawdown,
annualisation), except the per-trade averages of peaks, troughs, streaks and durations,
which are trade-count-weighted means of the per-symbol figures
(vectors ``heat_two_symbols``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from ..events import bus
from ..stats import BacktestStatistics, backtest_statistics
from ..types import TickClosed
from .base import dump_report, fmt, table


class HeatRow(msgspec.Struct, frozen=True):
    symbol: str
    total_trades: int
    win_count: int
    loss_count: int
    win_rate: float | None
    total_pnl: float | None
    avg_pnl: float | None
    median_pnl: float | None
    std_dev: float | None
    sharpe_ratio: float | None
    annualized_sharpe_ratio: float | None
    sortino_ratio: float | None
    certainty_ratio: float | None
    profit_factor: float | None
    expectancy: float | None
    trades_per_year: float | None
    expected_yearly_returns: float | None
    max_drawdown: float | None
    calmar_ratio: float | None
    recovery_factor: float | None
    avg_win: float | None
    avg_loss: float | None
    max_win_streak: int
    max_loss_streak: int
    avg_consecutive_win_pnl: float | None
    avg_consecutive_loss_pnl: float | None
    avg_duration: float | None
    avg_peak_pnl: float | None
    avg_fall_pnl: float | None
    peak_profit_pnl: float | None
    max_drawdown_pnl: float | None
    median_step_size: float | None
    trend_strength: float | None
    trend_confidence: float | None
    trend: str | None

    @classmethod
    def of(cls, symbol: str, stats: BacktestStatistics) -> HeatRow:
        values = {f: getattr(stats, f) for f in cls.__struct_fields__ if f not in ("symbol", "total_trades")}
        return cls(symbol=symbol, total_trades=stats.total_signals, **values)


class HeatStatistics(msgspec.Struct, frozen=True):
    strategy_name: str
    symbols: list[HeatRow]
    total_symbols: int
    portfolio_total_trades: int
    portfolio_win_count: int
    portfolio_loss_count: int
    portfolio_win_rate: float | None
    portfolio_total_pnl: float | None
    portfolio_avg_pnl: float | None
    portfolio_median_pnl: float | None
    portfolio_std_dev: float | None
    portfolio_sharpe_ratio: float | None
    portfolio_annualized_sharpe_ratio: float | None
    portfolio_sortino_ratio: float | None
    portfolio_certainty_ratio: float | None
    portfolio_profit_factor: float | None
    portfolio_expectancy: float | None
    portfolio_trades_per_year: float | None
    portfolio_expected_yearly_returns: float | None
    portfolio_max_drawdown: float | None
    portfolio_calmar_ratio: float | None
    portfolio_recovery_factor: float | None
    portfolio_avg_duration: float | None
    portfolio_avg_peak_pnl: float | None
    portfolio_avg_fall_pnl: float | None
    portfolio_peak_profit_pnl: float | None
    portfolio_max_drawdown_pnl: float | None
    portfolio_avg_consecutive_win_pnl: float | None
    portfolio_avg_consecutive_loss_pnl: float | None


_POOLED = ("win_count", "loss_count", "win_rate", "total_pnl", "avg_pnl", "median_pnl", "std_dev", "sharpe_ratio",
           "annualized_sharpe_ratio", "sortino_ratio", "certainty_ratio", "profit_factor", "expectancy",
           "trades_per_year", "expected_yearly_returns", "max_drawdown", "calmar_ratio", "recovery_factor",
           "peak_profit_pnl", "max_drawdown_pnl")
_WEIGHTED = ("avg_duration", "avg_peak_pnl", "avg_fall_pnl", "avg_consecutive_win_pnl", "avg_consecutive_loss_pnl")


def _weighted(rows: Sequence[HeatRow], field: str) -> float | None:
    pairs = [(getattr(r, field), r.total_trades) for r in rows if getattr(r, field) is not None]
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight else None


def _sharpe_order(row: HeatRow) -> tuple[bool, float, str]:
    return (row.sharpe_ratio is None, -(row.sharpe_ratio or 0.0), row.symbol)


def heat_statistics(closed: Iterable[TickClosed], strategy_name: str = "") -> HeatStatistics:
    """The heat table of ``closed`` signals (any order), grouped by symbol."""
    by_symbol: dict[str, list[TickClosed]] = {}
    for c in closed:
        by_symbol.setdefault(c.symbol, []).append(c)
    rows = sorted((HeatRow.of(sym, backtest_statistics(trades)) for sym, trades in by_symbol.items()),
                  key=_sharpe_order)
    pooled = backtest_statistics([c for trades in by_symbol.values() for c in trades])
    portfolio = {f"portfolio_{f}": getattr(pooled, f) for f in _POOLED}
    portfolio.update({f"portfolio_{f}": _weighted(rows, f) for f in _WEIGHTED})
    return HeatStatistics(strategy_name=strategy_name, symbols=rows, total_symbols=len(rows),
                          portfolio_total_trades=pooled.total_signals, **portfolio)


def heat_report(stats: HeatStatistics, mode: str) -> str:
    rows = [[r.symbol, r.total_trades, fmt(r.win_rate, 1, " %"), fmt(r.total_pnl, 3, " %"), fmt(r.avg_pnl, 3, " %"),
             fmt(r.sharpe_ratio, 3), fmt(r.sortino_ratio, 3), fmt(r.profit_factor, 2), fmt(r.max_drawdown, 2, " %"),
             fmt(r.expected_yearly_returns, 2, " %"), f"{r.max_win_streak}/{r.max_loss_streak}",
             fmt(r.avg_duration, 0, " min")] for r in stats.symbols]
    header = ["Symbol", "Trades", "Win rate", "Total PnL", "Avg PnL", "Sharpe", "Sortino", "Profit factor",
              "Max DD", "Yearly", "Streaks W/L", "Avg time"]
    p = stats
    portfolio = table(["Portfolio", "Value"], [
        ["Symbols", p.total_symbols], ["Trades", p.portfolio_total_trades],
        ["Win rate", fmt(p.portfolio_win_rate, 2, " %")], ["Total PnL", fmt(p.portfolio_total_pnl, 3, " %")],
        ["Sharpe ratio", fmt(p.portfolio_sharpe_ratio, 3)],
        ["Annualised Sharpe ratio", fmt(p.portfolio_annualized_sharpe_ratio, 3)],
        ["Sortino ratio", fmt(p.portfolio_sortino_ratio, 3)], ["Certainty ratio", fmt(p.portfolio_certainty_ratio, 3)],
        ["Expectancy", fmt(p.portfolio_expectancy, 3, " %")], ["Max drawdown", fmt(p.portfolio_max_drawdown, 3, " %")],
        ["Expected yearly returns", fmt(p.portfolio_expected_yearly_returns, 2, " %")],
        ["Calmar ratio", fmt(p.portfolio_calmar_ratio, 3)], ["Recovery factor", fmt(p.portfolio_recovery_factor, 3)],
        ["Average peak PnL", fmt(p.portfolio_avg_peak_pnl, 3, " %")],
        ["Average trough PnL", fmt(p.portfolio_avg_fall_pnl, 3, " %")],
        ["Average duration", fmt(p.portfolio_avg_duration, 1, " min")],
    ], "lr")
    return "\n".join([f"# Heat: {stats.strategy_name or 'all strategies'}", "", f"Closed signals of {mode}.", "",
                      "## Symbols (by Sharpe ratio)", "",
                      table(header, rows, "lrrrrrrrrrrr") if rows else "No closed signals.", "",
                      "## Portfolio", "", portfolio, "",
                      "Portfolio figures pool every trade of every symbol by close time; average peak, trough, "
                      "streak and duration figures weight each symbol by its trades. N/A: not enough data "
                      "(ratios need 10 trades, annualised figures a 14-day span).", ""])


_closed: dict[tuple[str, bool], list[TickClosed]] = {}


def _record(result: TickClosed) -> None:
    _closed.setdefault((result.strategy_name, result.backtest), []).append(result)


class Heat:
    """Per-symbol portfolio heat of one strategy, from every run in the process."""

    @staticmethod
    async def get_data(strategy_name: str, *, backtest: bool | None = None) -> HeatStatistics:
        closed = [c for (name, bt), trades in _closed.items() if name == strategy_name
                  and (backtest is None or bt == backtest) for c in trades]
        return heat_statistics(closed, strategy_name)

    @staticmethod
    async def get_report(strategy_name: str, *, backtest: bool | None = None) -> str:
        mode = {None: "backtests and live runs", True: "backtests", False: "live runs"}[backtest]
        return heat_report(await Heat.get_data(strategy_name, backtest=backtest), mode)

    @staticmethod
    async def dump(strategy_name: str, *, backtest: bool | None = None, path: str = "./dump/heat") -> str:
        return dump_report(await Heat.get_report(strategy_name, backtest=backtest), path, strategy_name)


def install() -> None:
    bus.signal.tap(_record, kinds=(TickClosed,))  # type: ignore[attr-defined]


def reset() -> None:
    _closed.clear()
