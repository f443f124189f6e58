"""Any ccxt exchange as a candle source (``ccxt.async_support``): ``add_ccxt_exchange("binance")``.

Candles come from ``fetch_ohlcv`` page by page; only closed candles are kept
(the one still forming is dropped), and the engine's checks judge the answer.
Prices and quantities are formatted with the market's precision. ccxt's errors
stop here: network trouble, timeouts, rate limits and 5xx are transient (the
engine retries the read); a bad symbol, a bad request, missing permissions
are permanent (reported at once, never retried). One ccxt instance per
registered exchange, rate limiting on, closed on shutdown.

Keys are optional: ``BTK_<EXCHANGE>_API_KEY`` and ``BTK_<EXCHANGE>_SECRET``, or
a JSON file ``{"apiKey": ..., "secret": ...}`` that only its owner may read
(mode 0600). They are checked when the exchange is added, kept on the adapter
(``credentials``) and masked in every ccxt log, but the client that reads
candles and markets never holds them: public data needs no key, and a ccxt
client with keys signs its market requests and calls private endpoints
(binance: ``sapi/v1/capital/config/getall``), which fail on a key that lacks
that permission or on a public mirror.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

import engine.registry as registry

from ..interval import interval_ms, iso, to_ms
from ..types import Candles
from .errors import CandleDataError, PermanentError

PAGE_LIMIT = 1000


class ExchangeRejected(PermanentError, RuntimeError):
    """The exchange refused the request for good (bad symbol, bad request, no permission)."""


class CredentialsError(ValueError):
    pass


class _Redact(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


_redact = _Redact()


def _guard_ccxt_loggers() -> None:
    """Logger filters are not inherited: put the mask on every ccxt logger that exists."""
    importlib.import_module("ccxt.async_support")   # creates ccxt's module loggers
    names = ["ccxt", "ccxt.base.exchange", "ccxt.async_support.base.exchange"]
    names += [n for n in logging.root.manager.loggerDict if n.startswith("ccxt.")]
    for name in names:
        logger = logging.getLogger(name)
        if _redact not in logger.filters:
            logger.addFilter(_redact)


def ccxt_exchange_ids() -> list[str]:
    import ccxt.async_support as ccxt_async
    return list(ccxt_async.exchanges)


def load_credentials(exchange_id: str, key_file: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Keys from ``BTK_<ID>_API_KEY`` / ``BTK_<ID>_SECRET`` or a 0600 JSON file; ``{}`` when none."""
    prefix = f"BTK_{exchange_id.upper()}_"
    if os.environ.get(prefix + "API_KEY"):
        creds = {"apiKey": os.environ[prefix + "API_KEY"], "secret": os.environ.get(prefix + "SECRET", "")}
    elif key_file is not None:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise CredentialsError(f"key file {path} does not exist") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                                   f"run `chmod 600 {path}`")
        try:
            data = json.loads(path.read_text())
            creds = {"apiKey": str(data["apiKey"]), "secret": str(data.get("secret", ""))}
        except (ValueError, KeyError, TypeError) as e:
            raise CredentialsError(f"key file {path}: expected JSON with \"apiKey\" and \"secret\" ({e})") from None
    else:
        return {}
    _redact.secrets.update(v for v in creds.values() if v)
    _guard_ccxt_loggers()
    return creds


def _transient(exc: BaseException) -> bool:
    import ccxt
    return isinstance(exc, (ccxt.NetworkError, ccxt.ExchangeNotAvailable, ccxt.RateLimitExceeded,
                            ccxt.RequestTimeout, ccxt.OnMaintenance))


class CcxtExchange:
    def __init__(self, exchange_id: str, *, api_url: str | None = None, options: dict | None = None,
                 key_file: str | os.PathLike[str] | None = None, timeout_ms: int = 10_000,
                 now: Callable[[], int] | None = None):
        import ccxt.async_support as ccxt_async
        if exchange_id not in ccxt_async.exchanges:
            raise ValueError(f"{exchange_id!r} is not a ccxt exchange id (e.g. binance, kraken, okx)")
        self.credentials = load_credentials(exchange_id, key_file)
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms, "enableLastJsonResponse": True,
                                  "enableLastHttpResponse": True}   # no keys: see the module's docstring
        merged = dict(options or {})
        if exchange_id == "binance":   # spot candles only: skip loading futures and options markets
            merged.setdefault("fetchMarkets", {"types": ["spot"]})
        if merged:
            config["options"] = merged
        self.id = exchange_id
        self.client = getattr(ccxt_async, exchange_id)(config)
        if api_url:
            self._point_at(api_url)
        self.now = now or (lambda: int(time.time() * 1000))
        self._markets_loaded = False

    def _point_at(self, api_url: str) -> None:
        """Send every API family to ``api_url`` (a local simulator), keeping each path."""
        base = urlsplit(api_url)

        def rewrite(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: rewrite(v) for k, v in value.items()}
            if isinstance(value, str) and value.startswith("http"):
                parts = urlsplit(value)
                return f"{base.scheme}://{base.netloc}{parts.path}"
            return value
        self.client.urls["api"] = rewrite(self.client.urls["api"])

    async def load_markets(self) -> None:
        """The exchange's markets, once (a symbol is checked against them)."""
        await self._markets()

    async def _markets(self) -> None:
        if not self._markets_loaded:
            await self._call(self.client.load_markets)
            self._markets_loaded = True

    async def _call(self, fn: Callable, *args: Any) -> Any:
        import ccxt
        try:
            return await fn(*args)
        except ccxt.BaseError as exc:
            if _transient(exc):
                raise   # the engine retries reads
            raise ExchangeRejected(f"{self.id}: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:   # a body ccxt could not decode
            raise CandleDataError(f"{self.id}: malformed answer: {exc}") from exc

    def market_symbol(self, symbol: str) -> str:
        """``BTCUSDT`` (the exchange's id) or ``BTC/USDT`` (ccxt's unified symbol) -> unified."""
        if symbol in self.client.markets:
            return symbol
        market = self.client.markets_by_id.get(symbol) if self.client.markets_by_id else None
        if market:
            return market[0]["symbol"] if isinstance(market, list) else market["symbol"]
        raise ExchangeRejected(f"{self.id} has no market {symbol!r}")

    async def get_candles(self, symbol: str, interval: str, since: datetime, limit: int) -> Candles:
        await self._markets()
        unified = self.market_symbol(symbol)
        step = interval_ms(interval)
        start = to_ms(since)
        closed_before = self.now() - self.now() % step   # the candle opening here is still forming
        rows: list[list] = []
        cursor, left = start, limit
        while left > 0 and cursor < closed_before:
            page = await self._call(self.client.fetch_ohlcv, unified, interval, cursor, min(left, PAGE_LIMIT))
            if self.client.last_json_response is None and self.client.last_http_response:
                raise CandleDataError(f"{self.id}: malformed answer for {symbol} {interval} candles (not JSON): "
                                      f"{self.client.last_http_response[:80]!r}")
            if not isinstance(page, list):
                raise CandleDataError(f"{self.id}: fetch_ohlcv returned {type(page).__name__}, expected a list")
            page = [row for row in page if isinstance(row, list) and row and isinstance(row[0], (int, float))
                    and start <= row[0] < closed_before]
            if not page:
                break
            rows += page
            left -= len(page)
            cursor = int(page[-1][0]) + step
        rows = rows[:limit]
        try:
            arr = np.array([row[:6] for row in rows], dtype=np.float64).reshape(-1, 6)
        except (ValueError, TypeError) as e:
            raise CandleDataError(f"{self.id}: malformed candle in the answer for {symbol} {interval} from "
                                  f"{iso(start)}: {e}") from None
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise CandleDataError(f"{self.id}: malformed candle at {iso(int(arr[bad][0, 0]))} in the answer for "
                                  f"{symbol} {interval}: {rows[int(np.argmax(bad))]}")
        return Candles.from_arrays(arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])

    async def format_price(self, symbol: str, price: float) -> str:
        await self._markets()
        return self.client.price_to_precision(self.market_symbol(symbol), price)

    async def format_quantity(self, symbol: str, quantity: float) -> str:
        await self._markets()
        return self.client.amount_to_precision(self.market_symbol(symbol), quantity)

    async def close(self) -> None:
        await self.client.close()


def add_ccxt_exchange(exchange_id: str, *, exchange_name: str | None = None, api_url: str | None = None,
                      options: dict | None = None, key_file: str | os.PathLike[str] | None = None,
                      live_clock: Callable | None = None, now: Callable[[], int] | None = None) -> CcxtExchange:
    """Register ccxt exchange ``exchange_id`` (as ``exchange_name``, default the id).

    ``api_url`` (or ``BTK_CCXT_URL``) points every API family at another host: the
    local simulator in tests and demos. ``live_clock`` and ``now`` (epoch ms: which
    candles have closed) inject the time, for a simulation on its own clock."""
    adapter = CcxtExchange(exchange_id, api_url=api_url or os.environ.get("BTK_CCXT_URL") or None,
                           options=options, key_file=key_file, now=now)
    registry.add_exchange(exchange_name or exchange_id, adapter.get_candles, format_price=adapter.format_price,
                          format_quantity=adapter.format_quantity, note=f"ccxt {exchange_id}",
                          live_clock=live_clock, close=adapter.close)
    return adapter
