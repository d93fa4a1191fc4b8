"""Test-wide settings: no network, ever (no hub downloads, no litellm price-map fetch)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Model weights come only from the local cache in tests (scripts/setup.sh fetched them);
# a test that exercises the PyPI source sets this back itself.
os.environ.setdefault("VLM_PROMPT_OPT_PYPI_WEIGHTS", "0")
