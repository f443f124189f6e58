"""Statistics of closed signals (SEMANTICS.md section 9, tests/data/stats_vectors.json).

r = pnl_percentage of each closed signal, in close-time order, N = count.
Every ratio needs N >= 10 (``MIN_TRADES_FOR_RATIOS``) and a denominator above
1e-9; annualised figures also need a calendar span (first ``pending_at`` ->
last close) of at least 14 days and at most 365 trades a year. Below a gate,
or for any NaN/infinity, the value is ``None``: never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median

import msgspec

from .types import TickClosed

MIN_TRADES_FOR_RATIOS = 10
MIN_SPAN_DAYS_FOR_ANNUALISATION = 14.0
MAX_TRADES_PER_YEAR = 365.0
EPSILON = 1e-9
RATIO_CLAMP = 1000.0
DAY_MS = 86_400_000


class BacktestStatistics(msgspec.Struct, frozen=True):
    signal_list: list[TickClosed]
    total_signals: int
    win_count: int
    loss_count: int
    win_rate: float | None = None
    avg_pnl: float | None = None
    total_pnl: float | None = None
    median_pnl: float | None = None
    std_dev: float | None = None
    sharpe_ratio: float | None = None
    annualized_sharpe_ratio: float | None = None
    sortino_ratio: float | None = None
    certainty_ratio: float | None = None
    profit_factor: float | None = None
    expectancy: float | None = None
    trades_per_year: float | None = None
    expected_yearly_returns: float | None = None
    max_drawdown: float | None = None
    calmar_ratio: float | None = None
    recovery_factor: float | None = None
    avg_win: float | None = None
    avg_loss: float | None = None
    max_win_streak: int = 0
    max_loss_streak: int = 0
    avg_consecutive_win_pnl: float | None = None
    avg_consecutive_loss_pnl: float | None = None
    avg_peak_pnl: float | None = None
    avg_fall_pnl: float | None = None
    peak_profit_pnl: float | None = None
    max_drawdown_pnl: float | None = None
    avg_duration: float | None = None
    avg_win_duration: float | None = None
    avg_loss_duration: float | None = None
    median_step_size: float | None = None
    buyer_pressure: float | None = None
    seller_pressure: float | None = None
    buyer_strength: float | None = None
    seller_strength: float | None = None
    pressure_imbalance: float | None = None
    trend_strength: float | None = None
    trend_confidence: float | None = None
    trend: str | None = None


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or abs(den) <= EPSILON:
        return None
    return _finite(num / den)


def _clamp(v: float | None) -> float | None:
    return None if v is None else max(-RATIO_CLAMP, min(RATIO_CLAMP, v))


def _streaks(returns: Sequence[float]) -> tuple[list[float], list[float], int, int]:
    """Per-streak sums of wins and of losses (a break-even ends a streak), longest streaks."""
    win_sums: list[float] = []
    loss_sums: list[float] = []
    kind, total, length = 0, 0.0, 0
    longest = {1: 0, -1: 0}
    for r in list(returns) + [0.0]:
        sign = (r > 0) - (r < 0)
        if sign != kind or sign == 0:
            if kind == 1:
                win_sums.append(total)
            elif kind == -1:
                loss_sums.append(total)
            if kind:
                longest[kind] = max(longest[kind], length)
            kind, total, length = sign, 0.0, 0
        if sign:
            total += r
            length += 1
    return win_sums, loss_sums, longest[1], longest[-1]


def _equity(returns: Sequence[float], troughs: Sequence[float | None]) -> tuple[float, float, bool]:
    """(final equity, max drawdown %, blown): each trade's trough is a transient low first."""
    equity, peak, drawdown = 1.0, 1.0, 0.0
    for r, trough in zip(returns, troughs):
        points = []
        if trough is not None:
            points.append(equity * (1 + trough / 100.0))
        equity *= 1 + r / 100.0
        points.append(equity)
        for x in points:
            if x <= 0:
                return x, 100.0, True
            peak = max(peak, x)
            drawdown = max(drawdown, (peak - x) / peak * 100.0)
    return equity, drawdown, False


def _price_profile(closes: Sequence[float], times_ms: Sequence[int]) -> dict[str, float | str | None]:
    out: dict[str, float | str | None] = {}
    if len(closes) < 2:
        return out
    steps = [(b - a) / a for a, b in zip(closes, closes[1:])]
    ups = [s for s in steps if s > 0]
    downs = [s for s in steps if s < 0]
    decisive = len(ups) + len(downs)
    total_abs = sum(abs(s) for s in steps)
    out["median_step_size"] = median(abs(s) for s in steps) * 100.0
    if decisive:
        out["buyer_pressure"] = len(ups) / decisive
        out["seller_pressure"] = len(downs) / decisive
    if total_abs > 0:
        out["buyer_strength"] = sum(abs(s) for s in ups) / total_abs
        out["seller_strength"] = sum(abs(s) for s in downs) / total_abs
        out["pressure_imbalance"] = out["buyer_strength"] - out["seller_strength"]  # type: ignore[operator]
    if len(closes) >= 3:
        xs = [(t - times_ms[0]) / DAY_MS for t in times_ms]
        ys = [math.log(c) for c in closes]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        syy = sum((y - my) ** 2 for y in ys)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        if sxx > 0:
            slope = sxy / sxx
            r2 = 1.0 if syy <= 0 else (sxy * sxy) / (sxx * syy)
            strength = slope * 100.0
            out["trend_strength"], out["trend_confidence"] = strength, r2
            if r2 < 0.30:
                out["trend"] = "sideways"
            elif abs(strength) < 0.25 * out["median_step_size"]:  # type: ignore[operator]
                out["trend"] = "neutral"
            else:
                out["trend"] = "bullish" if strength > 0 else "bearish"
    return out


def backtest_statistics(closed: Sequence[TickClosed]) -> BacktestStatistics:
    """Statistics of ``closed`` (sorted by close time here; the input order does not matter)."""
    signals = sorted(closed, key=lambda c: c.close_timestamp)
    n = len(signals)
    if n == 0:
        return BacktestStatistics(signal_list=[], total_signals=0, win_count=0, loss_count=0)
    r = [s.pnl.pnl_percentage for s in signals]
    wins = [x for x in r if x > 0]
    losses = [x for x in r if x < 0]
    gated = n >= MIN_TRADES_FOR_RATIOS
    avg = sum(r) / n
    total = sum(r)
    std = math.sqrt(sum((x - avg) ** 2 for x in r) / (n - 1)) if n >= 2 else None
    avg_win, avg_loss = _mean(wins), _mean(losses)

    sharpe = _ratio(avg, std) if gated else None
    sortino = None
    if gated and losses:
        sortino = _ratio(avg, math.sqrt(sum(x * x for x in losses) / n))
    certainty = _ratio(avg_win, abs(avg_loss)) if gated and avg_win is not None and avg_loss is not None else None
    profit_factor = None
    if gated and wins and losses:
        profit_factor = _ratio(sum(wins), abs(sum(losses)))
    expectancy = len(wins) / n * (avg_win or 0.0) + len(losses) / n * (avg_loss or 0.0)

    pending = [s.signal.pending_at if s.signal.pending_at is not None else s.signal.scheduled_at for s in signals]
    span_days = (signals[-1].close_timestamp - min(pending)) / DAY_MS
    trades_per_year = n / span_days * 365.0 if span_days > 0 else None
    annualisable = (gated and trades_per_year is not None and span_days >= MIN_SPAN_DAYS_FOR_ANNUALISATION
                    and trades_per_year <= MAX_TRADES_PER_YEAR)

    troughs = [s.signal.trough_pnl for s in signals]
    peaks = [s.signal.peak_pnl for s in signals]
    equity, drawdown, blown = _equity(r, troughs)
    eyr = None
    if annualisable:
        if blown:
            eyr = -100.0
        else:
            value = _finite((equity ** (trades_per_year / n) - 1) * 100.0)  # type: ignore[operator]
            eyr = value if value is not None and abs(value) <= 100.0 else None
    calmar = _clamp(eyr / drawdown) if gated and eyr is not None and drawdown > 0 else None
    recovery = _clamp((equity - 1) * 100.0 / drawdown) if gated and not blown and drawdown > 0 else None

    win_sums, loss_sums, max_win_streak, max_loss_streak = _streaks(r)
    durations = [(s.close_timestamp - p) / 60_000 for s, p in zip(signals, pending)]
    win_dur = [d for d, x in zip(durations, r) if x > 0]
    loss_dur = [d for d, x in zip(durations, r) if x < 0]
    peak_values = [p for p in peaks if p is not None]
    trough_values = [t for t in troughs if t is not None]
    profile = _price_profile([s.current_price for s in signals], [s.close_timestamp for s in signals])

    return BacktestStatistics(
        signal_list=signals, total_signals=n, win_count=len(wins), loss_count=len(losses),
        win_rate=len(wins) / (len(wins) + len(losses)) * 100.0 if wins or losses else None,
        avg_pnl=_finite(avg), total_pnl=_finite(total), median_pnl=_finite(median(r)), std_dev=_finite(std),
        sharpe_ratio=sharpe,
        annualized_sharpe_ratio=_finite(sharpe * math.sqrt(trades_per_year)) if annualisable and sharpe is not None else None,  # type: ignore[arg-type]
        sortino_ratio=sortino, certainty_ratio=certainty, profit_factor=profit_factor,
        expectancy=_finite(expectancy), trades_per_year=trades_per_year if annualisable else None,
        expected_yearly_returns=eyr, max_drawdown=drawdown, calmar_ratio=calmar, recovery_factor=recovery,
        avg_win=avg_win, avg_loss=avg_loss, max_win_streak=max_win_streak, max_loss_streak=max_loss_streak,
        avg_consecutive_win_pnl=_mean(win_sums), avg_consecutive_loss_pnl=_mean(loss_sums),
        avg_peak_pnl=_mean(peak_values), avg_fall_pnl=_mean(trough_values),
        peak_profit_pnl=max(peak_values) if peak_values else None,
        max_drawdown_pnl=min(trough_values) if trough_values else None,
        avg_duration=_mean(durations), avg_win_duration=_mean(win_dur), avg_loss_duration=_mean(loss_dur),
        **profile,  # type: ignore[arg-type]
    )
