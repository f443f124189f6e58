"""A live run's journal: its latest change, whole, with the events it causes (SEMANTICS.md 11).

A change of a run touches several entries (a close: the history, the signal, the milestones;
an activation: the signal and the schedule; each with the loop's cursor). Written one file at a
time they could reach the disk in part. So every change is first written, atomically, as one
``journal_{key}.json``: the entries to write, the closes to record and the events to deliver.
Then it is applied (closes recorded, entries written) and only then are its events emitted.

* A process killed while applying finds the journal at its restart and applies it again (every
  write is a whole value and a close is recorded once by id: applying twice is applying once),
  then delivers its events again: events are delivered **at least once**, each with a stable
  ``event_id`` (``{signal id}:{action}``, ``{signal id}:{profit|loss}:{level}``) so a listener
  can drop a repeat.
* A change that cannot be written or applied (a full disk) stays pending in memory; the next
  change merges into it (later values win) and the merged journal is written as one, so the
  disk never sees a later state without an earlier one, whatever order the writes failed in.
* The journal is replaced by the next change, which the loop makes only after the events of
  this one were handed to every listener and the ``Live.run`` consumer took them; a run that
  ends cleanly leaves a journal without events.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..types import BreakevenEvent, CommitEvent, PartialEvent, TickCancelled, TickClosed, TickOpened, TickScheduled

Lifecycle = TickScheduled | TickOpened | TickClosed | TickCancelled


class JournalWrite(msgspec.Struct, frozen=True):
    domain: str
    key: str
    data: msgspec.Raw              # the entry's JSON, as it is written to its own file


class JournalEvent(msgspec.Struct, frozen=True):
    """A signal event (``tick``), a milestone (``partial``, with ``kind`` profit or loss), a
    command that acted (``commit``) or breakeven becoming available (``breakeven``)."""

    kind: str                      # "signal" | "profit" | "loss" | "commit" | "breakeven"
    tick: Lifecycle | None = None
    partial: PartialEvent | None = None
    commit: CommitEvent | None = None
    breakeven: BreakevenEvent | None = None

    @property
    def event_id(self) -> str:
        event = self.tick or self.partial or self.commit or self.breakeven
        return event.event_id  # type: ignore[union-attr]


class Journal(msgspec.Struct):
    writes: list[JournalWrite] = msgspec.field(default_factory=list)
    closed: list[TickClosed] = msgspec.field(default_factory=list)
    events: list[JournalEvent] = msgspec.field(default_factory=list)

    def merged(self, later: Journal) -> Journal:
        """This change and a later one as one: the later value of an entry wins; closes and
        events of both, in order (a close recorded once by id)."""
        writes = {(w.domain, w.key): w for w in self.writes}
        for w in later.writes:
            writes[(w.domain, w.key)] = w
        ids = {c.signal.id for c in self.closed}
        return Journal(list(writes.values()), self.closed + [c for c in later.closed if c.signal.id not in ids],
                       self.events + later.events)

    def empty(self) -> bool:
        return not (self.writes or self.closed or self.events)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Journal)


def entry(domain: str, key: str, value: Any) -> JournalWrite:
    return JournalWrite(domain, key, msgspec.Raw(_encoder.encode(value)))


def encode(journal: Journal) -> bytes:
    return _encoder.encode(journal)


def decode(data: bytes) -> Journal:
    return _decoder.decode(data)


def signal_event(result: Lifecycle) -> JournalEvent:
    return JournalEvent("signal", tick=result)


def milestone_event(kind: str, event: PartialEvent) -> JournalEvent:
    return JournalEvent(kind, partial=event)


def journal_event(event: Any) -> JournalEvent:
    """Any event saved with its change, as the journal keeps it."""
    if isinstance(event, PartialEvent):
        return milestone_event(event.kind, event)
    if isinstance(event, CommitEvent):
        return JournalEvent("commit", commit=event)
    if isinstance(event, BreakevenEvent):
        return JournalEvent("breakeven", breakeven=event)
    return signal_event(event)
