"""Runs `python -m optimize` in a subprocess the way a user would, with test overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_CONF = REPO / "tests" / "conf"


def cli_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli_args(tmp: Path, csv_path: Path, *overrides: str, out: str = "out", model: str = "scripted") -> list[str]:
    return [
        sys.executable, "-m", "optimize",
        f"hydra.searchpath=[file://{TEST_CONF}]",
        f"model={model}", *([] if any(o.startswith("advisor=") for o in overrides) else ["advisor=none"]),
        # the default optimizer writes prompts with an advisor; tests that want one say so
        *([] if any(o.startswith("optimizer=") for o in overrides) else ["optimizer=manual"]),
        "task=csv", f"task.csv={csv_path}",
        f"paths.store={tmp / 'store.sqlite'}",
        f"paths.results_dir={tmp / 'results'}",
        f"hydra.run.dir={tmp / out}",
        *overrides,
    ]


def run_cli(tmp: Path, csv_path: Path, *overrides: str, out: str = "out", timeout: float = 120, model: str = "scripted",
            env: dict[str, str] | None = None):
    return subprocess.run(cli_args(tmp, csv_path, *overrides, out=out, model=model), cwd=REPO,
                          env={**cli_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout)
