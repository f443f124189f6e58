"""Performance analytics: how long each kind of engine work takes
(``Performance.get_data`` / ``get_report`` / ``dump``; raw events on ``listen_performance``).

Metrics: ``backtest_total`` and ``backtest_load_candles`` once per backtest,
``backtest_signal`` per signal the fast path resolves, ``live_tick`` per live tick and
``get_signal`` per call in live mode. A backtest does not time every frame: at a few
microseconds a frame the timing would cost more than the work it measures.
"""

from __future__ import annotations

import math
from array import array

import msgspec

from ..events import Timings, bus
from ..types import PerformanceEvent
from .base import AnalyticsService, Recorder, fmt, table


class MetricStatistics(msgspec.Struct, frozen=True):
    metric: str
    count: int
    total_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float | None          # sample standard deviation; None below 2 samples
    median_ms: float
    p95_ms: float
    p99_ms: float


class PerformanceStatistics(msgspec.Struct, frozen=True):
    metrics: dict[str, MetricStatistics]    # by metric name, slowest total first
    total_events: int
    total_ms: float


_recorder: Recorder[dict[str, array]] = Recorder(dict)


def _samples(symbol: str, strategy_name: str, backtest: bool, metric: str) -> array:
    durations = _recorder.get(symbol, strategy_name, backtest)
    samples = durations.get(metric)
    if samples is None:
        samples = durations[metric] = array("d")
    return samples


def _record(e: PerformanceEvent) -> None:
    _samples(e.symbol, e.strategy_name, e.backtest, e.metric).append(e.duration_ms)


def _record_batch(t: Timings) -> None:
    _samples(t.symbol, t.strategy_name, t.backtest, t.metric).extend(t.durations_ms)


_record.batch = _record_batch  # type: ignore[attr-defined]   # many timings at once (events.Timings)


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of an ascending list."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def metric_statistics(metric: str, samples: list[float]) -> MetricStatistics:
    ordered = sorted(samples)
    n = len(ordered)
    total = math.fsum(ordered)
    avg = total / n
    std = math.sqrt(math.fsum((x - avg) ** 2 for x in ordered) / (n - 1)) if n >= 2 else None
    return MetricStatistics(metric, n, total, avg, ordered[0], ordered[-1], std, percentile(ordered, 0.5),
                            percentile(ordered, 0.95), percentile(ordered, 0.99))


def performance_statistics(groups: list[dict[str, array]]) -> PerformanceStatistics:
    merged: dict[str, list[float]] = {}
    for durations in groups:
        for metric, samples in durations.items():
            merged.setdefault(metric, []).extend(samples)
    metrics = [metric_statistics(m, s) for m, s in merged.items() if s]
    metrics.sort(key=lambda m: (-m.total_ms, m.metric))
    return PerformanceStatistics(metrics={m.metric: m for m in metrics}, total_events=sum(m.count for m in metrics),
                                 total_ms=math.fsum(m.total_ms for m in metrics))


def performance_report(stats: PerformanceStatistics, where: str) -> str:
    rows = [[m.metric, m.count, fmt(m.total_ms, 1), fmt(m.mean_ms, 3), fmt(m.min_ms, 3), fmt(m.max_ms, 3),
             fmt(m.std_ms, 3), fmt(m.median_ms, 3), fmt(m.p95_ms, 3), fmt(m.p99_ms, 3),
             fmt(m.total_ms / stats.total_ms * 100.0 if stats.total_ms else None, 1, " %")]
            for m in stats.metrics.values()]
    body = table(["Metric", "Count", "Total ms", "Mean ms", "Min ms", "Max ms", "Std ms", "Median ms", "P95 ms",
                  "P99 ms", "Share"], rows, "lrrrrrrrrrr") if rows else "No timings recorded."
    return "\n".join(["# Performance", "", where, "",
                      f"Timed events: {stats.total_events}, {stats.total_ms:.1f} ms in all.", "", body, "",
                      "Std is the sample standard deviation (N/A below 2 samples); percentiles interpolate "
                      "between ranks. Nested metrics (backtest_signal inside backtest_total) overlap, so shares "
                      "can add up to more than 100 %.", ""])


class Performance(AnalyticsService):
    """Timing analytics, recorded from every run in the process."""

    kind = "performance"

    @classmethod
    def collect(cls, symbol: str | None, strategy_name: str | None, backtest: bool | None) -> PerformanceStatistics:
        return performance_statistics([d for _, d in _recorder.select(symbol, strategy_name, backtest)])

    @classmethod
    def render(cls, stats: PerformanceStatistics, where: str) -> str:
        return performance_report(stats, where)


def install() -> None:
    bus.performance.tap(_record)  # type: ignore[attr-defined]


def reset() -> None:
    _recorder.clear()
