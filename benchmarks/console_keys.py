"""Key-to-screen latency of the console in a real terminal (tmux), as a trader meets it.

    python benchmarks/console_keys.py                  # 100x30, 40 keys per action and scenario
    python benchmarks/console_keys.py --size 80x24 --keys 60

The installed ``btk`` runs in a tmux server of its own (``-L``) on a fresh ``BTK_HOME`` with
``--speed 0`` (replays as fast as they go). A key is sent with ``tmux send-keys`` and the pane
is read with ``capture-pane`` until the screen shows its effect; the time from just before the
send to the first capture that shows it is the latency (a capture costs about 2-3 ms, the
resolution). Actions: a table move (Down / Up on the Strategies table, seen as the cursor row
moving) and a screen switch (1 to 4, seen as the new screen's own text). Scenarios: idle; two
replays at speed 0 (sma_cross and channel_breakout on BTCUSDT); the same with backtests running
(``r`` on the Backtest screen before each round). Each screen is visited once before measuring.
Keys and captures go through one tmux control-mode client, so measuring costs the machine little.
Prints p50 / p95 / max per action and scenario (``--by-screen``: the switches by where they go).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BTK = Path(sys.executable).with_name("btk")
SCREENS = {"1": "Live", "2": "Backtest", "3": "Walker", "4": "Strategies"}
MARKS = {"1": "╭─ signals", "2": "equity", "3": "leaderboard", "4": "╭─ strategies"}   # each screen's own text


class Terminal:
    """The tmux server running ``btk``, driven through one control-mode client (``tmux -C``):
    keys and captures are commands on its pipe, not a new tmux process each (which would cost
    milliseconds and a share of the two cores the console is measured on)."""

    def __init__(self, home: Path, size: tuple[int, int]):
        self.socket = f"btk-bench-{os.getpid()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "b",
                        "-x", str(size[0]), "-y", str(size[1]), "-e", f"BTK_HOME={home}", "-e", "TERM=xterm-256color",
                        f"{BTK} --speed 0"], check=True, env=self.env)
        self.control = subprocess.Popen(["tmux", "-L", self.socket, "-C", "attach-session", "-t", "b",
                                         "-f", "no-output,ignore-size"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=self.env, bufsize=1)
        self._sent = 0

    def command(self, line: str) -> list[str]:
        """Run a tmux command through the control client; its output lines. A numbered marker
        follows each command: the reply is the last block of ours before the marker's, so an
        answer is never taken for another's (tmux's own blocks, such as the attach's, come
        whenever they come)."""
        assert self.control.stdin is not None
        self._sent += 1
        marker = f"btk-bench-{self._sent}"
        self.control.stdin.write(f"{line}\ndisplay-message -p {marker}\n")
        self.control.stdin.flush()
        reply: list[str] = []
        while True:
            block = self._block()
            if block == [marker]:
                return reply
            reply = block

    def _block(self) -> list[str]:
        """The next reply block to a command of this client (tmux's own blocks are skipped)."""
        assert self.control.stdout is not None
        out: list[str] = []
        ours = False
        for raw in self.control.stdout:
            text = raw.rstrip("\n")
            if text.startswith("%begin"):
                ours, out = text.split()[-1] == "1", []
            elif text.startswith("%end") or text.startswith("%error"):
                if ours:
                    return out
            elif ours:
                out.append(text)
        raise SystemExit("console_keys.py: the tmux control client ended (did btk exit?)")

    def screen(self) -> str:
        """The pane with its colours (the cursor row is told by its background)."""
        return "\n".join(self.command("capture-pane -p -e -t b"))

    def text(self) -> str:
        """The pane's text alone."""
        return "\n".join(self.command("capture-pane -p -t b"))

    def send(self, key: str) -> None:
        self.command(f"send-keys -t b {key}")

    def wait_for(self, seen, timeout: float = 60.0) -> float:
        """Milliseconds until ``seen(text)`` holds (NaN after ``timeout`` s)."""
        started = time.perf_counter()
        while not seen(self.text()):
            if time.perf_counter() - started > timeout:
                return float("nan")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000

    def key(self, key: str, seen, *, colours: bool = False, timeout: float = 5.0) -> float:
        """Milliseconds from just before sending ``key`` to the first capture where ``seen`` holds
        (of the pane's text, or with its colours)."""
        capture = self.screen if colours else self.text
        started = time.perf_counter()
        self.send(key)
        while not seen(capture()):
            if time.perf_counter() - started > timeout:
                return float("nan")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        try:
            self.control.stdin.close()  # type: ignore[union-attr]
            self.control.wait(5)
        finally:
            subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, env=self.env)


def strategies_cursor(term: Terminal, timeout: float = 30.0) -> str:
    """The background escape of the Strategies table's cursor row (its first row, sma_cross),
    read once the screen shows the row and has settled (focus is drawn a frame later)."""
    term.wait_for(lambda s: MARKS["4"] in s and " sma_cross " in s, timeout)
    time.sleep(0.5)
    first = next((line for line in term.screen().splitlines() if " sma_cross " in line), "")
    match = re.search(r"48;5;(\d+)m[^\x1b]* sma_cross ", first) or re.search(r"(48;[0-9;]+)m[^\x1b]* sma_cross ", first)
    if not match:
        raise SystemExit(f"console_keys.py: the Strategies screen showed no cursor on sma_cross within {timeout:.0f} s:"
                         f"\n{term.text()}")
    return f"48;5;{match.group(1)}m" if match.group(1).isdigit() else match.group(1) + "m"


def cursor_row(screen: str, cursor_style: str) -> int | None:
    """The line of the Strategies table that carries the cursor's background."""
    for i, line in enumerate(screen.splitlines()[2:], 2):
        if cursor_style in line:
            return i
    return None


def measure_round(term: Terminal, marks: dict[str, str], cursor_style: str, results: dict[str, list[float]],
                  by_screen: dict[str, list[float]]) -> None:
    """Switches 4 -> 1 -> 2 -> 3 -> 4 and two table moves on the Strategies table."""
    for key in "1234":
        took = term.key(key, lambda s, k=key: marks[k] in s)
        results["screen switch"].append(took)
        by_screen.setdefault(key, []).append(took)
    for key in ("Down", "Up"):
        start = cursor_row(term.screen(), cursor_style)
        if start is None:
            continue
        target = start + 1 if key == "Down" else start - 1
        results["table move"].append(term.key(key, lambda s, t=target: cursor_row(s, cursor_style) == t,
                                              colours=True))
        time.sleep(0.02)


def terminal_size(text: str) -> tuple[int, int]:
    cols, sep, rows = text.partition("x")
    if not (sep and cols.isdigit() and rows.isdigit() and int(cols) >= 40 and int(rows) >= 12):
        raise argparse.ArgumentTypeError(f"{text!r} is not COLSxROWS of at least 40x12 (e.g. 80x24)")
    return int(cols), int(rows)


def summary(name: str, results: dict[str, list[float]]) -> list[str]:
    lines = []
    for action, values in results.items():
        v = sorted(x for x in values if x == x)
        missed = len(values) - len(v)
        if not v:
            continue
        p95 = v[min(len(v) - 1, int(round(0.95 * len(v))) - 1)]
        lines.append(f"| {name} | {action} | {len(v)} | {statistics.median(v):.0f} | {p95:.0f} | {v[-1]:.0f} | {missed} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=terminal_size, default=(100, 30),
                        help="terminal size, COLSxROWS (default 100x30)")
    parser.add_argument("--by-screen", action="store_true", help="also the switches by the screen they go to")
    parser.add_argument("--keys", type=int, default=40, help="switches measured per scenario (default 40)")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("console_keys.py needs tmux", file=sys.stderr)
        return 2
    if not BTK.exists():
        print(f"the btk command is not installed beside {sys.executable}", file=sys.stderr)
        return 2
    cols, rows = args.size
    rounds = max(1, args.keys // 4)
    home = Path(tempfile.mkdtemp(prefix="btk-bench-"))
    term = Terminal(home, (cols, rows))
    by_screen: dict[str, list[float]] = {}
    out = [f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
           f"{subprocess.run(['tmux', '-V'], capture_output=True, text=True).stdout.strip()}, {cols}x{rows}",
           "", "| scenario | action | keys | p50 ms | p95 ms | max ms | not seen in 5 s |",
           "|---|---|---:|---:|---:|---:|---:|"]
    try:
        term.wait_for(lambda s: MARKS["1"] in s, 120)      # the first start seeds the store
        for key in "2341":                      # every screen once: the first visit composes it
            term.send(key)
            time.sleep(0.5)
        term.send("4")
        cursor_style = strategies_cursor(term)
        idle: dict[str, list[float]] = {"screen switch": [], "table move": []}
        for _ in range(rounds):
            measure_round(term, MARKS, cursor_style, idle, by_screen)
        out += summary("idle", idle)

        # Two replays at speed 0: sma_cross (first row) and channel_breakout (third row) on BTCUSDT.
        term.send("4")
        time.sleep(0.3)
        for downs in (0, 2):
            for _ in range(downs):
                term.send("Down")
            term.send("Enter")
            term.wait_for(lambda s: "Start " in s, 10)
            time.sleep(0.5)
            term.send("Enter")
            time.sleep(0.5)
            for _ in range(downs):
                term.send("Up")
        term.wait_for(lambda s: "2 live" in s, 30)
        replays: dict[str, list[float]] = {"screen switch": [], "table move": []}
        for _ in range(rounds):
            measure_round(term, MARKS, cursor_style, replays, by_screen)
        out += summary("two replays at speed 0", replays)

        loaded: dict[str, list[float]] = {"screen switch": [], "table move": []}
        for _ in range(rounds):
            term.send("2")
            time.sleep(0.05)
            term.send("r")                       # a backtest of the month (about 0.5 s): keys meet it
            time.sleep(0.02)
            measure_round(term, MARKS, cursor_style, loaded, by_screen)
        out += summary("two replays and a backtest", loaded)
    finally:
        term.send("q")
        time.sleep(0.3)
        term.send("y")
        time.sleep(1.0)
        term.close()
        shutil.rmtree(home, ignore_errors=True)
    print("\n".join(out))
    if args.by_screen:
        print("\n".join(summary("all three", {f"switch to {k} ({SCREENS[k]})": by_screen[k] for k in sorted(by_screen)})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
