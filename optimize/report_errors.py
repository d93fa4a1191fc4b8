"""The report's section on why the winners miss: each winner's wrong answers by kind, on val
(where it was chosen) and on test, from ``run.json``'s per-pair digest (``optimize.error_classes``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from optimize.report_format import html_table
from optimize.result_row import PAIR_COLUMN
from prompt_opt_api.error_classes import COPY_SHARE, ERROR_CLASSES


def error_classes_section(best: Any, digest_of: Callable[[str, str], Mapping[str, Any]]) -> str:
    """A table: per pair and split, wrong answers of all, each class's count, and the demo answer
    copied most (pages, of the pages it is not the answer of). ``digest_of(run_id, pair)``."""
    import pandas as pd

    rows = []
    for _, row in best.iterrows():
        classes = digest_of(row["run_id"], row[PAIR_COLUMN]).get("error_classes") or {}
        for split in ("val", "test"):
            if (errors := classes.get(split)) is not None:
                rows.append(_row(row[PAIR_COLUMN], split, errors))
    if not rows:
        return "<p class='note'>No winner's answers are classified (runs made before answers were).</p>"
    frame = pd.DataFrame(rows)
    frame = frame.loc[:, (frame != 0).any(axis=0)]  # classes no winner shows stay out
    return ("<p class='note'>Each wrong answer of a winner, by kind: <i>copied_demo</i> a demo's answer that is not "
            "this page's, <i>other_script</i> Latin/Cyrillic look-alikes, <i>format</i> the right value written "
            "another way, <i>elsewhere_on_page</i> another value of the page, <i>chatty</i> the answer in extra "
            f"words, <i>not_on_page</i> none of these. A demo answer copied on over {COPY_SHARE:.0%} of the pages "
            "it is not the answer of is marked.</p>" + html_table(frame))


def _row(pair: str, split: str, errors: Mapping[str, Any]) -> dict[str, Any]:
    copied, of = errors.get("most_copied", 0), errors.get("copied_of", 0)
    flag = " (over a quarter)" if of and copied / of > COPY_SHARE else ""
    return {"pair": pair, "split": split, "wrong": f"{errors['wrong']} of {errors['n']}",
            **{name: errors["counts"].get(name, 0) for name in ERROR_CLASSES},
            "demo answer copied": f"{copied} of {of}{flag}" if copied else ""}
