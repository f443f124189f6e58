"""The console's themes: a dark and a light one, switchable at runtime (``t``).

Every style in ``btk.tcss`` is a theme variable, and the console's coloured cells and
charts read ``App.theme_variables``; a new theme here restyles the whole console.
Gains and losses use the ``success`` and ``error`` colours, scheduled orders ``warning``.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("btk.tcss")

BTK_DARK = Theme(
    name="btk-dark",
    primary="#4FA3E0",
    secondary="#7E8CE0",
    accent="#E0A84F",
    warning="#E0C04F",
    error="#E05F5F",
    success="#4FC38A",
    foreground="#D8DEE9",
    background="#0F1419",
    surface="#161C23",
    panel="#1E262F",
    dark=True,
)

BTK_LIGHT = Theme(
    name="btk-light",
    primary="#1F6FB2",
    secondary="#4A56B0",
    accent="#B0701F",
    warning="#9A7A00",
    error="#B3261E",
    success="#1B7F4C",
    foreground="#1C2128",
    background="#F7F8FA",
    surface="#FFFFFF",
    panel="#E9EDF2",
    dark=False,
)

THEMES = (BTK_DARK, BTK_LIGHT)
DEFAULT_THEME = BTK_DARK.name
