"""What every console screen shares: a switch back to it restyles it only when the theme changed
while it was hidden (Textual restyles every node on every resume, a large part of the cost of
switching screens), and it redraws its data only when the engine's models changed since it was
last drawn. Once a screen is composed its widgets join the objects the garbage collector no
longer walks (see ``settle``)."""

from __future__ import annotations

import gc

from textual import events
from textual.screen import Screen


def settle() -> None:
    """Move every object alive now (the app, its screens and widgets, the engine's registry) out
    of the collector's reach. A full collection walks every tracked object: with the console's
    widgets among them it stopped both threads for 100-190 ms at a time, several times a minute
    while replays ran (a key pressed then waited that long). What is made later (ticks, signals,
    rows) is collected as before; what is settled lives as long as the console anyway."""
    gc.freeze()


class BtkScreen(Screen):
    _styled_theme: str | None = None

    def on_mount(self) -> None:
        self.call_after_refresh(settle)

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        theme = self.app.theme
        if event.refresh_styles and theme == self._styled_theme:
            event.refresh_styles = False        # nothing it is styled by has changed since it was shown
        self._styled_theme = theme
        super()._on_screen_resume(event)
