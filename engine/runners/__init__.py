"""Runners: ``Backtest`` (frames over history); live and walker runners join them."""
