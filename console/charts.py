"""The backtest charts, drawn with plotext in the running theme's colours.

* equity: the cumulative net PnL (percent) at each closed signal's close time;
* candles: the frame's 1m candles merged into at most ``max_bars`` bars, with each
  signal's entry (``▲`` long, ``▼`` short) and exit (``●``); with a trade selected, the
  chart zooms to it and draws its TP and SL levels across its lifetime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from textual.color import Color

from engine.interval import MINUTE_MS
from engine.pnl import effective_price
from engine.position import held_percent

DAY_MS = 24 * 60 * MINUTE_MS


def rgb(colors: Mapping[str, str], name: str) -> tuple[int, int, int]:
    return Color.parse(colors[name]).rgb


def equity_curve(closed: Sequence[Any], start: int) -> tuple[list[float], list[float]]:
    """(days since ``start``, cumulative PnL %) with a 0 point at the start."""
    xs, ys, total = [0.0], [0.0], 0.0
    for t in sorted(closed, key=lambda c: c.close_timestamp):
        total += t.pnl.pnl_percentage
        xs.append((t.close_timestamp - start) / DAY_MS)
        ys.append(total)
    return xs, ys


def merge_bars(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
               max_bars: int) -> tuple[np.ndarray, ...]:
    """OHLC of consecutive groups of candles, at most ``max_bars`` groups; times are group starts."""
    n = len(ts)
    per = max(1, -(-n // max(1, max_bars)))
    starts = np.arange(0, n, per)
    return (ts[starts], o[starts], np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts),
            c[np.minimum(starts + per, n) - 1])


def draw_equity(plt: Any, closed: Sequence[Any], start: int, colors: Mapping[str, str]) -> None:
    plt.clear_data()
    plt.clear_figure()
    plt.title("equity: cumulative net PnL %")
    plt.xlabel("days")
    if not closed:
        plt.text("no closed signals", 0, 0)
        return
    xs, ys = equity_curve(closed, start)
    plt.plot(xs, ys, color=rgb(colors, "primary"), marker="braille")
    plt.hline(0.0, color=rgb(colors, "panel-lighten-2") if "panel-lighten-2" in colors else None)


def draw_position(plt: Any, candles: Any, vwap: np.ndarray, signal: Any, levels: Sequence[tuple[str, int, int, float]],
                  colors: Mapping[str, str], glyphs: Any, *, no_color: bool = False) -> str:
    """An open position: the closes and the VWAP it is judged on since before its entry, its entry,
    TP and SL as levels across, and each milestone it reached (up for TP, down for SL). Returns
    the title."""
    plt.clear_data()
    plt.clear_figure()
    s = signal
    if candles is None or len(candles.timestamp) == 0:
        plt.title("no candles")
        return "no candles"
    ts = np.asarray(candles.timestamp, dtype=np.int64)
    t0 = int(ts[0])
    x = ((ts - t0) / MINUTE_MS).tolist()
    plt.plot(x, np.asarray(candles.close).tolist(), color=rgb(colors, "foreground"), marker="braille",
             label="close")
    ok = np.isfinite(vwap)
    plt.plot(np.asarray(x)[ok].tolist(), vwap[ok].tolist(), color=rgb(colors, "primary"),
             marker="braille" if not no_color else "dot", label="VWAP")
    # The levels in force: the effective entry of its entries, a trailed TP / SL (position commands).
    entry = effective_price(s)
    for price, name, color in ((entry, "entry", "accent"), (s.take_profit, "TP", "success"),
                               (s.stop_loss, "SL", "error")):
        plt.hline(price, color=rgb(colors, color))
    opened = (s.pending_at or s.scheduled_at) - t0
    plt.vline(opened / MINUTE_MS, color=rgb(colors, "accent"))
    for kind, marker in (("profit", glyphs.up), ("loss", glyphs.down)):
        hits = [(t, p) for k, _, t, p in levels if k == kind and t >= t0]
        if hits:
            plt.scatter([(t - t0) / MINUTE_MS for t, _ in hits], [p for _, p in hits], marker=marker,
                        color=rgb(colors, "success" if kind == "profit" else "error"))
    plt.xlabel("minutes")
    reached = ", ".join(f"{level}% {'TP' if kind == 'profit' else 'SL'}" for kind, level, _, _ in levels) or "none yet"
    trailed = " (trailed)" if s.trailing_stop_loss is not None else ""
    held = f"  {held_percent(s):.4g}% held" if s.partials else ""
    title = (f"{s.position} from {entry:.6g}  TP {s.take_profit:.6g}  SL {s.stop_loss:.6g}{trailed}{held}  "
             f"milestones: {reached}")
    plt.title(title)
    return title


def draw_candles(plt: Any, candles: Any, closed: Sequence[Any], colors: Mapping[str, str], *,
                 max_bars: int = 60, selected: Any = None, no_color: bool = False) -> str:
    """``candles``: the engine's ``Candles`` (columns timestamp, open, high, low, close).
    Returns the chart's title. ``no_color`` (NO_COLOR): the closes as a line, whose slope tells up
    from down where green and red candles could not."""
    plt.clear_data()
    plt.clear_figure()
    if candles is None or len(candles.timestamp) == 0:
        plt.title("no candles")
        return "no candles"
    ts = np.asarray(candles.timestamp, dtype=np.int64)
    lo_i, hi_i = 0, len(ts)
    if selected is not None:
        # The trade and as long again on each side (at least an hour).
        opened = selected.signal.pending_at or selected.signal.scheduled_at
        pad = max(60 * MINUTE_MS, selected.close_timestamp - opened)
        lo_i = int(np.searchsorted(ts, opened - pad, side="left"))
        hi_i = max(lo_i + 1, int(np.searchsorted(ts, selected.close_timestamp + pad, side="right")))
    sl = slice(lo_i, hi_i)
    bt, bo, bh, bl, bc = merge_bars(ts[sl], np.asarray(candles.open)[sl], np.asarray(candles.high)[sl],
                                    np.asarray(candles.low)[sl], np.asarray(candles.close)[sl], max_bars)
    t0 = int(bt[0])
    span_days = (int(ts[hi_i - 1]) - t0) / DAY_MS
    unit, scale = ("hours", 3_600_000) if span_days < 2 else ("days", DAY_MS)
    x = [(int(t) - t0) / scale for t in bt]
    if no_color:
        plt.plot(x, bc.tolist(), marker="braille")
    else:
        plt.candlestick(x, {"Open": bo.tolist(), "High": bh.tolist(), "Low": bl.tolist(), "Close": bc.tolist()},
                        colors=[rgb(colors, "success"), rgb(colors, "error")])
    plt.xlabel(unit)
    t_end = int(ts[hi_i - 1])
    shown = [t for t in closed if (t.signal.pending_at or 0) <= t_end and t.close_timestamp >= t0]
    for side, marker in (("long", "▲"), ("short", "▼")):
        entries = [t for t in shown if t.signal.position == side and t.signal.pending_at is not None]
        if entries:
            plt.scatter([(t.signal.pending_at - t0) / scale for t in entries], [t.signal.price_open for t in entries],
                        marker=marker, color=rgb(colors, "primary"))
    if shown:
        plt.scatter([(t.close_timestamp - t0) / scale for t in shown], [t.pnl.price_close for t in shown],
                    marker="●", color=rgb(colors, "accent"))
    if selected is not None:
        s = selected.signal
        a, b = ((s.pending_at or s.scheduled_at) - t0) / scale, (selected.close_timestamp - t0) / scale
        # The levels in force when it closed (a command may have trailed them), from its effective entry.
        plt.plot([a, b], [s.take_profit] * 2, color=rgb(colors, "success"), marker="─")
        plt.plot([a, b], [s.stop_loss] * 2, color=rgb(colors, "error"), marker="─")
        title = (f"{s.position} {selected.pnl.price_open:.6g} -> {selected.pnl.price_close:.6g} "
                 f"({selected.close_reason}, {selected.pnl.pnl_percentage:+.2f}%)  TP {s.take_profit:.6g}  "
                 f"SL {s.stop_loss:.6g}")
    else:
        title = f"{len(ts):,} 1m candles in {len(bt)} bars; ▲▼ entries, ● exits (select a trade to zoom)"
    plt.title(title)
    return title
