"""A one-line progress bar on stderr: percent, candles/s, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, stream: TextIO = sys.stderr, width: int = 30, min_interval: float = 0.1):
        self.stream, self.width, self.min_interval = stream, width, min_interval
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def update(self, event) -> None:
        now = time.perf_counter()
        if now - self.last_draw < self.min_interval and event.progress < 1.0:
            return
        self.last_draw = now
        elapsed = max(now - self.started, 1e-9)
        rate = event.processed_frames / elapsed
        left = (event.total_frames - event.processed_frames) / rate if rate > 0 else float("inf")
        filled = int(self.width * event.progress)
        eta = f"{left:5.1f}s" if left != float("inf") else "  ?  "
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {event.progress * 100:5.1f}%  "
                          f"{rate:,.0f} candles/s  ETA {eta} ")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
