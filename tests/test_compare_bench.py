"""The peers benchmark's harness (benchmarks/compare.py) on a small workload: every system it
runs here gives the same trades as btk per frame, and the table has a row for each."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_compare_runs_and_the_trade_lists_agree():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--candles", "30000",
                          "--systems", "btk per-frame", "btk vectorised", "numpy"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("| btk")
            or line.startswith("| numpy")}
    assert set(rows) == {"btk per-frame", "btk vectorised", "numpy"}
    trades = {name: int(line.split("|")[7].replace(",", "")) for name, line in rows.items()}
    assert len(set(trades.values())) == 1 and trades["numpy"] > 50
    verdicts = [line for line in out.stdout.splitlines() if line.startswith("- ") and " vs " in line]
    assert len(verdicts) == 2 and all(": agree:" in v for v in verdicts), out.stdout
    assert any(line.startswith("- btk vectorised: ") and "x the plain numpy pass" in line
               for line in out.stdout.splitlines())
