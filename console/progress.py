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
        """A backtest progress event."""
        self.show(event.processed_frames, event.total_frames, "candles")

    def show(self, done: int, total: int, unit: str) -> None:
        now = time.perf_counter()
        progress = done / total if total else 1.0
        if now - self.last_draw < self.min_interval and progress < 1.0:
            return
        self.last_draw = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        filled = int(self.width * progress)
        speed = f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:,.2f} {unit}/s"
        if progress >= 1.0:
            when = f"done in {elapsed:.1f}s"
        else:
            when = f"ETA {left:5.1f}s" if left != float("inf") else "ETA   ?  "
        self.stream.write(f"\r\x1b[2K[{'#' * filled}{'.' * (self.width - filled)}] {progress * 100:5.1f}%  "
                          f"{speed}  {when}")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
