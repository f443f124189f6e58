"""The console's screens, one per mode: live, backtest, walker, strategies, help."""
