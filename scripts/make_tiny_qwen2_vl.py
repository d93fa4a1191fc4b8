"""Build the tiny random-weight Qwen2-VL used by tests and CPU benchmarks.

    .venv/bin/python scripts/make_tiny_qwen2_vl.py --out /tmp/tiny-qwen2-vl
    .venv/bin/python -m optimize model=qwen2_vl_2b model.pretrained=/tmp/tiny-qwen2-vl model.name=tiny-qwen2-vl
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.tiny_qwen2_vl import build_tiny_qwen2_vl  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = build_tiny_qwen2_vl(args.out, seed=args.seed)
    n = sum(f.stat().st_size for f in path.iterdir() if f.suffix == ".safetensors")
    print(f"wrote {path} ({n / 1e6:.1f} MB of weights)")
