"""The exchange boundary's errors, as types (SEMANTICS.md section 2).

``ExchangeClient`` retries a failed candle request, except a ``PermanentError``: the adapter
says retrying cannot help (the store has no such candles, the exchange refused the request).
"""

from __future__ import annotations


class ExchangeError(RuntimeError):
    """The adapter failed (after retries); the message names the request."""


class PermanentError(Exception):
    """A failure that a retry cannot mend; raised at once, never retried."""


class CandleDataError(ValueError):
    """An exchange answer broke a rule; the message says which and where."""


class CandlesUnavailable(PermanentError, LookupError):
    """The store has no candles for (part of) the request. ``first`` / ``last``: the open times
    of the first and last stored candle, when there are any."""

    def __init__(self, message: str, *, first: int | None = None, last: int | None = None):
        super().__init__(message)
        self.first, self.last = first, last


class HistoryUnavailable(CandleDataError):
    """A backtest's strategy asked for candles from before the stored data begins: the frame's
    first minutes are then its warm-up (no signal there), not a failure. ``available_from``: the
    first stored candle; ``interval`` and ``limit``: the request that reached before it, so the
    first frame time with enough history is ``available_from + limit * step``."""

    def __init__(self, message: str, *, interval: str, limit: int, available_from: int):
        super().__init__(message)
        self.interval, self.limit, self.available_from = interval, limit, available_from
