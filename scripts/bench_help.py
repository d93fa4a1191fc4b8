"""Time `python -m optimize --help` (target: under 2 s; heavy libraries are imported lazily).

    .venv/bin/python scripts/bench_help.py
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "optimize", "--help"], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    print(f"python -m optimize --help: median {statistics.median(times):.2f} s, max {max(times):.2f} s over 5 runs")
