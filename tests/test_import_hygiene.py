"""engine/ stays headless: importing it loads no UI module (checked in a fresh process)."""

import subprocess
import sys

import pytest

UI_MODULES = ("textual", "rich", "plotext", "textual_plotext")


@pytest.mark.parametrize("module", ["engine", "engine.runners.backtest", "engine.persistence.candles", "strategies"])
def test_import_loads_no_ui_module(module):
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {UI_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
