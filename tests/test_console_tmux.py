"""End to end in a real terminal: tmux runs ``btk`` (the installed command), keys are sent, the
captured pane is read. Skipped only where tmux is absent.

The test's tmux server is its own (``-L``, a socket of its own): a tmux server the user already
runs would otherwise start the session with that server's environment, and ``btk`` would write
into the real ``~/.btk``. The environment the session needs is passed with ``-e``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

BTK = Path(sys.executable).with_name("btk")


class Tmux:
    def __init__(self, home: Path, width: int = 100, height: int = 30):
        self.session = f"btk-test-{uuid.uuid4().hex[:8]}"
        self.socket = f"btk-test-{uuid.uuid4().hex[:8]}"
        self.home = home
        env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                  "-e", f"BTK_HOME={home}", "-e", "TERM=xterm-256color",
                  f"{BTK} --speed 20000", env=env)          # 333 market minutes a second

    def tmux(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check,
                              env=env)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session, check=False).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen after {timeout:.0f} s:\n{screen}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.session, check=False).returncode == 0

    def kill(self) -> None:
        self.tmux("kill-server", check=False)      # this test's own server, and only it


def test_btk_opens_the_console_and_answers_keys(tmp_path):
    assert BTK.exists(), f"the btk command is not installed beside {sys.executable}"
    tmux = Tmux(tmp_path / "home")
    try:
        screen = tmux.wait_for("╭─ signals", timeout=60)       # first start seeds the store: give it time
        for title in ("scheduled", "milestones", "risk", "log", "P&L"):
            assert title in screen
        tmux.send("2")
        tmux.wait_for("all stored candles")
        tmux.send("r")
        tmux.wait_for("closed signals")                        # "done: 28,799 candles in ..., N closed signals"
        tmux.send("4")
        tmux.wait_for("channel_breakout")
        tmux.send("Enter")
        tmux.wait_for("Start sma_cross")
        time.sleep(0.5)       # a person's pace: the dialog focuses its Start button just after it paints
        tmux.send("Enter")                                     # a replay of the bundled month
        tmux.send("1")
        tmux.wait_for("opened BTCUSDT", timeout=60)          # the log pane wraps: match within a line
        tmux.send("q")
        tmux.wait_for("live run(s)?")                          # quitting asks while a run is live
        tmux.send("y")
        deadline = time.monotonic() + 15
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive(), "btk did not exit"
        assert (tmp_path / "home" / "state").is_dir()          # the live run's state, for the next start
    finally:
        tmux.kill()
