"""End to end in a real terminal: tmux runs ``btk`` (the installed command), keys are sent, the
captured pane is read. Skipped only where tmux is absent.

The test's tmux server is its own (``-L``, a socket of its own): a tmux server the user already
runs would otherwise start the session with that server's environment, and ``btk`` would write
into the real ``~/.btk``. The environment the session needs is passed with ``-e``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

BTK = Path(sys.executable).with_name("btk")


class Tmux:
    """``btk`` in a tmux session of a tmux server of its own. ``command`` runs in a shell that
    writes btk's exit status to ``home/exit`` when it ends."""

    def __init__(self, home: Path, *, width: int = 100, height: int = 30, speed: float = 20_000,
                 env: dict[str, str] | None = None):
        self.session = f"btk-test-{uuid.uuid4().hex[:8]}"
        self.socket = f"btk-test-{uuid.uuid4().hex[:8]}"
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        extra = {"BTK_HOME": str(home), "TERM": "xterm-256color", "LANG": "C.UTF-8", **(env or {})}
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                  *[arg for k, v in extra.items() for arg in ("-e", f"{k}={v}")],
                  f"{BTK} --speed {speed:g}; echo $? > {home / 'exit'}; sleep 600", env=clean)

    def tmux(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check,
                              env=env)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session, check=False).stdout

    def send(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.session, key)
            time.sleep(0.15)       # a person's pace: each key lands on what the last one drew

    def wait_for(self, text: str | re.Pattern, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if (text.search(screen) if isinstance(text, re.Pattern) else text in screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen after {timeout:.0f} s:\n{screen}")
            time.sleep(0.1)

    def btk_pid(self) -> int:
        shell = int(self.tmux("list-panes", "-t", self.session, "-F", "#{pane_pid}").stdout.split()[0])
        children = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()
        return int(children[0])

    def exit_status(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        path = self.home / "exit"
        while not path.exists() or not path.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"btk did not exit:\n{self.capture()}")
            time.sleep(0.1)
        return int(path.read_text())

    def kill(self) -> None:
        self.tmux("kill-server", check=False)      # this test's own server, and only it


def first_start(tmux: Tmux) -> str:
    tmux.wait_for("╭─ signals", timeout=90)               # the first start seeds the store: give it time
    return tmux.wait_for("╭─ log", timeout=10)             # and the first frame is drawn whole


def ends(pid: int, timeout: float = 30.0) -> None:
    """btk ``pid`` ends once its terminal went (its runs saved first; a server's go on)."""
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"btk (pid {pid}) still runs {timeout:.0f} s after its terminal went"
        time.sleep(0.2)


def running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie has ended)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def start_sma_cross(tmux: Tmux) -> None:
    """The first start, then sma_cross on a replay of BTCUSDT (Strategies: its row, enter, enter),
    back on the Live screen."""
    first_start(tmux)
    tmux.send("4", "Enter")
    tmux.wait_for("Start sma_cross")
    time.sleep(0.5)
    tmux.send("Enter", "1")


def quit_saving(tmux: Tmux) -> None:
    """q, then y to the question about live runs: they stop with their state saved; btk exits 0."""
    tmux.send("q")
    tmux.wait_for("live run(s)?")
    tmux.send("y")
    assert tmux.exit_status() == 0


def run_state(screen: str, strategy: str, symbol: str) -> str | None:
    for line in screen.splitlines():
        words = line.strip("│ ").split()
        if words[:2] == [strategy, symbol]:
            return words[2]
    return None


def test_a_trading_session_at_80x24(tmp_path):
    """The default workspace at 80x24: a backtest, a sweep strategy started, a replay whose limit
    order waits in the scheduled pane, the portfolio profile's rejection, a stop, a quit with
    runs saved, and their resumption at the next start."""
    assert BTK.exists(), f"the btk command is not installed beside {sys.executable}"
    tmux = Tmux(tmp_path / "home", width=80, height=24, speed=3000)
    try:
        screen = first_start(tmux)
        for title in ("runs", "scheduled", "milestones", "risk", "log", "P&L"):
            assert title in screen
        tmux.send("2", "r")
        tmux.wait_for(re.compile(r"done · \d+ closed signals · 28,799 candles"))
        # The sweep's first strategy (a bracketed name), on a replay.
        tmux.send("4", "Down", "Down", "Down", "Down", "Enter")
        tmux.wait_for("Start sma_cross[fast=5,slow=30]")
        time.sleep(0.5)
        tmux.send("Enter")
        # mean_reversion: limit orders that wait; sma_cross after it on the same symbol: rejected.
        tmux.send("Up", "Up", "Up", "Enter")
        tmux.wait_for("Start mean_reversion")
        time.sleep(0.5)
        tmux.send("Enter")
        tmux.send("1")
        tmux.wait_for(re.compile(r"│ BTCUSDT mean_reversion (long|short)"), timeout=120)     # the scheduled pane
        tmux.send("4", "Up", "Enter")
        tmux.wait_for("Start sma_cross")
        time.sleep(0.5)
        tmux.send("Enter", "1")
        tmux.wait_for("[portfolio]", timeout=120)                                    # the risk pane
        # Stop sma_cross from the runs pane (x, then y): it ends.
        tmux.send("f", "f", "f", "f", "f", "f", "f")       # around the panes back to the runs pane
        screen = tmux.capture()
        assert run_state(screen, "sma_cross[fast=5,slow=30]", "BTCUSDT") in ("running", "paused")
        # Quit: the runs stop with their state saved; the next start lists them, r resumes one.
        quit_saving(tmux)
    finally:
        tmux.kill()
    again = Tmux(tmp_path / "home", width=80, height=24, speed=60)
    try:
        screen = again.wait_for("saved (", timeout=60)
        assert run_state(screen, "mean_reversion", "BTCUSDT") == "saved"
        row = next(i for i, line in enumerate(screen.splitlines()) if "mean_reversion" in line and "saved" in line)
        first_row = next(i for i, line in enumerate(screen.splitlines()) if "saved (" in line)
        again.send(*["Down"] * (row - first_row), "r")
        screen = again.wait_for(re.compile(r"mean_reversion +BTCUSDT +(running|paused)"), timeout=30)
        quit_saving(again)
    finally:
        again.kill()


def test_position_keys_at_80x24(tmp_path):
    """A position of sma_cross on a replay, held (p): a, then y, closes a quarter of it (the dialog
    states the share and the PnL it realises, the log says it); e, then y, closes the rest now."""
    tmux = Tmux(tmp_path / "home", width=80, height=24, speed=600)
    try:
        start_sma_cross(tmux)
        position = re.compile(r"│ BTCUSDT +sma_cross +long +\d")      # a row of the signals pane
        for _ in range(20):
            tmux.wait_for(position, timeout=120)
            tmux.send("p")
            tmux.wait_for("paused")
            time.sleep(0.5)
            if position.search(tmux.capture()):
                break
            tmux.send("p")
        tmux.send("a")
        screen = tmux.wait_for("Close 25 %: sma_cross on BTCUSDT?")
        assert "Closes 25 % of what is held; 75 % of the position stays" in screen, screen    # (wrapped there)
        assert re.search(r"Realises [+-]\d+\.\d\d % \([+-]\d+\.\d\d on 25\)", screen), screen
        tmux.send("y")
        tmux.wait_for(re.compile(r"BTCUSDT +sma_cross +long .* 75% "))       # the row: 75 % held
        assert "held" in tmux.capture()
        tmux.send("e")
        tmux.wait_for("Close now: sma_cross on BTCUSDT?")
        tmux.send("y")
        tmux.wait_for(re.compile(r"P&L [+-]\d+\.\d\d% (1W/0L|0W/1L) · open 0"))    # closed, counted
        assert not position.search(tmux.capture())
        quit_saving(tmux)
    finally:
        tmux.kill()


def test_an_ssh_drop_stops_the_runs_with_their_state_saved(tmp_path):
    """SIGHUP (the terminal went away): btk ends as a quit does, its runs' state on disk, exit 129."""
    tmux = Tmux(tmp_path / "home", width=100, height=30, speed=600)
    try:
        start_sma_cross(tmux)
        tmux.wait_for(re.compile(r"sma_cross +BTCUSDT +running"))
        time.sleep(1.0)
        os.kill(tmux.btk_pid(), signal.SIGHUP)
        assert tmux.exit_status() == 129
        state = tmp_path / "home" / "state"
        assert (state / "live_BTCUSDT_sma_cross.json").exists()
        assert not list(state.glob(".*.btk-tmp"))          # nothing left half-written
    finally:
        tmux.kill()


def test_a_plain_ascii_terminal_gets_only_ascii(tmp_path):
    """LANG=C: borders, bars and marks in ASCII; nothing else reaches the terminal."""
    tmux = Tmux(tmp_path / "home", width=100, height=30, env={"LANG": "C", "LC_ALL": "C"})
    try:
        tmux.wait_for("+- signals", timeout=90)
        screen = tmux.wait_for("+- log", timeout=10)
        tmux.send("2", "r")
        tmux.wait_for(re.compile(r"done - \d+ closed signals - 28,799 candles"))
        tmux.send("v", "v", "v")                            # the candlestick chart
        time.sleep(0.5)
        for view in (screen, tmux.capture()):
            assert all(ord(ch) < 128 for ch in view), [ch for ch in view if ord(ch) >= 128][:10]
        tmux.send("q")
        assert tmux.exit_status() == 0
    finally:
        tmux.kill()


def test_a_console_attached_to_a_server_detaches_when_its_terminal_goes_and_attaches_again(tmp_path, seeded_store):
    """`btk serve` runs a replay; `btk` in tmux finds it and attaches. The terminal goes (the tmux
    session is killed: btk gets SIGHUP, an SSH drop), the server's run goes on; a new `btk`
    attaches to the same run and its open position."""
    from engine.service.server import socket_for
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(seeded_store, home / "btk.sqlite3")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TMUX")}, "BTK_HOME": str(home)}
    server = subprocess.Popen([str(BTK), "serve", "--speed", "3000"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert "btk serve:" in server.stdout.readline()
        assert subprocess.run([str(BTK), "start", "sma_cross"], env=env, capture_output=True).returncode == 0
        first = Tmux(home, width=100, height=30)
        try:
            first.wait_for("sma_cross BTCUSDT", timeout=60)
            first.wait_for(re.compile(r"│ BTCUSDT\s+sma_cross\s+long"), timeout=120)     # an open position
            pid = first.btk_pid()
        finally:
            first.kill()                        # the terminal goes: SIGHUP to btk
        ends(pid)
        status = lambda: json.loads(subprocess.run([str(BTK), "status", "--json"], env=env, capture_output=True,
                                                   text=True).stdout)
        deadline = time.monotonic() + 30
        while status()["consoles"]:
            assert time.monotonic() < deadline, "the server still counts the console that went"
            time.sleep(0.2)
        assert [r["state"] for r in status()["runs"]] == ["running"]
        again = Tmux(home, width=100, height=30)
        try:
            screen = again.wait_for(re.compile(r"│ BTCUSDT\s+sma_cross\s+long"), timeout=60)
            assert run_state(screen, "sma_cross", "BTCUSDT") == "running"
            again.send("q")                   # attached: quits at once, the run goes on
            assert again.exit_status() == 0
            assert [r["state"] for r in status()["runs"]] == ["running"]
        finally:
            again.kill()
        # Terminals that go again and again (an unstable link): every process ends.
        for _ in range(3):
            drop = Tmux(home, width=100, height=30)
            try:
                drop.wait_for(re.compile(r"│ BTCUSDT\s+sma_cross\s+long"), timeout=60)
                pid = drop.btk_pid()
            finally:
                drop.kill()
            ends(pid)
        assert socket_for(home / "state").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
