"""Analytics over everything the engine emits: scheduled signals, risk rejections, milestones,
timings and the per-symbol heat of a strategy. Each service records from the bus as events
happen and answers ``get_data`` / ``get_report`` (markdown) / ``dump`` (a file)."""

from __future__ import annotations

from . import heat, milestones, performance, rejections, schedule
from .heat import Heat, HeatRow, HeatStatistics, heat_statistics
from .milestones import MilestoneEvent, Partial, PartialStatistics
from .performance import MetricStatistics, Performance, PerformanceStatistics
from .rejections import Risk, RiskStatistics
from .schedule import Schedule, ScheduleEvent, ScheduleStatistics

_SERVICES = (schedule, rejections, milestones, performance, heat)


def reset_analytics() -> None:
    """Forget everything recorded (tests, reloading a workspace)."""
    for service in _SERVICES:
        service.reset()


for _service in _SERVICES:
    _service.install()

__all__ = ["Heat", "HeatRow", "HeatStatistics", "MetricStatistics", "MilestoneEvent", "Partial",
           "PartialStatistics", "Performance", "PerformanceStatistics", "Risk", "RiskStatistics", "Schedule",
           "ScheduleEvent", "ScheduleStatistics", "heat_statistics", "reset_analytics"]
