"""Checks on every answer of an exchange adapter (SEMANTICS.md section 2).

An answer must hold exactly ``limit`` candles, the first opening at ``since``,
one ``interval`` apart (so no duplicates and no gaps), finite OHLCV with
O,H,L,C > 0, V >= 0, high >= low, and no price below reference/factor (the
anomaly rule: reference = median of the positive OHLC values when there are
at least ``CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN`` candles, else their mean).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import GlobalConfig
from ..interval import iso
from ..types import Candles
from .errors import CandleDataError


def check_answer(candles: Candles, *, symbol: str, interval: str, step_ms: int, since: int, limit: int,
                 exchange_name: str, config: GlobalConfig, values: bool = True) -> None:
    """``values=False`` checks the shape only (count, first time, steps); ``values_look_fine``
    then clears many answers' values at once."""
    where = f"{exchange_name} {symbol} {interval} from {iso(since)} (limit {limit})"
    n = len(candles)
    if n != limit:
        raise CandleDataError(f"candle count mismatch: {where}: expected {limit} candles, got {n}")
    if n == 0:
        return
    ts = candles.timestamp
    if int(ts[0]) != since:
        raise CandleDataError(
            f"first candle timestamp mismatch: {where}: expected {iso(since)}, got {iso(int(ts[0]))}")
    if n > 1:
        steps = np.diff(ts)
        bad = np.flatnonzero(steps != step_ms)
        if len(bad):
            i = int(bad[0])
            kind = "duplicate candle" if steps[i] == 0 else ("candles out of order" if steps[i] < 0 else "candle step mismatch")
            raise CandleDataError(
                f"{kind}: {where}: candle #{i + 1} opens at {iso(int(ts[i + 1]))}, "
                f"expected {iso(int(ts[i]) + step_ms)}")
    if values:
        check_values(candles, where=where, config=config)


def values_look_fine(candles: Candles, config: GlobalConfig) -> bool:
    """True when ``check_values`` passes on every sub-batch of ``candles`` (whatever the split):
    finite, positive, high >= low, volume >= 0, and a price range no anomaly reference can
    reach. False means: check each answer on its own."""
    if not len(candles):
        return True
    o, h, l, c, v = candles.open, candles.high, candles.low, candles.close, candles.volume
    lo = min(float(o.min()), float(l.min()), float(c.min()))
    hi = max(float(o.max()), float(h.max()), float(c.max()))
    # min/max are NaN-propagating, so finite bounds mean finite prices.
    return (math.isfinite(lo) and math.isfinite(hi) and lo > 0 and bool((h >= l).all())
            and math.isfinite(float(v.sum())) and float(v.min()) >= 0
            and no_window_can_be_anomalous(lo, hi, config))


def check_values(candles: Candles, *, where: str, config: GlobalConfig) -> None:
    if values_look_fine(candles, config):
        return              # a few reductions instead of the row-by-row checks below
    o, h, l, c, v = candles.open, candles.high, candles.low, candles.close, candles.volume
    ohlc = np.stack((o, h, l, c))
    finite = np.isfinite(ohlc).all(axis=0) & np.isfinite(v)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise CandleDataError(f"non-finite candle value: {where}: candle at {iso(int(candles.timestamp[i]))}")
    positive = (ohlc > 0).all(axis=0)
    if not positive.all():
        i = int(np.flatnonzero(~positive)[0])
        raise CandleDataError(f"non-positive price: {where}: candle at {iso(int(candles.timestamp[i]))}")
    if (v < 0).any():
        i = int(np.flatnonzero(v < 0)[0])
        raise CandleDataError(f"negative volume: {where}: candle at {iso(int(candles.timestamp[i]))}")
    if (h < l).any():
        i = int(np.flatnonzero(h < l)[0])
        raise CandleDataError(f"high below low: {where}: candle at {iso(int(candles.timestamp[i]))}")
    check_anomaly(ohlc, candles.timestamp, where=where, config=config)


def anomaly_reference(ohlc: np.ndarray, n_candles: int, config: GlobalConfig) -> float:
    values = ohlc[ohlc > 0]
    if n_candles >= config.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN:
        return float(np.median(values))
    return float(values.mean())


def check_anomaly(ohlc: np.ndarray, ts: np.ndarray, *, where: str, config: GlobalConfig) -> None:
    n = ohlc.shape[1]
    if n == 0:
        return
    lowest, highest = float(ohlc.min()), float(ohlc.max())
    if lowest > 0 and no_window_can_be_anomalous(lowest, highest, config):
        return              # the reference lies in [lowest, highest]: nothing can be below it/factor
    reference = anomaly_reference(ohlc, n, config)
    floor = reference / config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR
    low = ohlc.min(axis=0) < floor
    if low.any():
        i = int(np.flatnonzero(low)[0])
        raise CandleDataError(
            f"price anomaly: {where}: candle at {iso(int(ts[i]))} has a price below {floor:.10g} "
            f"(reference {reference:.10g} / {config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR:g})")


def no_window_can_be_anomalous(ohlc_min: float, ohlc_max: float, config: GlobalConfig) -> bool:
    """True when no sub-window of a series can break the anomaly rule: every window's
    reference (a median or mean) lies in [min, max], so min >= max/factor suffices."""
    return ohlc_min * config.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR >= ohlc_max
