"""The winner's wrong answers by kind, for ``run.json``'s per-pair digest and the reports.

The evaluator classifies every wrong answer as it scores it (``prompt_opt_api.error_classes``)
and the trial records keep the class beside the prediction (``error_class``); this module
counts them for a pair's winner, on val (where it was chosen) and on test (where it was
re-scored once). A record written before answers were classified has no classes: its split
gets none (None), never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from optimize.run_record import candidate_key
from prompt_opt_api import FULL_VAL, ExampleResult
from prompt_opt_api.error_classes import class_counts, repeated_copy


@dataclass(frozen=True)
class SplitErrors:
    """One split's answers of the winner, its wrong ones by class.

    Attributes:
        n: Answers scored.
        wrong: Answers not exact.
        counts: Wrong answers per class (``ERROR_CLASSES``, every class named, 0 included).
        most_copied: Pages answered with the one demo answer predicted most often where it is
            not the page's answer (0: no demo answer was copied).
        copied_of: Pages whose answer that demo answer is not (``most_copied`` is a share of
            these; over a quarter is what the demo searches avoid).
    """

    n: int
    wrong: int
    counts: dict[str, int]
    most_copied: int = 0
    copied_of: int = 0


def split_errors(predictions: Sequence[Mapping[str, Any]]) -> SplitErrors | None:
    """The counts of one trial record's predictions; None when a wrong one carries no class."""
    results = [ExampleResult(source_row=p["row"], answer=p["answer"], prediction=p["prediction"], cer=p["cer"],
                             exact=p["cer"] == 0, error_class=p.get("error_class", "")) for p in predictions]
    wrong = [r for r in results if not r.exact]
    if any(not r.error_class for r in wrong):
        return None
    copied = repeated_copy(results)
    return SplitErrors(n=len(results), wrong=len(wrong), counts=class_counts(r.error_class for r in wrong),
                       most_copied=copied.pages if copied else 0, copied_of=copied.others if copied else 0)


def winner_error_classes(records: Sequence[Mapping[str, Any]], winner: str | None,
                         n_val: int) -> dict[str, dict[str, Any] | None] | None:
    """The winner's wrong answers by class on val and on test (``SplitErrors`` as JSON, or None
    for a split whose record has no classes); None when the pair has no winner scored on test.

    Args:
        records: The pair's trial records, in the order they were made.
        winner: The winning template's text (the row's ``optimal prompt``).
        n_val: The size of the pair's val split.
    """
    tests = [r for r in records if r["split"] == "test"]
    if not tests:
        return None
    # the winner's test score comes first; a panel's members' bests may follow it
    test = next((r for r in tests if r["prompt"] == winner), tests[0])
    key = candidate_key(test)
    val = next((r for r in records if r["split"] == FULL_VAL and r["n"] == n_val and candidate_key(r) == key), None)

    def as_json(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
        errors = split_errors(record["predictions"]) if record is not None else None
        return asdict(errors) if errors is not None else None

    return {"val": as_json(val), "test": as_json(test)}
