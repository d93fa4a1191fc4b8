"""Generate the synthetic Russian document set.

    python scripts/make_demo_data.py                     # the bundled set: tasks/demo, 10 per class, seed 0
    python scripts/make_demo_data.py --out /tmp/big --per-class 200   # 1,000 documents for benchmarks
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.demo_data.synthetic_documents import generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tasks" / "demo"))
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    csv_path = generate(args.out, per_class=args.per_class, seed=args.seed)
    rows = sum(1 for _ in csv_path.open(encoding="utf-8")) - 1
    print(f"wrote {csv_path} ({rows} rows) in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
