"""What every console screen shares: a switch back to it restyles it only when the theme changed
while it was hidden (Textual restyles every node on every resume, a large part of the cost of
switching screens), and it redraws its data only when the engine's models changed since it was
last drawn."""

from __future__ import annotations

from textual import events
from textual.screen import Screen


class BtkScreen(Screen):
    _styled_theme: str | None = None

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        theme = self.app.theme
        if event.refresh_styles and theme == self._styled_theme:
            event.refresh_styles = False        # nothing it is styled by has changed since it was shown
        self._styled_theme = theme
        super()._on_screen_resume(event)
