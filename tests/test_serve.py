"""`btk serve` and consoles that attach (issue [5 of 6]), with real processes and sockets: a server
with two replays; consoles (Pilot) attach, go away (SIGHUP, SIGKILL of their process), attach
again and see the same positions; two at once; the CLI against it; the server killed and
started again resumes its runs; another user is refused; malformed frames never crash it."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from console.app import BtkApp, exit_words
from engine.service.remote import RemoteEngine
from engine.service.server import socket_for
from engine.service.wire import MAX_FRAME, Reply, Request, frame

from .console_helpers import _config, wait_for
from .test_console import table_rows

REPLAY_SPEED = "3000"        # fifty market minutes a second: positions open within seconds


def btk(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "BTK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


class Server:
    """``btk serve`` in a process of its own, on ``home``'s store and state dir."""

    def __init__(self, home: Path, *extra: str):
        self.home, self.extra = home, extra
        self.state_dir = home / "state"
        self.socket = socket_for(self.state_dir)
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "BTK_HOME": str(self.home)}
        self.process = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--speed", REPLAY_SPEED,
                                         *self.extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        assert "btk serve:" in line, line + self.process.stderr.read()
        return self

    def status(self) -> dict:
        out = btk(self.home, "status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


@pytest.fixture
def home(tmp_path, seeded_store):
    folder = tmp_path / "home"
    folder.mkdir()
    shutil.copy(seeded_store, folder / "btk.sqlite3")
    return folder


@pytest.fixture
def server(home):
    s = Server(home).start()
    yield s
    s.stop()


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def ticking(server: Server, runs: int) -> dict | None:
    """The server's status once it has ``runs`` runs that have all ticked, else None."""
    status = server.status()
    return status if len(status["runs"]) == runs and all(r["market_time"] for r in status["runs"]) else None


def open_positions(server: Server) -> set[tuple[str, str, str]]:
    return {(p["strategy_name"], p["symbol"], p["id"]) for p in server.status()["positions"]}


def attached_app(server: Server) -> BtkApp:
    return BtkApp(_config(server.home / "btk.sqlite3", server.state_dir, 0.0, time.monotonic),
                  engine=RemoteEngine(server.socket))


def test_the_cli_starts_stops_and_reports_runs_on_a_server(server):
    assert btk(server.home, "start", "sma_cross", "--symbol", "BTCUSDT").returncode == 0
    assert btk(server.home, "start", "channel_breakout", "--symbol", "BTCUSDT").returncode == 0
    refused = btk(server.home, "start", "nope")
    assert refused.returncode == 2 and "unknown strategy 'nope'" in refused.stderr
    status = wait_until(lambda: ticking(server, 2), "both runs ticking")
    assert {(r["strategy_name"], r["state"]) for r in status["runs"]} == {("sma_cross", "running"),
                                                                        ("channel_breakout", "running")}
    text = btk(server.home, "status").stdout
    assert "2 run(s)" in text and "sma_cross on BTCUSDT (replay): running" in text
    assert btk(server.home, "stop", "sma_cross").returncode == 0
    wait_until(lambda: any(r["strategy_name"] == "sma_cross" and r["state"] in ("stopping", "ended")
                           for r in server.status()["runs"]), "sma_cross stopping")
    none = btk(server.home, "status", "--socket", str(server.home / "nowhere.sock"))
    assert none.returncode == 1 and "no btk server answers" in none.stderr


async def test_consoles_attach_leave_and_attach_again_to_the_same_positions(server):
    """Two consoles at once see the server's runs; one acts, the other sees it. A console that
    ends (a quit, an SSH drop) leaves the runs going; one attached later shows the same positions."""
    first, second = attached_app(server), attached_app(server)
    async with first.run_test(size=(120, 40)) as pilot_a, second.run_test(size=(120, 40)) as pilot_b:
        await pilot_a.press("4")
        table = first.screen.query_one("#st-table", DataTable)
        table.move_cursor(row=[r[0] for r in table_rows(table)].index("sma_cross"))
        await pilot_a.press("enter")
        await pilot_a.pause(0.3)
        await pilot_a.press("enter")           # start it on the default symbol, a replay
        for pilot, app in ((pilot_a, first), (pilot_b, second)):
            await wait_for(pilot, lambda app=app: ("BTCUSDT", "sma_cross") in app.bridge.runs, "the run, everywhere")
        assert await second.command("start_live", "channel_breakout", "BTCUSDT", "replay") is not None
        await wait_for(pilot_a, lambda: ("BTCUSDT", "channel_breakout") in first.bridge.runs, "the other's run")
        await wait_for(pilot_b, lambda: second.bridge.board.open, "an open position", timeout=90)
        await pilot_b.press("q")               # attached: quitting never asks and never stops a run
    assert exit_words(second)[0].startswith("btk: detached from the engine server")
    held = wait_until(lambda: open_positions(server), "a position on the server")
    # An SSH drop of an attached console (SIGHUP): it detaches, the runs go on.
    third = attached_app(server)
    async with third.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: third.bridge.board.open, "the positions, shown to a console attaching later")
        shown = {(k[1], k[0], o.signal.id) for k, o in third.bridge.board.open.items()}
        assert shown & open_positions(server)
        third.exit(None, 129)        # what its SIGHUP handler does (a real SIGHUP: tests/test_console_tmux.py)
    words, code = exit_words(third)
    assert code == 129 and "its runs go on" in words
    assert all(r["state"] == "running" for r in server.status()["runs"])
    assert open_positions(server) or held


async def test_a_console_attached_to_a_server_acts_on_a_position_and_every_console_sees_it(server):
    """The position commands cross the socket: the preview and the result decode as themselves,
    and the command's event reaches every attached console."""
    from engine.position import CommitPreview, CommitResult
    first, second = attached_app(server), attached_app(server)
    async with first.run_test(size=(120, 40)) as pilot_a, second.run_test(size=(120, 40)) as pilot_b:
        assert await first.command("start_live", "sma_cross", "BTCUSDT", "replay") is not None
        key = ("BTCUSDT", "sma_cross")
        for _ in range(30):
            await wait_for(pilot_a, lambda: key in first.bridge.board.open, "an open position", timeout=90)
            await first.command("pause_live", "sma_cross", "BTCUSDT")
            await wait_for(pilot_a, lambda: first.bridge.runs[key].state == "paused", "the pause")
            preview = await first.command("preview_position", "sma_cross", "BTCUSDT", "close_pending")
            if preview is not None and preview.ok:
                break
            await first.command("resume_live", "sma_cross", "BTCUSDT")
        assert isinstance(preview, CommitPreview) and preview.after is None and preview.pnl is not None
        result = await first.command("commit_position", "sma_cross", "BTCUSDT", "close_pending")
        assert isinstance(result, CommitResult) and result.ok and result.event.source == "console"
        assert result.event.signal.id == preview.signal.id
        for pilot, app in ((pilot_a, first), (pilot_b, second)):
            await wait_for(pilot, lambda app=app: key not in app.bridge.board.open, "the position gone, everywhere")
            await wait_for(pilot, lambda app=app: any("close BTCUSDT sma_cross" in line.text and "(console)" in line.text
                                                      for line in app.bridge.board.log), "the command in the log")
        refused = await first.command("commit_position", "sma_cross", "BTCUSDT", "partial_profit", 150)
        assert refused is None        # a bad argument: refused with its reason, told to the user
        assert any("percent_to_close must be in (0, 100]" in line.text for line in first.bridge.board.log)
        await pilot_a.press("q")
        await pilot_b.press("q")


def test_btk_commit_acts_on_a_servers_position_says_what_it_did_and_refuses_with_the_reason(server):
    import asyncio

    from console.commands.server import ask
    assert btk(server.home, "start", "sma_cross", "--symbol", "BTCUSDT").returncode == 0
    for _ in range(30):
        wait_until(lambda: open_positions(server), "an open position")
        asyncio.run(ask(server.socket, "pause_live", "sma_cross", "BTCUSDT"))
        if open_positions(server):
            break
        asyncio.run(ask(server.socket, "resume_live", "sma_cross", "BTCUSDT"))
    bad = btk(server.home, "commit", "partial_profit", "sma_cross", "--percent", "0")
    assert bad.returncode == 2 and "percent_to_close must be in (0, 100], got 0" in bad.stderr
    kind = "partial_profit"
    dry = btk(server.home, "commit", kind, "sma_cross", "--percent", "50", "--dry-run")
    if dry.returncode == 1:         # the price is under the entry: a profit cannot be taken, and it says why
        assert "a partial profit needs the price" in dry.stderr and "above the entry" in dry.stderr
        kind = "partial_loss"
        dry = btk(server.home, "commit", kind, "sma_cross", "--percent", "50", "--dry-run")
    assert dry.returncode == 0 and "Closes 50 % of what is held; 50 % of the position stays open." in dry.stdout
    assert "Realises" in dry.stdout and open_positions(server)         # a dry run does nothing
    half = btk(server.home, "commit", kind, "sma_cross", "--percent", "50")
    assert half.returncode == 0 and "closed 50% BTCUSDT sma_cross @" in half.stdout and "(cli)" in half.stdout
    text = btk(server.home, "status").stdout
    assert re.search(r"open long sma_cross BTCUSDT \w+: entry [\d.]+, TP [\d.]+, SL [\d.]+, 50% held", text), text
    done = btk(server.home, "commit", "close_pending", "sma_cross")
    assert done.returncode == 0 and done.stdout.startswith("close BTCUSDT sma_cross @"), done.stderr
    assert not open_positions(server)
    nothing = btk(server.home, "commit", "cancel_scheduled", "sma_cross")
    assert nothing.returncode == 1 and "no scheduled order of sma_cross on BTCUSDT" in nothing.stderr


def test_a_console_killed_with_sigkill_costs_the_server_nothing(server):
    btk(server.home, "start", "sma_cross", "--symbol", "BTCUSDT")
    env = {**os.environ, "BTK_HOME": str(server.home), "TERM": "xterm-256color"}
    console = subprocess.Popen([sys.executable, "-c", (
        "import asyncio, sys, time\n"
        "from engine.service.remote import RemoteEngine\n"
        "engine = RemoteEngine(sys.argv[1])\n"
        "batches = []\n"
        "engine.start(batches.append)\n"
        "print('attached', flush=True)\n"
        "time.sleep(60)\n"), str(server.socket)], env=env, stdout=subprocess.PIPE, text=True)
    assert console.stdout.readline().strip() == "attached"
    wait_until(lambda: server.status()["consoles"] == 1, "the console attached")
    console.send_signal(signal.SIGKILL)
    console.wait()
    wait_until(lambda: server.status()["consoles"] == 0, "the server to drop it")
    assert [r["state"] for r in server.status()["runs"]] == ["running"]


def test_a_server_killed_and_started_again_resumes_its_runs(home):
    first = Server(home).start()
    btk(home, "start", "sma_cross", "--symbol", "BTCUSDT")
    btk(home, "start", "channel_breakout", "--symbol", "BTCUSDT")
    before = wait_until(lambda: ticking(first, 2), "two runs ticking")
    time.sleep(2)
    reached = {r["strategy_name"]: r["market_time"] for r in first.status()["runs"]}
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = Server(home).start()
    try:
        after = wait_until(lambda: ticking(second, 2), "the runs started again")
        assert {r["strategy_name"] for r in after["runs"]} == {r["strategy_name"] for r in before["runs"]}
        assert all(r["state"] == "running" for r in after["runs"])
        # Each went on from where its state was saved: no earlier than a checkpoint before the kill.
        for r in after["runs"]:
            assert r["market_time"] >= reached[r["strategy_name"]] - 61 * 60_000
        second.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert second.process.poll() is None                     # SIGHUP never stops it
    finally:
        assert second.stop() == 0                                 # SIGTERM: graceful
    assert not second.socket.exists()


def test_another_user_is_refused(home):
    """The socket is 0600; even made reachable, a peer of another user gets a refusal (SO_PEERCRED)."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    folder = Path(tempfile.mkdtemp(prefix="btk-serve-"))
    folder.chmod(0o755)                   # another user may reach the folder: only the socket's mode stops it
    server = Server(home, "--socket", str(folder / "s.sock"))
    server.socket = folder / "s.sock"
    server.start()
    try:
        assert oct(server.socket.stat().st_mode & 0o777) == "0o600"
        probe = ("import os, socket, sys\n"
                 "os.setgid(65534); os.setuid(65534)\n"
                 "s = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied'); sys.exit(0)\n"
                 "print(s.recv(4096)[4:].decode(errors='replace'))\n")
        run = lambda: subprocess.run([sys.executable, "-c", probe, str(server.socket)], capture_output=True,
                                     text=True, timeout=30)
        assert run().stdout.strip() == "denied"
        os.chmod(server.socket, 0o666)
        out = run()
        assert "refused: this server belongs to user 0" in out.stdout, out.stdout + out.stderr
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_malformed_and_hostile_frames_get_an_error_and_never_crash_the_server(server):
    rng = random.Random(20261206)

    def talk(data: bytes, expect_reply: bool = True) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(str(server.socket))
        try:
            s.sendall(data)
            if not expect_reply:
                return b""
            got = b""
            while len(got) < 4 or len(got) < 4 + int.from_bytes(got[:4], "big"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got
        finally:
            s.close()

    def framed(payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + payload

    import msgspec
    cases = [framed(b"\xc1"), framed(b"not msgpack at all"), framed(msgspec.msgpack.encode({"type": "request"})),
             framed(msgspec.msgpack.encode({"type": "request", "id": "x", "command": 3})),
             frame(Request(7, "rm -rf /")), frame(Request(8, "start_live", [1, 2, 3, 4, 5])),
             frame(Request(9, "__init__")), frame(Request(10, "set_speed", ["a", "b", "c"])),
             frame(Reply(1, error="a console does not reply")), (MAX_FRAME + 1).to_bytes(4, "big")]
    cases += [framed(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))) for _ in range(40)]
    for data in cases:
        answer = talk(data)
        assert answer, data
        reply = msgspec.msgpack.decode(answer[4:])
        assert reply["type"] == "reply" and reply["error"], reply
    # A console that disappears mid-frame costs nothing.
    talk(b"\x00\x00\x10\x00" + b"half", expect_reply=False)
    assert server.process.poll() is None
    assert server.status()["runs"] == []
