"""Cell formatting shared by the screens: prices, percents, durations, bars, colours.

Colours come from the running theme's variables (``palette``), so a theme switch
recolours every cell on the next redraw.
"""

from __future__ import annotations

from collections.abc import Mapping

from typing import Any

from rich.text import Text
from textual.color import Color

from engine.interval import iso

from .glyphs import UNICODE


def palette(variables: Mapping[str, str]) -> dict[str, str]:
    """The theme's colours as Rich can take them: the named variables as they are, plus
    ``muted`` (the foreground 45 % of the way to the background: ``text-muted`` is ``auto 60%``,
    which only Textual's CSS understands)."""
    out = dict(variables)
    foreground, background = Color.parse(variables["foreground"]), Color.parse(variables["background"])
    out["muted"] = foreground.blend(background, 0.45).hex
    return out


def plain(value: object) -> Text:
    """A cell shown as given: names like ``sma_cross[fast=5,slow=30]`` are not Rich markup."""
    return Text(str(value))


def spaced(*cells: object) -> list[Text]:
    """Cells for a table with ``cell_padding=0``: one leading space each instead of two padding
    columns, so the Live tables fit 80 columns. Numbers (and signed Text) are right-justified."""
    out = []
    for cell in cells:
        text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
        numeric = text.plain[:1].isdigit() or text.plain[:1] in "+-"
        out.append(Text(" ", end="") + text if not numeric else Text.assemble(" ", text, justify="right"))
    return out


def price(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def percent(value: float | None, digits: int = 2) -> str:
    return "N/A" if value is None else f"{value:+.{digits}f}%"


def drawdown(value: float | None) -> str:
    """A drawdown is a size, shown without a sign."""
    return "N/A" if value is None else f"{value:.2f}%"


def number(value: float | None, digits: int = 3) -> str:
    return "N/A" if value is None else f"{value:.{digits}f}"


def minutes(value: float) -> str:
    """``95`` -> ``1h35m``; ``3000`` -> ``2d2h``."""
    m = int(value)
    if m < 60:
        return f"{m}m"
    if m < 1440:
        return f"{m // 60}h{m % 60:02d}m"
    return f"{m // 1440}d{(m % 1440) // 60}h"


def seconds(value: float | None) -> str:
    if value is None:
        return "--:--"
    s = int(round(value))
    return f"{s // 60:02d}:{s % 60:02d}" if s < 3600 else f"{s // 3600}h{(s % 3600) // 60:02d}m"


def when(timestamp: int) -> str:
    """``2023-03-05 14:07`` (UTC, engine time); blank for the console's own lines."""
    return iso(timestamp)[:16].replace("T", " ") if timestamp else ""


def hhmm(timestamp: int) -> str:
    """``14:07``: a feed line's market time (its date is on the runs pane)."""
    return when(timestamp)[11:]


def clock(timestamp: int) -> str:
    """``03-05 14:07``: the feeds' compact time (blank before the engine has ticked)."""
    return when(timestamp)[5:]


def signed(value: float | None, colors: Mapping[str, str], digits: int = 2) -> Text:
    if value is None:
        return Text("N/A", style=colors["muted"])
    style = colors["success"] if value > 0 else colors["error"] if value < 0 else ""
    return Text(f"{value:+.{digits}f}%", style=style)


def progress_bar(percent_tp: float, percent_sl: float, colors: Mapping[str, str], glyphs: Any = None,
                 width: int = 10) -> Text:
    """One bar for both ways: ``SL ■■■■■|····· TP``. Half the width each side of the entry;
    the filled half is the way the price has gone, as a share of its way to TP or SL (the side
    tells the direction without colour)."""
    g = glyphs or UNICODE
    half = width // 2
    sl_cells = min(half, round(max(0.0, percent_sl) / 100 * half))
    tp_cells = min(half, round(max(0.0, percent_tp) / 100 * half))
    muted = colors["muted"]
    text = Text()
    text.append(g.bar_empty * (half - sl_cells), style=muted)
    text.append(g.bar_fill * sl_cells, style=colors["error"])
    text.append(g.bar_mid, style=muted)
    text.append(g.bar_fill * tp_cells, style=colors["success"])
    text.append(g.bar_empty * (half - tp_cells), style=muted)
    return text


def speed(value: float | None) -> str:
    """A replay's pace: ``600x`` (market minutes per wall minute), ``max`` for 0, ``live`` on the wall clock."""
    if value is None:
        return "live"
    return "max" if value == 0 else f"{value:g}x"


def win_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
