"""A Hydra callback for tests: writes what a job returned to Hydra (what a sweeper sees) to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class RecordReturn(Callback):
    """Appends each job's return value to ``path`` as one JSON line (``inf`` as ``Infinity``)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(job_return.return_value) + "\n")
