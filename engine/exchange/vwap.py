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


_CHUNK = 1 << 16


def rolling_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """``out[i]`` = VWAP of candles ``i-n+1 .. i`` (NaN for ``i < n-1``), for every i at once.

    Each window is summed left to right, as ``vwap()`` sums one window, so every value equals
    ``vwap()`` of its window bit for bit and never drifts over a million candles.
    """
    size = len(close)
    out = np.empty(size)
    out[:n - 1] = np.nan
    if size < n:
        out[:] = np.nan
        return out
    # Chunks of rows with buffers reused across them: a million candles touch a few MB of
    # fresh memory (the answer) instead of several arrays of their size.
    chunk = min(_CHUNK, size)
    typical_volume = np.empty(chunk + n - 1)
    pv, vol = np.empty(chunk), np.empty(chunk)
    for a in range(n - 1, size, chunk):
        b = min(size, a + chunk)
        m, lo = b - a, a - n + 1               # rows a..b-1 use candles lo..b-1
        tv = typical_volume[:m + n - 1]
        np.add(high[lo:b], low[lo:b], out=tv)
        tv += close[lo:b]
        tv /= 3.0
        tv *= volume[lo:b]
        p, v = pv[:m], vol[:m]
        if n > 1:
            np.add(tv[:m], tv[1:1 + m], out=p)
            np.add(volume[lo:lo + m], volume[lo + 1:lo + 1 + m], out=v)
        else:
            p[:], v[:] = tv[:m], volume[lo:lo + m]
        for k in range(2, n):
            p += tv[k:k + m]
            v += volume[lo + k:lo + k + m]
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(p, v, out=out[a:b])
        empty = np.flatnonzero(v == 0.0) if not float(v.min()) > 0.0 else ()
        if len(empty):   # no volume in the window: the mean of its closes, summed the same way
            first = lo + empty
            mean_close = close[first].copy()
            for k in range(1, n):
                mean_close += close[first + k]
            out[a + empty] = mean_close / n
    return out
