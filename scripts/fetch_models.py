"""Fetch and verify the embedded default models (pins from conf/model/ocr_llm.yaml, conf/advisor/local.yaml).

    python scripts/fetch_models.py [--store DIR]

Idempotent: a verified cached file is not fetched again (nor re-hashed, unless it changed).
"""

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_specs():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    model = OmegaConf.load(ROOT / "conf/model/ocr_llm.yaml").weights
    advisor = OmegaConf.load(ROOT / "conf/advisor/local.yaml").server.weights
    return [instantiate(model), instantiate(advisor)]


def main() -> None:
    from models.model_store import ModelStore
    from scripts.default_models import models_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default=str(models_dir()))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = ModelStore(args.store)
    for spec in default_specs():
        started = time.monotonic()
        path = store.fetch(spec)
        print(f"{path} ok ({spec.size} bytes, sha256 {spec.sha256[:12]}..., {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
