"""``btk serve`` and the commands that talk to a running server: ``status``, ``start``, ``stop``,
``commit`` (a position command).

``btk serve`` runs the engine headless (``engine/service/server.py``) on the console's state dir
by default, so a plain ``btk`` finds it and attaches. Its log goes to ``serve.log`` in the state
dir; one line on stdout says where it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from engine.persistence.candles import default_store_path
from engine.service.messages import CommandError, ServerStatus
from engine.service.server import LOG_NAME, EngineServer, ServerBusy, log_to, reachable, serve, socket_for
from engine.service.wire import ProtocolError, Reply, Request, decode_result, frame, read_message

from ..board import commit_line
from ..commits import effect
from ..context import DEFAULT_SPEED, ConsoleConfig
from ..usage import UsageError
from ..workspace import WorkspaceError, open_workspace


def server_socket(args: argparse.Namespace) -> Path:
    """The socket a command talks to: ``--socket``, or the server's of ``--state-dir`` (default the
    console's state dir)."""
    if getattr(args, "socket", None) is not None:
        return args.socket
    state_dir = getattr(args, "state_dir", None) or ConsoleConfig(store=Path()).state_dir
    return socket_for(state_dir)


def run_server_command(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    return asyncio.run(_client_command(args))


def _serve(args: argparse.Namespace) -> int:
    speed = DEFAULT_SPEED if args.speed is None else args.speed
    if not speed >= 0:
        raise UsageError(f"--speed must be a number >= 0 (0: as fast as possible), got {speed}")
    state_dir = args.state_dir or ConsoleConfig(store=Path()).state_dir
    store = args.store or default_store_path()
    log = args.log or Path(state_dir) / LOG_NAME

    async def main() -> int:
        try:
            await open_workspace(store, args.load)
        except WorkspaceError as e:
            raise UsageError(str(e)) from None
        log_to(log)
        server = EngineServer(store=store, state_dir=state_dir, speed=speed, socket_path=args.socket,
                              catch_up=args.catch_up)
        try:
            await serve(server, ready=lambda s: print(f"btk serve: {s.state_dir} on {s.socket_path} (log {log}); "
                                                      "SIGTERM stops it, runs saved", flush=True))
        except ServerBusy as e:
            print(f"btk: {e}", file=sys.stderr)
            return 1
        return 0
    return asyncio.run(main())


async def ask(socket_path: Path, command: str, *args: Any) -> Any:
    """One command to the server at ``socket_path``: its result, or ``CommandError`` (refused) /
    ``ConnectionError`` (no server)."""
    if not await reachable(socket_path):
        raise ConnectionError(f"no btk server answers on {socket_path}: start one with `btk serve`")
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2 ** 20)
    try:
        writer.write(frame(Request(1, command, list(args))))
        await writer.drain()
        while True:
            message = await read_message(reader)
            if message is None:
                raise ConnectionError(f"the btk server at {socket_path} closed the connection")
            if isinstance(message, Reply) and message.id == 1:
                if message.error is not None:
                    raise CommandError(message.error) if message.refused else RuntimeError(message.error)
                return decode_result(command, message.result)
    finally:
        writer.close()


async def _client_command(args: argparse.Namespace) -> int:
    where = server_socket(args)
    try:
        if args.command == "status":
            status = await ask(where, "status")
            print(msgspec.json.encode(status).decode() if args.json else describe(status))
            return 0
        if args.command == "start":
            run = await ask(where, "start_live", args.strategy, args.symbol, args.exchange)
            print(f"started {run.strategy_name} on {run.symbol} ({run.exchange_name})")
            return 0
        symbol = args.symbol
        if symbol is None:
            status = await ask(where, "status")
            mine = [r.symbol for r in status.runs if r.strategy_name == args.strategy and r.state != "ended"]
            if len(mine) != 1:
                raise UsageError(f"{args.strategy} runs on {len(mine)} symbols" + (f" ({', '.join(mine)})" if mine else "")
                                 + ": say which with --symbol")
            symbol = mine[0]
        if args.command == "commit":
            return await _commit(where, args, symbol)
        await ask(where, "stop_live", args.strategy, symbol)
        print(f"stopping {args.strategy} on {symbol}: no new signals; an open position is watched until it closes")
        return 0
    except CommandError as e:
        raise UsageError(str(e)) from None
    except (ConnectionError, ProtocolError, RuntimeError) as e:
        print(f"btk: {e}", file=sys.stderr)
        return 1


async def _commit(where: Path, args: argparse.Namespace, symbol: str) -> int:
    """A position command on the server's run: what it would do (``--dry-run``), or what it did.
    One it cannot carry out now (no position, a stop that would loosen...) exits 1 with why."""
    preview = await ask(where, "preview_position", args.strategy, symbol, args.action, args.percent, args.cost)
    if not preview.ok:
        print(f"btk: {args.action} {args.strategy} on {symbol}: {preview.reason}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"{args.action} {args.strategy} on {symbol} would act:\n{effect(preview, args.percent)}")
        return 0
    result = await ask(where, "commit_position", args.strategy, symbol, args.action, args.percent, args.cost, "cli")
    if not result.ok:
        print(f"btk: {args.action} {args.strategy} on {symbol}: {result.reason}", file=sys.stderr)
        return 1
    print(commit_line(result.event))
    return 0


def describe(status: ServerStatus) -> str:
    from engine.interval import iso
    from engine.pnl import effective_price
    from engine.position import held_percent
    lines = [f"server of {status.state_dir}: {len(status.runs)} run(s), {status.consoles} console(s) attached"]
    for r in status.runs:
        clock = f"at {iso(r.market_time)}" if r.market_time else "not ticked yet"
        pace = "" if r.speed is None else f", replay {r.speed:g}x"
        holds = "open position" if r.open else "scheduled order" if r.scheduled else "flat"
        lines.append(f"  {r.strategy_name} on {r.symbol} ({r.exchange_name}): {r.state}, {clock}{pace}, {holds}"
                     + (f" ({r.ended})" if r.ended else ""))
    for s in status.positions:
        # The levels in force (a command may have trailed them), the effective entry, the share held.
        trailed = " (trailed)" if s.trailing_stop_loss is not None else ""
        held = f", {held_percent(s):.4g}% held" if s.partials else ""
        lines.append(f"  open {s.position} {s.strategy_name} {s.symbol} {s.id[:8]}: entry {effective_price(s):.8g}, "
                     f"TP {s.take_profit:.8g}, SL {s.stop_loss:.8g}{trailed}{held}")
    for s in status.scheduled:
        lines.append(f"  waiting {s.position} {s.strategy_name} {s.symbol} {s.id[:8]}: entry {s.price_open:.8g}")
    for e in status.errors[-5:]:
        lines.append(f"  error {e.where} {e.symbol} {e.strategy_name}: {' '.join(e.text.split())}")
    return "\n".join(lines)
