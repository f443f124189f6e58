"""A local exchange simulator: the subset of Binance's spot REST API that ccxt needs for candles.

``GET /api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` (with real
PRICE_FILTER / LOT_SIZE / NOTIONAL filters) and ``/api/v3/klines``, served on
127.0.0.1 from the candle store. Tests and demos point the real ccxt client at
it (``urls['api']``), never a mock of ccxt. Faults are injected per request:
``timeout``, ``500``, ``503``, ``429``, ``400`` (a request the exchange refuses), ``malformed`` (a body that is not JSON),
``bad_rows`` (klines with a broken row), ``gap`` (one candle left out), from
Python (``sim.inject("429", count=2)``) or over HTTP
(``POST /sim/fault?kind=429&count=2``).

Run one: ``python -m engine.exchange.simulator --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import deque
from pathlib import Path

from aiohttp import web

from ..interval import INTERVAL_MINUTES, interval_ms
from ..persistence.candles import connect, default_store_path, last_before, summaries
from .bundled import BUNDLED, StoreExchange, ensure_seeded
from .errors import CandlesUnavailable

FAULTS = ("timeout", "500", "503", "429", "400", "malformed", "bad_rows", "gap")
QUOTES = ("USDT", "BUSD", "USDC", "USD", "BTC", "ETH", "BNB", "EUR")
# Binance interval names are the engine's, minus the ones it does not have.
BINANCE_INTERVALS = [i for i in INTERVAL_MINUTES if i in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                                                          "8h", "12h", "1d")]


def _split(symbol: str) -> tuple[str, str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


def _market(symbol: str, last_close: float) -> dict:
    base, quote = _split(symbol)
    # Tick size: about 1e-6 of the price, a power of ten, as exchanges list them.
    tick = 10.0 ** (len(str(int(last_close))) - 7) if last_close >= 1 else 1e-8
    fmt = lambda v: f"{v:.8f}"
    return {
        "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(tick), "maxPrice": "1000000.00000000", "tickSize": fmt(tick)},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }


class ExchangeSimulator:
    def __init__(self, store_path: str | os.PathLike[str] | None = None, *, exchange: str = BUNDLED,
                 host: str = "127.0.0.1", port: int = 0, timeout_seconds: float = 30.0):
        self.store_path = str(store_path or default_store_path())
        self.exchange, self.host, self.port = exchange, host, port
        self.timeout_seconds = timeout_seconds   # how long a "timeout" fault stalls
        self.faults: deque[str] = deque()
        self.requests: list[tuple[str, dict]] = []
        self._runner: web.AppRunner | None = None
        self._source = StoreExchange(exchange, self.store_path)

    # --- control ------------------------------------------------------------------------------

    def inject(self, kind: str, count: int = 1) -> None:
        """The next ``count`` requests to klines / exchangeInfo fail with ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})")
        self.faults.extend([kind] * count)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> ExchangeSimulator:
        if self.exchange == BUNDLED:
            await ensure_seeded(self.store_path)
        app = web.Application()
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_post("/sim/fault", self._fault)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ExchangeSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handlers -----------------------------------------------------------------------------

    async def _fault_response(self) -> web.Response | None:
        if not self.faults:
            return None
        kind = self.faults[0]
        if kind in ("bad_rows", "gap"):
            return None   # applied to the klines body
        self.faults.popleft()
        if kind == "timeout":
            await asyncio.sleep(self.timeout_seconds)
            return web.json_response({"code": -1007, "msg": "Timeout waiting for response from backend server."},
                                     status=408)
        if kind == "429":
            return web.json_response({"code": -1003, "msg": "Too many requests; current limit is 6000 request weight "
                                      "per 1 MINUTE."}, status=429, headers={"Retry-After": "1"})
        if kind == "400":
            return web.json_response({"code": -1100, "msg": "Illegal characters found in parameter 'symbol'."},
                                     status=400)
        if kind in ("500", "503"):
            return web.Response(status=int(kind), text="<html><body>Service Unavailable</body></html>",
                                content_type="text/html")
        return web.Response(status=200, text='{"symbols": [', content_type="application/json")  # malformed

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append(("exchangeInfo", dict(request.query)))
        fault = await self._fault_response()
        if fault is not None:
            return fault
        db = await connect(self.store_path)
        try:
            stored = [s for s in await summaries(db) if s.exchange == self.exchange and s.interval == "1m"]
            markets = []
            for s in stored:
                close = await last_before(db, self.exchange, s.symbol, "1m", s.last + 1)
                markets.append(_market(s.symbol, close if close is not None else 1.0))
        finally:
            await db.close()
        return web.json_response({"timezone": "UTC", "serverTime": int(time.time() * 1000),
                                  "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                                  "intervalNum": 1, "limit": 6000}],
                                  "exchangeFilters": [], "symbols": markets})

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        self.requests.append(("klines", dict(q)))
        fault = await self._fault_response()
        if fault is not None:
            return fault
        symbol, interval = q.get("symbol", ""), q.get("interval", "")
        if interval not in BINANCE_INTERVALS:
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        try:
            limit = min(int(q.get("limit", 500)), 1000)
            start = int(q["startTime"]) if "startTime" in q else None
        except ValueError:
            return web.json_response({"code": -1100, "msg": "Illegal characters found in a parameter."}, status=400)
        step = interval_ms(interval)
        now = int(time.time() * 1000)
        if start is None:
            start = now - limit * step
        start = -(-start // step) * step
        try:
            candles = await self._source.get_candles(symbol, interval, start, limit)
        except CandlesUnavailable:
            # Binance answers an unknown symbol with -1121 and a range without data with [].
            db = await connect(self.store_path)
            try:
                known = {s.symbol for s in await summaries(db) if s.exchange == self.exchange}
            finally:
                await db.close()
            if symbol not in known:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            candles = await self._available(symbol, interval, start, limit)
        rows = [[int(ts), f"{o:.8f}", f"{h:.8f}", f"{l:.8f}", f"{c:.8f}", f"{v:.8f}", int(ts) + step - 1, "0", 0,
                 "0", "0", "0"] for ts, o, h, l, c, v in zip(*(col.tolist() for col in candles.columns()))]
        if self.faults and self.faults[0] in ("bad_rows", "gap") and rows:
            kind = self.faults.popleft()
            if kind == "gap" and len(rows) > 2:
                del rows[len(rows) // 2]
            else:
                rows[len(rows) // 2] = [rows[len(rows) // 2][0], "not-a-number", None]
        return web.Response(text=json.dumps(rows), content_type="application/json")

    async def _available(self, symbol: str, interval: str, start: int, limit: int):
        """The part of ``[start, start+limit)`` that is stored (possibly none), as Binance serves it."""
        step = interval_ms(interval)
        db = await connect(self.store_path)
        try:
            stored = {(s.symbol, s.interval): s for s in await summaries(db) if s.exchange == self.exchange}
        finally:
            await db.close()
        s = stored.get((symbol, "1m"))
        from ..types import Candles
        if s is None:
            return Candles.from_candles([])
        first = max(start, -(-s.first // step) * step)
        last = min(start + (limit - 1) * step, s.last - step + 60_000)
        count = (last - first) // step + 1
        if count <= 0:
            return Candles.from_candles([])
        return await self._source.get_candles(symbol, interval, first, count)

    async def _fault(self, request: web.Request) -> web.Response:
        try:
            self.inject(request.query.get("kind", ""), int(request.query.get("count", "1")))
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"queued": list(self.faults)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Binance-like exchange simulator over the candle store")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--exchange", default=BUNDLED, help="the stored exchange to serve (default bundled)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        sim = await ExchangeSimulator(args.store, exchange=args.exchange, port=args.port).start()
        print(f"simulator on {sim.url} serving {args.exchange} from {sim.store_path}; "
              f"point ccxt binance at it: btk live ... --exchange binance with BTK_CCXT_URL={sim.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
