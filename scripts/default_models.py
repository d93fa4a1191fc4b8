"""The embedded default models' configs and where their weights are cached.

For scripts (benchmarks, comparisons) and the tests that load the real models: the same
YAML a run composes (conf/model/ocr_llm.yaml, conf/advisor/local.yaml), pointed at the
model store that scripts/fetch_models.py fills.
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """The model store: ``$XDG_CACHE_HOME/vlm-prompt-opt/models`` (as conf/config.yaml's ``paths.models``)."""
    cache = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(cache) / "vlm-prompt-opt" / "models"


# What ``tesseract_lang: auto`` resolves to on the bundled demo set, which the scripts and tests
# that use ``model_config`` read (tests/test_ocr_language.py holds it).
DEMO_OCR_LANG = "rus+eng"


def model_config(**overrides):
    """conf/model/ocr_llm.yaml with its store set, ``auto`` OCR languages as the demo set resolves
    them, and ``overrides`` applied (for ``instantiate``)."""
    cfg = OmegaConf.load(REPO / "conf/model/ocr_llm.yaml")
    cfg.store_dir = str(models_dir())
    if cfg.tesseract_lang == "auto":
        cfg.tesseract_lang = DEMO_OCR_LANG
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def advisor_config(**overrides):
    """conf/advisor/local.yaml with its server's store set and ``overrides`` applied."""
    cfg = OmegaConf.load(REPO / "conf/advisor/local.yaml")
    cfg.server.store_dir = str(models_dir())
    for k, v in overrides.items():
        cfg[k] = v
    return cfg
