"""The characters the console draws with: Unicode, or ASCII for a terminal whose locale is not
UTF-8 (``LANG=C``). The marks that carry meaning (the SL / TP bar, up and down) have ASCII forms
here; borders are ASCII by style; and whatever else is drawn (chart lines, braille dots,
separators) is translated on its way to the terminal (``ASCII_OUT``), so nothing prints as
mojibake on a plain terminal."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Glyphs:
    ascii: bool
    bar_fill: str          # the progress bar toward SL / TP
    bar_empty: str
    bar_mid: str
    up: str                # a gain, a long entry, a level toward TP
    down: str              # a loss, a short entry, a level toward SL
    exit: str              # a close on the chart
    sep: str               # between items on a status line
    left: str              # "SL<" of the bar's column title
    right: str


UNICODE = Glyphs(False, "■", "·", "│", "▲", "▼", "●", "·", "◀", "▶")
ASCII = Glyphs(True, "#", ".", "|", "^", "v", "o", "-", "<", ">")

# Chart characters to ASCII: box drawing, blocks and braille dots.
_BOX = {"■": "#", "○": "o", "◆": "*", "─": "-", "━": "-", "│": "|", "┃": "|", "┌": "+", "┐": "+", "└": "+", "┘": "+", "├": "+", "┤": "+",
        "┬": "+", "┴": "+", "┼": "+", "╭": "+", "╮": "+", "╰": "+", "╯": "+", "█": "#", "▌": "#", "▐": "#",
        "▀": "#", "▄": "#", "▲": "^", "▼": "v", "●": "o", "•": "*", "·": "-"}
ASCII_CHART = {**{ord(k): v for k, v in _BOX.items()},
               **{code: "." for code in range(0x2801, 0x2900)}, 0x2800: " ",              # braille
               **{code: "#" for code in range(0x2580, 0x25A0) if chr(code) not in _BOX}}  # other blocks


class _ToAscii(dict):
    """``str.translate`` table: the chart characters to their ASCII form, any other non-ASCII
    character to ``?``, ASCII as it is."""

    def __missing__(self, code: int) -> Any:
        if code < 0x80:
            raise LookupError(code)          # keep it
        return "?"


ASCII_OUT = _ToAscii({**ASCII_CHART, ord("…"): "...", ord("◀"): "<", ord("▶"): ">", ord("✓"): "v", ord("×"): "x"})


def utf8_terminal(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the terminal's locale is UTF-8: the first of LC_ALL, LC_CTYPE, LANG that is set
    (none set is the C locale, which is ASCII)."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


def for_terminal(environ: Mapping[str, str] = os.environ) -> Glyphs:
    return UNICODE if utf8_terminal(environ) else ASCII
