"""What a run produced, as ``run_pairs`` returns it to the entry point and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimize.result_row import ResultRow


@dataclass
class RunSummary:
    """What a run produced (the entry point returns ``optimize.sweep_value`` of its rows: val, never test)."""

    run_id: str
    mean_test_cer: float
    rows: list[ResultRow]
    results_csv: Path
    model_calls: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    advisor_cost_usd: float = 0.0
    elapsed_s: float = 0.0
    failed_pairs: list[str] = field(default_factory=list)
    resumed_pairs: list[str] = field(default_factory=list)
    answer_model_diagnostics: dict[str, int] = field(default_factory=dict)
    advisor_usage: dict[str, Any] | None = None
    advisor_members: dict[str, dict[str, Any]] | None = None  # a panel's members, each with its own usage
