"""The records a run writes: one ``RunRecord`` per run (``run.json``) and one ``TrialRecord`` per score.

``run.json`` is the run's one summary: written into the run folder, copied into the
results folder (``optimize.collect``) and read back by the reports (``optimize.report``).
A record from an earlier version lacks some fields: they take their defaults, and keys
this version does not know are ignored, so an old results folder still merges.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_opt_api import Prompt

RUN_JSON = "run.json"


@dataclass(frozen=True)
class TrialRecord:
    """One score as the run loop keeps it: the prompt scored, and its JSON-able record
    (``trials.jsonl``'s line: pair, split, cer, n, prompt text, demo rows, origin, ...)."""

    prompt: Prompt
    data: Mapping[str, Any]

    @property
    def split(self) -> str:
        return self.data["split"]

    @property
    def n(self) -> int:
        return self.data["n"]

    @property
    def cer(self) -> float:
        return self.data["cer"]

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What one candidate is across its records: its text and its demos' rows."""
        return candidate_key(self.data)

    def on_full(self, split: str, n: int) -> bool:
        """Whether this is a score on the whole ``split`` (``n`` examples)."""
        return self.split == split and self.n == n


def candidate_key(record: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """What one candidate is across its trial records (as stored): its text and its demos' rows."""
    return (record["prompt"], tuple(record.get("demo_rows") or ()))


@dataclass
class RunCost:
    """What the run spent. Totals are over all its attempts (from its rows); ``*_this_attempt``
    is what this process did (a resumed run serves earlier work from the store)."""

    advisor_calls: int = 0  # charged to the run, cached replies included
    advisor_cost_usd: float = 0.0
    advisor_cost_usd_this_attempt: float = 0.0
    answer_model_evaluations: int = 0
    model_calls_this_attempt: int = 0  # answers computed
    cache_hits_this_attempt: int = 0  # answers served from the store
    evaluations_this_attempt: int = 0


@dataclass
class RunRecord:
    """One run, as its folder, the results folder and the reports see it (``run.json``)."""

    run_id: str
    task_id: str = ""
    model: str = ""
    advisor: str = ""
    optimizer: str = ""
    finished_at: str = ""
    elapsed_s: float = 0.0
    out_dir: str = ""  # the run folder (Hydra's output dir)
    results_csv: str = ""  # the run's <model>_sep_<advisor>.csv, a name in out_dir
    mean_test_cer: float | None = None  # None: no pair was scored
    failed_pairs: list[str] = field(default_factory=list)
    resumed_pairs: list[str] = field(default_factory=list)  # finished by an earlier attempt, not redone
    cost: RunCost = field(default_factory=RunCost)
    # the advisor's calls, cached calls, failed calls, unusable replies, tokens and dollars (None: no advisor)
    advisor_usage: dict[str, Any] | None = None
    advisor_members: dict[str, dict[str, Any]] | None = None  # a panel's members, each its own usage
    answer_model_diagnostics: dict[str, int] = field(default_factory=dict)
    # the task's pages and split units (near-duplicates grouped): ``optimize.split_check.SplitAudit``
    split_units: dict[str, Any] | None = None
    # per pair: curve, top candidates, test CERs, worst errors, each author's best, winner, disqualified,
    # the winner's wrong answers by class on val and test (``optimize.error_classes.winner_error_classes``),
    # the OCR ceiling on test and val (``optimize.ocr_ceiling.PairCeiling``), the constant answer
    # (``optimize.constant_answer.ConstantAnswer``)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record from its JSON; missing fields take their defaults, unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        cost_fields = {f.name for f in dataclasses.fields(RunCost)}
        values["cost"] = RunCost(**{k: v for k, v in (data.get("cost") or {}).items() if k in cost_fields})
        return cls(**values)

    def write(self, path: Path) -> None:
        from optimize.results_files import write_json

        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
