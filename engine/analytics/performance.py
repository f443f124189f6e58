"""Performance analytics: how long each kind of engine work takes
(``Performance.get_data`` / ``get_report`` / ``dump``; raw events on ``listen_performance``).

Metrics: ``backtest_total`` and ``backtest_load_candles`` once per backtest,
``backtest_signal`` per signal the fast path resolves, ``live_tick`` per live tick and
``get_signal`` per call in live mode. A backtest does not time every frame: at a few
microseconds a frame the timing would cost more than the work it measures.

Memory is bounded: per metric and run, the count, total, mean, min, max and standard deviation
cover every sample (kept as running sums), and the percentiles the newest ``RECENT_SAMPLES``
(a live run that ticks every minute for a year keeps the same few hundred kilobytes as one
that ran for a week).
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


RECENT_SAMPLES = 10_000


class Samples:
    """One metric's timings: every sample in running moments, the newest in a ring for percentiles."""

    __slots__ = ("count", "total", "mean", "m2", "low", "high", "recent", "_next")

    def __init__(self) -> None:
        self.count, self.total, self.mean, self.m2 = 0, 0.0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf
        self.recent = array("d")
        self._next = 0          # where the ring writes next once full

    def add(self, x: float) -> None:
        self.count += 1
        self.total += x
        delta = x - self.mean          # Welford: a sample variance without keeping the samples
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)
        self.low, self.high = min(self.low, x), max(self.high, x)
        if len(self.recent) < RECENT_SAMPLES:
            self.recent.append(x)
        else:
            self.recent[self._next] = x
            self._next = (self._next + 1) % RECENT_SAMPLES

    def extend(self, xs: list[float]) -> None:
        for x in xs:
            self.add(x)


_recorder: Recorder[dict[str, Samples]] = Recorder(dict)


def _samples(symbol: str, strategy_name: str, backtest: bool, metric: str) -> Samples:
    durations = _recorder.get(symbol, strategy_name, backtest)
    samples = durations.get(metric)
    if samples is None:
        samples = durations[metric] = Samples()
    return samples


def _record(e: PerformanceEvent) -> None:
    _samples(e.symbol, e.strategy_name, e.backtest, e.metric).add(e.duration_ms)


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


def metric_statistics(metric: str, groups: list[Samples]) -> MetricStatistics:
    """One metric over several runs' samples: moments pooled exactly (Chan et al.), percentiles
    over the newest samples each run keeps."""
    n = sum(g.count for g in groups)
    total = math.fsum(g.total for g in groups)
    avg = total / n
    m2 = math.fsum(g.m2 + g.count * (g.mean - avg) ** 2 for g in groups)
    std = math.sqrt(m2 / (n - 1)) if n >= 2 else None
    ordered = sorted(x for g in groups for x in g.recent)
    return MetricStatistics(metric, n, total, avg, min(g.low for g in groups), max(g.high for g in groups), std,
                            percentile(ordered, 0.5), percentile(ordered, 0.95), percentile(ordered, 0.99))


def performance_statistics(groups: list[dict[str, Samples]]) -> PerformanceStatistics:
    merged: dict[str, list[Samples]] = {}
    for durations in groups:
        for metric, samples in durations.items():
            if samples.count:
                merged.setdefault(metric, []).append(samples)
    metrics = [metric_statistics(m, s) for m, s in merged.items()]
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
                      f"between ranks, over the newest {RECENT_SAMPLES:,} samples of each run. Nested metrics (backtest_signal inside backtest_total) overlap, so shares "
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
