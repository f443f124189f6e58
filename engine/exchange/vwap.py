"""VWAP, the engine's "current price" (SEMANTICS.md section 2).

``sum(((H+L+C)/3) * V) / sum(V)`` over the last N closed 1m candles; the mean
of the closes when ``sum(V) == 0``.
"""

from __future__ import annotations

import numpy as np


def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> float:
    total = float(volume.sum())
    if total == 0.0:
        return float(close.mean())
    return float((((high + low + close) / 3.0) * volume).sum() / total)


def rolling_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """``out[i]`` = VWAP of candles ``i-n+1 .. i`` (NaN for ``i < n-1``), for every i at once.

    Window sums are taken directly (a strided view summed along its axis), not
    as differences of running sums, so each value equals ``vwap()`` of its
    window to the last few ulps and never drifts over a million candles.
    """
    size = len(close)
    out = np.full(size, np.nan)
    if size < n:
        return out
    typical_volume = (high + low + close) / 3.0 * volume
    pv = np.lib.stride_tricks.sliding_window_view(typical_volume, n).sum(axis=1)
    vol = np.lib.stride_tricks.sliding_window_view(volume, n).sum(axis=1)
    mean_close = np.lib.stride_tricks.sliding_window_view(close, n).sum(axis=1) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        out[n - 1:] = np.where(vol == 0.0, mean_close, pv / np.where(vol == 0.0, 1.0, vol))
    return out
