"""Where the real default models live (fetched by scripts/setup.sh / scripts/fetch_models.py)."""

import os
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(cache) / "vlm-prompt-opt" / "models"


def model_config(**overrides):
    cfg = OmegaConf.load(REPO / "conf/model/ocr_llm.yaml")
    cfg.store_dir = str(models_dir())
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def advisor_config(**overrides):
    cfg = OmegaConf.load(REPO / "conf/advisor/local.yaml")
    cfg.server.store_dir = str(models_dir())
    for k, v in overrides.items():
        cfg[k] = v
    return cfg
