"""How consoles and an engine server talk over a local Unix socket: msgspec messages (MessagePack),
each framed by its length.

A console sends ``Request`` s (a command of the engine host, by name, with plain arguments); the
server answers each with a ``Reply`` (the command's result, encoded as its type, or why it was
refused or failed) and pushes every ``EventBatch`` to the consoles attached. ``Bye`` ends a
connection the server will not serve. Every frame is checked: a length over ``MAX_FRAME``, bytes
that are not a message, an unknown command or arguments of the wrong kind get an error reply;
the server never trusts a frame to be what it says.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import numpy as np

from ..position import CommitPreview, CommitResult
from ..types import Candles
from .messages import (BacktestOutcome, EventBatch, RunStatus, ServerStatus, WalkerOutcome, Workspace)

MAX_FRAME = 64 * 1024 * 1024          # a month of 1m candles with a backtest is about 3 MB
HEADER = 4


class ProtocolError(ValueError):
    """A frame whose bytes are not a message of this protocol (the next frame may be read)."""


class FrameTooLong(ProtocolError):
    """A frame's length is over the limit: the stream cannot be trusted after it."""


class Request(msgspec.Struct, tag_field="type", tag="request"):
    id: int
    command: str
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)


class Reply(msgspec.Struct, tag_field="type", tag="reply"):
    id: int
    result: bytes | None = None           # the command's result, encoded on its own as its type (RESULTS)
    error: str | None = None
    refused: bool = False                 # the host refused (CommandError): the error is for the user as it is


class Push(msgspec.Struct, tag_field="type", tag="push"):
    batch: EventBatch


class Bye(msgspec.Struct, tag_field="type", tag="bye"):
    reason: str


Message = Request | Reply | Push | Bye

# The commands a console may send, and the type each answers with. ``attach`` subscribes the
# connection to the batches and answers with one that says where everything stands.
RESULTS: dict[str, Any] = {
    "attach": EventBatch, "workspace": Workspace, "status": ServerStatus, "statuses": list[RunStatus],
    "start_live": RunStatus, "stop_live": None, "pause_live": None, "resume_live": None, "set_speed": None,
    "reset_run": str | None, "refresh_saved": None, "run_backtest": BacktestOutcome, "stop_backtest": None,
    "candles": Candles, "dump_backtest": str, "run_walker": WalkerOutcome, "stop_walker": None,
    "preview_position": CommitPreview, "commit_position": CommitResult,
}


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Candles):
        return [np.ascontiguousarray(col).tobytes() for col in obj.columns()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise NotImplementedError(f"cannot send a {type(obj).__name__}")


def _dec_hook(type_: Any, obj: Any) -> Any:
    if type_ is Candles:
        if not (isinstance(obj, list) and len(obj) == 6 and all(isinstance(b, bytes) for b in obj)
                and len({len(b) for b in obj}) == 1 and len(obj[0]) % 8 == 0):
            raise msgspec.ValidationError("candles: expected six columns of equal length")
        return Candles.from_arrays(np.frombuffer(obj[0], dtype="<i8"),
                                   *(np.frombuffer(b, dtype="<f8") for b in obj[1:]))
    raise NotImplementedError(f"cannot read a {type_}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(Message, dec_hook=_dec_hook)


def frame(message: Message) -> bytes:
    data = _encoder.encode(message)
    return len(data).to_bytes(HEADER, "big") + data


def encode_result(command: str, value: Any) -> bytes | None:
    return None if RESULTS.get(command) is None and value is None else _encoder.encode(value)


def decode_result(command: str, data: bytes | None) -> Any:
    if data is None:
        return None
    return msgspec.msgpack.decode(data, type=RESULTS[command] or Any, dec_hook=_dec_hook)


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message, None at the end of the stream. A frame too long is ``FrameTooLong`` (the
    stream cannot be trusted after it); bytes that are not a message are a ``ProtocolError``,
    after the frame was read whole (the next frame can still be read)."""
    try:
        header = await reader.readexactly(HEADER)
    except asyncio.IncompleteReadError:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise FrameTooLong(f"a frame of {size:,} bytes is over the limit of {MAX_FRAME:,}")
    try:
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ProtocolError(f"not a message: {e}") from None
